#!/usr/bin/env bash
# Install what the synthetic corpus tools need (tools/make_corpus.py, tools/render_visemes.py,
# tests/test_corpus_*.py): offline TTS engines with their voices, sox, and the text sources.
# Idempotent: installs only missing Debian packages. Run as root (or with sudo available).
#   bash tools/setup_corpus.sh
set -euo pipefail

PACKAGES=(
  espeak-ng                                  # C library + data: ~100 voices, phoneme events
  flite                                      # CMU flite: slt, awb, rms, kal16 voices, -psdur timings
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts   # festival English voices
  festvox-italp16k festvox-itapc16k          # festival Italian voices
  sox                                        # augmentation (tempo, pitch)
  fortunes fortunes-de fortunes-es fortunes-it fortunes-pl fortunes-cs fortunes-ru fortunes-br  # sentences
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "corpus tools: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "corpus tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; }
