#!/usr/bin/env bash
# Install what the synthetic corpus tools need (tools/make_corpus.py, tools/render_visemes.py,
# tests/test_corpus_*.py): offline TTS engines with their voices, sox, and the text sources.
# Idempotent: installs only missing Debian packages. Needs root (or sudo without a password);
# `make corpus` and `make test` call it, `make demo` does not.
#   bash tools/setup_corpus.sh             TTS engines, voices, texts (what the tests need)
#   bash tools/setup_corpus.sh --recorded  also the real voices the corpus and tools/evaluate_real.py
#                                          use (asterisk prompts, Fish Fillets NG's dialogues,
#                                          pocketsphinx and codec2 samples)
set -euo pipefail

PACKAGES=(
  espeak-ng                                  # C library + data: ~100 voices, phoneme events
  flite                                      # CMU flite: slt, awb, rms, kal16 voices, -psdur timings
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts   # festival English voices
  festvox-italp16k festvox-itapc16k          # festival Italian voices
  sox                                        # augmentation (tempo, pitch)
  fortunes fortunes-de fortunes-es fortunes-it fortunes-pl fortunes-cs fortunes-ru fortunes-br  # sentences
)
if [ "${1:-}" = "--recorded" ]; then
  PACKAGES+=(
    asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav   # human voices
    asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav  # (engines/recorded.py)
    fillets-ng-data-cs fillets-ng-data-nl       # more real voices: Czech and Dutch actors (--extra-real-hours)
    pocketsphinx-testdata codec2-examples       # real recordings of unseen talkers (tools/evaluate_real.py)
    asterisk-prompt-es-co asterisk-prompt-fr-armelle  # its confirmation set (--set confirm)
  )
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "corpus tools: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
# Root installs directly; otherwise only a sudo that needs no password is used (never a prompt
# in the middle of make). Anything else: say what to run and stop.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "corpus tools: missing Debian packages: ${missing[*]}" >&2
    echo "corpus tools: installing them needs root. Run as root:  apt-get install ${missing[*]}" >&2
    echo "              (or: sudo bash tools/setup_corpus.sh). The demo needs none of them." >&2
    exit 1
  fi
fi
echo "corpus tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait up to 2 minutes for another apt/dpkg (unattended upgrades) instead of failing at once.
APT=("${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 -y -q)
if ! "${APT[@]}" install --no-install-recommends "${missing[@]}"; then
  if ! { "${APT[@]}" update && "${APT[@]}" install --no-install-recommends "${missing[@]}"; }; then
    echo "corpus tools: apt-get could not install ${missing[*]} (see its message above:" >&2
    echo "              a held dpkg lock, no permission, or no package source)." >&2
    exit 1
  fi
fi
