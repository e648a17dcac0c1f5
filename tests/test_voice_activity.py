"""core.voice_activity: digital silence rests the face in every path, speech is untouched."""

import numpy as np

from core import voice_activity
from core.pipeline import Animator


def test_gate_is_zero_in_silence_one_near_sound_and_fades_between():
    rate, fps = 16000, 30
    x = np.zeros(rate * 4, np.float32)
    x[rate * 2:rate * 2 + rate // 2] = 0.1 * np.sin(np.arange(rate // 2) * 0.3)   # sound in 2.0-2.5 s
    g = voice_activity.gate(x, rate, fps, 120)
    t = np.arange(120) / fps
    assert (g[(t > 2.0) & (t < 2.5)] == 1).all()
    assert (g[t < 2.0 - voice_activity.HOLD_S - voice_activity.FADE_S] == 0).all()
    assert (g[t > 2.5 + voice_activity.HOLD_S + voice_activity.FADE_S] == 0).all()
    ramp = g[(t > 1.7) & (t < 2.0)]
    assert (np.diff(ramp) >= 0).all() and 0 < ramp[len(ramp) // 2] < 1   # a fade, not a jump
    assert (voice_activity.gate(np.zeros(rate), rate, fps, 30) == 0).all()
    assert (voice_activity.gate(np.full(rate, 0.01, np.float32), rate, fps, 30) == 1).all()


def test_silence_rests_the_face_in_animate_and_stream(speech16k, topology):
    animator = Animator.load(weights_dir="/nonexistent-weights", encoder="mel", allow_random=True)
    rate = 16000
    clip = np.concatenate([speech16k[:rate * 2], np.zeros(rate * 2, np.float32), speech16k[:rate]])
    anim = animator.animate((clip, rate), topology.template, fps=30, upper_face=False)
    moving = np.abs(anim.displacements).reshape(anim.num_frames, -1).max(axis=1)
    t = np.arange(anim.num_frames) / 30
    quiet = (t > 2.0 + voice_activity.HOLD_S + voice_activity.FADE_S) & \
            (t < 4.0 - voice_activity.HOLD_S - voice_activity.FADE_S)
    assert quiet.sum() > 30 and (moving[quiet] == 0).all()
    assert moving[t < 1.5].max() > 0
    streamed = np.concatenate([b for _, b in animator.stream((clip, rate), topology.template, fps=30,
                                                             upper_face=False)])
    assert np.array_equal(streamed, anim.displacements)
    zeros = animator.animate((np.zeros(rate * 3, np.float32), rate), topology.template, fps=30, upper_face=False)
    assert np.abs(zeros.displacements).max() == 0.0
    # with the upper-face layer (the default) people still blink in silence: only the lids move
    layered = animator.animate((np.zeros(rate * 3, np.float32), rate), topology.template, fps=30)
    moved = np.abs(layered.displacements).max(axis=(0, 2)) > 0
    lids = np.zeros(len(moved), bool)
    for name in ("blink_L", "blink_R", "blink_L_arc", "blink_R_arc"):   # a blink and its lid-path correctives
        lids[layered.upper_face.keys[layered.upper_face.names.index(name)].any(axis=1)] = True
    assert not (moved & ~lids).any()
