"""Phonemes -> viseme classes.

Every engine reports phones in its own alphabet; they are converted to IPA here (``to_ipa``) and
then tokenised into single sounds (``split_ipa``: diphthongs become two sounds sharing the span,
affricates stay one sound). Each sound maps to one viseme class (``viseme_of``): a group of
sounds that look alike on the face and share articulatory targets (see articulation.py).

Classes (what the lips and jaw do):
  sil   silence / pause: rest (lips together, jaw closed)
  PBM   bilabial p b m (and ɓ ʙ): lips closed and pressed
  BF    bilabial fricative ɸ β: lips nearly closed
  FV    labiodental f v ʋ ɱ: lower lip tucked under the upper teeth
  TH    dental θ ð: jaw slightly open, upper lip a little raised
  TD    alveolar t d n l ɾ r ɬ ɮ: jaw slightly open, lips free (take neighbours' shape)
  SZ    sibilants s z ts dz: teeth near closed, lips slightly spread
  SH    postalveolar ʃ ʒ tʃ dʒ ɕ ʑ ʂ ʐ: lips protruded and flared
  R     approximant ɹ ɻ: slight rounding
  KG    velar/uvular/glottal k g ŋ x ɣ χ ʁ ʀ h ɦ ʔ q: jaw by context, lips free
  J     palatal j ç ʝ ɲ ʎ c ɟ: slight spread
  W     labial-velar w ɥ ʍ: strongly rounded, protruded
  A     open vowels a ɑ æ ä: jaw wide open
  AH    open-mid central ʌ ɐ ɜ ɞ: jaw fairly open, neutral lips
  E     mid front e ɛ: jaw mid, lips spread
  I     close front i ɪ: jaw near closed, lips spread
  O     mid back rounded o ɔ ɒ: jaw mid, lips rounded
  U     close back rounded u ʊ: jaw near closed, lips rounded and protruded
  Y     close front rounded y ʏ: like U with less protrusion
  OE    mid front rounded ø œ ɵ: jaw mid, rounded
  @     schwa-like ə ɘ ɚ ɝ ɨ ɯ ɤ ɪ̈: jaw slightly open, neutral lips
"""

from __future__ import annotations

import unicodedata

VISEMES = ("sil", "PBM", "BF", "FV", "TH", "TD", "SZ", "SH", "R", "KG", "J", "W",
           "A", "AH", "E", "I", "O", "U", "Y", "OE", "@")
VOWEL_VISEMES = ("A", "AH", "E", "I", "O", "U", "Y", "OE", "@")

_CLASS_OF = {}
for _cls, _sounds in {
    "PBM": "p b m ɓ ʙ",
    "BF": "ɸ β",
    "FV": "f v ʋ ɱ",
    "TH": "θ ð",
    "TD": "t d n l ɾ r ɬ ɮ ɫ ɗ ɳ ʈ ɖ ɭ ɽ ɺ ʟ",
    "SZ": "s z ts dz",
    "SH": "ʃ ʒ tʃ dʒ ɕ ʑ tɕ dʑ ʂ ʐ ʈʂ ɖʐ",
    "R": "ɹ ɻ",
    "KG": "k g ɡ ŋ x ɣ χ ʁ ʀ h ɦ ʔ q ɢ ɴ ħ ʕ ɰ",
    "J": "j ç ʝ ɲ ʎ c ɟ",
    "W": "w ɥ ʍ",
    "A": "a ɑ æ ä ɶ",
    "AH": "ʌ ɐ ɜ ɞ",
    "E": "e ɛ",
    "I": "i ɪ",
    "O": "o ɔ ɒ",
    "U": "u ʊ",
    "Y": "y ʏ",
    "OE": "ø œ ɵ",
    "@": "ə ɘ ɚ ɝ ɨ ɯ ɤ ᵻ ɪ̈",
}.items():
    for _s in _sounds.split():
        _CLASS_OF[_s] = _cls

