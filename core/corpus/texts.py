"""Sentences to speak, from offline Debian text packages (fortune cookie collections).

Sources (Debian package -> language): fortunes (en), fortunes-de (de), fortunes-es (es),
fortunes-it (it), fortunes-pl (pl), fortunes-cs (cs), fortunes-ru (ru), fortunes-br (pt, Brazilian
Portuguese: the held-out test language). Each fortune is cleaned (attributions, URLs, code,
digits and ASCII art dropped), split into sentences, and sentences of 4-30 words are kept.

A sentence's id is a hash of its language and normalised text, and its split (train / val /
test) is a function of that id only, so splits never depend on generation order.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
ENGLISH_FILES = ("computers", "cookie", "definitions", "education", "food", "fortunes", "goedel",
                 "humorists", "kids", "knghtbrd", "law", "linux", "literature", "love", "magic",
                 "medicine", "men-women", "miscellaneous", "news", "paradoxum", "people", "pets",
                 "platitudes", "politics", "pratchett", "riddles", "science", "songs-poems", "sports",
                 "startrek", "tao", "wisdom", "work")
SOURCES = {
    "en": [FORTUNES / n for n in ENGLISH_FILES],
    "de": "de", "es": "es", "it": "it", "pl": "pl", "cs": "cs", "ru": "ru",
    "pt": [FORTUNES / "brasil"],
}
PACKAGES = {"en": "fortunes", "de": "fortunes-de", "es": "fortunes-es", "it": "fortunes-it",
            "pl": "fortunes-pl", "cs": "fortunes-cs", "ru": "fortunes-ru", "pt": "fortunes-br"}
SCRIPT = {"ru": re.compile(r"^[А-Яа-яЁё ,.!?;:'\-]+$")}
LATIN = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿĀ-ž ,.!?;:'\-]+$")
SPLIT_FRACTIONS = {"val": 0.05, "test": 0.10}   # of each language's sentences; the rest: train


def _files(lang: str) -> list:
    src = SOURCES[lang]
    if isinstance(src, str):
        folder = FORTUNES / src
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith((".dat", ".u8")))
    return [p for p in src if p.exists()]


def _clean_fortune(text: str) -> str:
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(("--", "—", "- -")) or re.match(r"^\s*-?\s*[A-Z][\w.]+ [\w.]+,? \d{3,4}", s):
            continue
        lines.append(s.lstrip("-–— ").strip())
    return " ".join(lines)


def _sentences(text: str) -> list:
    text = re.sub(r"\s+", " ", text).strip()
    text = text.replace("«", "").replace("»", "").replace("„", "").replace("“", "").replace("”", "")
    text = text.replace('"', "").replace("’", "'").replace("…", ".").replace("...", ".")
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def _acceptable(sentence: str, lang: str) -> bool:
    words = sentence.split()
    if not 4 <= len(words) <= 30 or not 20 <= len(sentence) <= 220:
        return False
    if not (SCRIPT.get(lang, LATIN)).match(sentence):
        return False
    if any(len(w) > 24 for w in words) or sentence.isupper():
        return False
    return sentence[0].isupper()


@lru_cache(maxsize=None)
def load_sentences(lang: str) -> tuple:
    """All usable sentences of a language, deduplicated, in a fixed (sorted by id) order."""
    if lang not in SOURCES:
        raise ValueError(f"no text source for language {lang!r}; known: {sorted(SOURCES)}")
    seen = {}
    for path in _files(lang):
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raw = path.read_text(encoding="latin-1")
        for fortune in raw.split("\n%\n"):
            for s in _sentences(_clean_fortune(fortune)):
                if _acceptable(s, lang):
                    seen.setdefault(sentence_id(lang, s), s)
    if not seen:
        raise RuntimeError(f"no sentences found for {lang!r}: install the Debian package {PACKAGES[lang]}")
    return tuple(seen[k] for k in sorted(seen))


def sentence_id(lang: str, sentence: str) -> str:
    norm = re.sub(r"[^\w]+", " ", sentence.lower()).strip()
    return hashlib.sha1(f"{lang}|{norm}".encode()).hexdigest()[:12]


def sentence_split(sid: str) -> str:
    u = int(sid[:8], 16) / 0xFFFFFFFF
    if u < SPLIT_FRACTIONS["test"]:
        return "test"
    if u < SPLIT_FRACTIONS["test"] + SPLIT_FRACTIONS["val"]:
        return "val"
    return "train"


def sentences_for(lang: str, split: str) -> tuple:
    """Sentences of one language whose id falls in ``split`` (train / val / test)."""
    return tuple(s for s in load_sentences(lang) if sentence_split(sentence_id(lang, s)) == split)
