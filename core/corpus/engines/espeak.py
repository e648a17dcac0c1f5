"""espeak-ng through its C API: audio and phoneme events from the same synthesis call.

``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ..., PHONEME_EVENTS | PHONEME_IPA)`` makes the
library call our callback with audio blocks and an event list; each espeakEVENT_PHONEME event
holds the phoneme's IPA name and ``sample``, the index (at 22050 Hz) where it starts in the
output. A phoneme ends where the next one starts; events with an empty name are pauses.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from . import Phone, Synthesis, VoiceSpec, move_closures_into_stops, tidy_phones, to_16k

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PHONEME_EVENTS, _PHONEME_IPA = 0x1, 0x2
_EVENT_PHONEME, _EVENT_END, _EVENT_MSG_TERMINATED = 7, 5, 6
_RATE, _PITCH, _RANGE = 1, 3, 4
_CHARS_UTF8 = 1


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_STATE = {}


def _library():
    if "lib" in _STATE:
        return _STATE["lib"]
    path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise RuntimeError("espeak-ng library not found: install it with `apt-get install espeak-ng` "
                           "(tools/setup_corpus.sh does)") from exc
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _PHONEME_IPA)
    if rate <= 0:
        raise RuntimeError("espeak_Initialize failed (espeak-ng-data missing?)")
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    buf = {"audio": [], "events": []}

    def on_synth(wav, n, events):
        if n > 0:
            buf["audio"].append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                name = bytes(e.id).split(b"\0")[0].decode("utf-8", "replace")
                buf["events"].append((e.sample, name))
            i += 1
        return 0

    callback = _CALLBACK(on_synth)
    lib.espeak_SetSynthCallback(callback)
    _STATE.update(lib=lib, rate=rate, buf=buf, callback=callback, voice=None)
    return lib


def voice_exists(name: str) -> bool:
    """Whether espeak-ng knows the voice; forgets the engine's current voice (it was replaced)."""
    ok = _library().espeak_SetVoiceByName(name.encode()) == 0
    _STATE["voice"] = None
    return ok


class EspeakEngine:
    name = "espeak"

    def synthesize_many(self, voice: VoiceSpec, texts: list) -> list:
        return [self.synthesize(voice, t) for t in texts]

    def synthesize(self, voice: VoiceSpec, text: str) -> Synthesis:
        lib = _library()
        if _STATE["voice"] != voice:
            if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise RuntimeError(f"espeak-ng has no voice {voice.name!r}")
            lib.espeak_SetParameter(_RATE, int(round(175 * voice.rate)), 0)
            lib.espeak_SetParameter(_PITCH, int(voice.pitch), 0)
            lib.espeak_SetParameter(_RANGE, int(voice.extra[0]) if voice.extra else 50, 0)
            _STATE["voice"] = voice
        buf = _STATE["buf"]
        buf["audio"].clear()
        buf["events"].clear()
        data = text.encode("utf-8") + b"\0"
        lib.espeak_Synth(data, len(data), 0, 1, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        sr = _STATE["rate"]
        raw = np.concatenate(buf["audio"]) if buf["audio"] else np.zeros(0, np.int16)
        audio = to_16k(raw.astype(np.float32) / 32768.0, sr)
        duration = len(audio) / 16000
        events = sorted(buf["events"])
        phones = []
        for k, (sample, name) in enumerate(events):
            start = sample / sr
            end = events[k + 1][0] / sr if k + 1 < len(events) else len(raw) / sr
            phones.append(Phone(start, end, name))
        phones = tidy_phones(phones, duration)
        phones = move_closures_into_stops(audio, phones)
        return Synthesis(audio=audio, phones=phones, text=text)