# Multi-character sounds that are one articulation (affricates, r-coloured schwa).
_MULTI = sorted((s for s in _CLASS_OF if len(s) > 1), key=len, reverse=True)
# Marks that do not change the viseme: stress, length, syllabicity, ties, tone, release...
_DROP = set("ˈˌːˑ̩̯͡‿̪̺̻̥̬̰̤̃ʰʲʷˠˤ̚ʼ̝̞̟̠̘̙˞ⁿˡ↓↑|‖.-_'\"") | {"\u0361", "\u035c", "\u0303", "\u0330"}
_ALIASES = {"ɚ": "ɚ", "ɝ": "ɝ", "ɡ": "ɡ", "ʧ": "tʃ", "ʤ": "dʒ", "ʦ": "ts", "ʣ": "dz", "ɘ": "ɘ",
            "g": "ɡ", "ε": "ɛ", "ɑ̃": "ɑ", "r̝": "r", "ř": "r"}


def split_ipa(symbol: str) -> list[str]:
    """Tokenise one engine phone (IPA) into single sounds; unknown characters are dropped."""
    s = unicodedata.normalize("NFD", symbol)
    s = "".join(ch for ch in s if ch not in _DROP and not unicodedata.category(ch).startswith("M"))
    s = unicodedata.normalize("NFC", s)
    for a, b in _ALIASES.items():
        s = s.replace(a, b)
    out, i = [], 0
    while i < len(s):
        for m in _MULTI:
            if s.startswith(m, i):
                out.append(m)
                i += len(m)
                break
        else:
            if s[i] in _CLASS_OF:
                out.append(s[i])
            i += 1
    return out


def viseme_of(sound: str) -> str:
    """Viseme class of one IPA sound (after split_ipa); unknown -> '@' (neutral, low risk)."""
    if sound in ("", "_", "sil", "pau"):
        return "sil"
    return _CLASS_OF.get(sound, "@")


# ---- engine alphabets -> IPA -------------------------------------------------------------

# CMU / Festival "radio" phone set (flite voices, festival kal/ked/slt).
ARPABET = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ax": "ə", "ao": "ɔ", "aw": "aʊ", "ay": "aɪ", "eh": "ɛ",
    "er": "ɝ", "axr": "ɚ", "ey": "eɪ", "ih": "ɪ", "ix": "ɨ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ",
    "uh": "ʊ", "uw": "u", "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "f": "f",
    "g": "ɡ", "hh": "h", "h": "h", "jh": "dʒ", "k": "k", "l": "l", "el": "əl", "m": "m", "em": "əm",
    "n": "n", "en": "ən", "ng": "ŋ", "nx": "ɾ", "p": "p", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t",
    "th": "θ", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ", "pau": "", "h#": "", "sil": "",
    "ssil": "", "brth": "",
}

# Festival Italian diphone voices (lp, pc): SAMPA-like symbols.
FESTIVAL_ITALIAN = {
    "a": "a", "e": "e", "E": "ɛ", "i": "i", "o": "o", "O": "ɔ", "u": "u", "a1": "a", "e1": "e",
    "E1": "ɛ", "i1": "i", "o1": "o", "O1": "ɔ", "u1": "u", "p": "p", "b": "b", "t": "t", "d": "d",
    "k": "k", "g": "ɡ", "f": "f", "v": "v", "s": "s", "z": "z", "S": "ʃ", "Z": "ʒ", "ts": "ts",
    "dz": "dz", "tS": "tʃ", "dZ": "dʒ", "m": "m", "n": "n", "J": "ɲ", "nf": "ɱ", "ng": "ŋ",
    "l": "l", "L": "ʎ", "r": "r", "j": "j", "w": "w", "#": "", "_": "", "pau": "",
    "pp": "p", "bb": "b", "tt": "t", "dd": "d", "kk": "k", "gg": "ɡ", "ff": "f", "vv": "v",
    "ss": "s", "SS": "ʃ", "tts": "ts", "ddz": "dz", "ttS": "tʃ", "ddZ": "dʒ", "mm": "m", "nn": "n",
    "JJ": "ɲ", "ll": "l", "LL": "ʎ", "rr": "r",
}


def from_alphabet(phone: str, table: dict) -> str:
    """Engine phone -> IPA string ('' for pauses). Stress digits are ignored; unknown phones
    fall back to the first table entry sharing their letters, else to a neutral schwa."""
    p = phone.strip()
    if p in table:
        return table[p]
    q = p.rstrip("0123456789").lower() if table is ARPABET else p.rstrip("0123456789")
    if q in table:
        return table[q]
    return "ə"
