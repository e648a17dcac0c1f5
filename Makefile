# Speech to Face - the two commands of the README are `make demo` and `make test`.
#   make demo     light: numpy, soundfile, hama, bpy (no torch, no apt, no root)
#   make test     everything the tests need, then the suite on bpy 5.0 and the add-on tests on
#                 the older Blender releases in BPY_OLDER (CI runs this; apt packages need root)
#   make train    adds torch, transformers, scipy, matplotlib (training, evaluation, wav2vec2)
#   make corpus   adds the corpus' Debian packages (root) and the optional Kokoro voices
PYTHON_BASE ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# bpy wheels the add-on tests also run on (4.2 LTS, 4.5 LTS); `make test BPY_OLDER=` skips them.
BPY_OLDER ?= 4.2.23 4.5.15
ADDON_TESTS := tests/test_addon.py tests/test_addon_package.py tests/test_bake_tools.py tests/test_blender_versions.py
OLDER_PYTHONS = $(foreach v,$(BPY_OLDER),$(CURDIR)/.venv-bpy$(v)/bin/python)

.PHONY: demo test test-older train corpus system-packages extension clean

$(PY):
	$(PYTHON_BASE) -m venv $(VENV)

# `pip install -e .` (pyproject.toml): `import core` works in this venv from any folder.
$(VENV)/.demo: requirements-demo.txt pyproject.toml | $(PY)
	$(PIP) -r requirements-demo.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.train: requirements-train.txt $(VENV)/.demo
	$(PIP) -r requirements-train.txt
	touch $@

$(VENV)/.test: requirements-test.txt $(VENV)/.train
	$(PIP) -r requirements-test.txt
	touch $@

# One venv per older bpy wheel, holding only what the add-on tests need.
.venv-bpy%/.installed: requirements-blender.txt
	$(PYTHON_BASE) -m venv --clear .venv-bpy$*
	.venv-bpy$*/bin/python -m pip install -q --disable-pip-version-check bpy==$* -r requirements-blender.txt
	touch $@

# Main job: bake the bundled sample speech onto the bundled FLAME head -> out/demo.blend,
# then say which Blender versions open it.
demo: $(VENV)/.demo
	$(PY) tools/bake.py --mesh core/assets/heads/sample_neutral.ply \
	  --audio core/assets/audio/sample_speech.wav --out out/demo.blend
	$(PY) tools/blend_versions.py out/demo.blend

# System packages the corpus tools and tests use (apt; root or passwordless sudo).
system-packages:
	bash tools/setup_corpus.sh

test: system-packages $(VENV)/.test $(foreach v,$(BPY_OLDER),.venv-bpy$(v)/.installed)
	S2F_OTHER_BPY="$(OLDER_PYTHONS)" $(PY) -m pytest -q tests
	$(MAKE) --no-print-directory test-older

# The add-on tests on each older bpy wheel (pytest runs inside that wheel's venv); each release
# opens the .blend the others write (tests/test_blender_versions.py).
test-older: $(foreach v,$(BPY_OLDER),.venv-bpy$(v)/.installed)
	@for v in $(BPY_OLDER); do \
	  echo "== add-on tests on bpy $$v =="; \
	  S2F_OTHER_BPY="$(CURDIR)/$(PY) $(OLDER_PYTHONS)" \
	    .venv-bpy$$v/bin/python -m pytest -q -p no:cacheprovider $(ADDON_TESTS) || exit 1; \
	done

train: $(VENV)/.train

corpus: $(VENV)/.train
	bash tools/setup_corpus.sh --recorded
	$(PIP) -r requirements-corpus.txt

# The installable Blender extension zip -> dist/
extension: $(VENV)/.demo
	$(PY) tools/build_extension.py

clean:
	rm -rf $(VENV) .venv-bpy* out build dist
