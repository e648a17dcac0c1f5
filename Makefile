# Speech to Face - the two commands of the README are `make demo` and `make test`.
PYTHON_BASE ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup system-packages demo test extension clean

# System packages: the TTS engines, voices and texts the corpus tools and tests use (apt).
system-packages:
	bash tools/setup_corpus.sh

$(VENV)/.installed: requirements.txt
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

setup: system-packages $(VENV)/.installed

# Main job: bake the bundled sample speech onto the bundled FLAME head -> out/demo.blend
demo: setup
	$(PY) tools/bake.py --mesh core/assets/heads/sample_neutral.ply \
	  --audio core/assets/audio/sample_speech.wav --out out/demo.blend

test: setup
	$(PY) -m pytest -q tests

# The installable Blender extension zip -> dist/
extension: setup
	$(PY) tools/build_extension.py

clean:
	rm -rf $(VENV) out build dist
