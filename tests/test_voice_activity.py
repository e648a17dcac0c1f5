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


def _noisy_speech_with_pause(speech16k, rate=16000):
    """Speech, 0.6 s of room noise 40 dB under it, speech again: a real recording's pause."""
    noise = 0.003 * np.random.default_rng(0).standard_normal(int(0.6 * rate)).astype(np.float32)
    return np.concatenate([speech16k[:rate * 2], noise, speech16k[rate:rate * 2]])


def test_pause_weights_find_audible_pauses_over_a_noise_floor(speech16k):
    rate, fps = 16000, 30
    clip = _noisy_speech_with_pause(speech16k, rate)
    n = int(len(clip) / rate * fps)
    w = voice_activity.pause_weights(clip, rate, fps, n)
    t = np.arange(n) / fps
    assert (w[(t > 2.1) & (t < 2.5)] == 1).all()                  # inside the pause
    assert set(np.unique(w)) <= {0.0, 0.5, 1.0}
    i = j = int(2.3 * fps)
    while w[i - 1] > 0:
        i -= 1
    while w[j + 1] > 0:
        j += 1
    assert w[i] == w[j] == 0.5 and (w[i + 1:j] == 1).all()        # its edge frames are half-way
    assert 1.8 < t[i] < 2.1 and 2.5 < t[j] < 2.8
    assert not voice_activity.pause_weights(np.full(rate, 0.1, np.float32), rate, fps, 30).any()


def test_remove_opening_closes_only_the_opening_and_only_where_asked():
    rng = np.random.default_rng(1)
    T = 40
    from core import flame, lip_aperture
    u = np.zeros((68, 3))
    u[list(flame.MOUTH_LANDMARKS), 1] = -rng.uniform(0.2, 1.0, len(flame.MOUTH_LANDMARKS))
    u[62, 1], u[66, 1] = 0.2, -0.8                                # gap(u) = 1: an opening pattern
    smile = np.zeros((68, 3))
    smile[[48, 54], 0] = [-1e-3, 1e-3]                             # mouth corners out: kept
    smile[19, 1] = 2e-3                                            # a brow: never touched
    g = np.abs(rng.normal(5e-3, 3e-3, T))
    lmk = (g[:, None, None] * u[None] + smile[None]).astype(np.float32)
    w = np.zeros(T)
    w[10:20] = 1.0
    w[10] = w[19] = 0.5
    out = lip_aperture.remove_opening(lmk, w)
    gap_in, gap_out = lip_aperture.vertical_gap(lmk), lip_aperture.vertical_gap(out)
    np.testing.assert_allclose(gap_out, (1 - w) * gap_in, atol=1e-7)   # a pause keeps (1 - w) of its gap
    np.testing.assert_array_equal(out[w == 0], lmk[w == 0])
    np.testing.assert_allclose(out[11:19, [48, 54], 0], lmk[11:19, [48, 54], 0], atol=1e-7)
    np.testing.assert_array_equal(out[:, 19], lmk[:, 19])
    # pressed lips (negative gap) are not pulled apart; a track that never opens is returned as is
    pressed = lmk.copy()
    pressed[:, 62, 1] -= 0.1
    assert (lip_aperture.vertical_gap(lip_aperture.remove_opening(pressed, w))[w == 1]
            <= lip_aperture.vertical_gap(pressed)[w == 1] + 1e-9).all()
    still = np.zeros_like(lmk)
    assert lip_aperture.remove_opening(still, w) is still
    # nor is one whose gap barely varies (a steady tone: ~0.05 mm), whose pattern would be noise
    # magnified into centimetres of motion; pressing does not apply to it either
    faint = (lmk * 0.01).astype(np.float32)
    assert lip_aperture.remove_opening(faint, w, np.full(T, 1e-3)) is faint


def test_the_animator_closes_the_mouth_in_audible_pauses(speech16k, topology):
    animator = Animator.load(encoder="hama")
    rate, fps = 16000, 30
    clip = _noisy_speech_with_pause(speech16k, rate)
    job = animator.prepare((clip, rate), topology.template, fps)
    track = animator.landmark_track(job)
    animator.pause_rest = False
    raw = animator.landmark_track(job)
    inside = job.pause == 1
    assert inside.sum() >= 10
    from core import lip_aperture
    assert lip_aperture.vertical_gap(track[inside]).max() < 1e-6        # no opening (pressed lips may stay)
    # which S2L alone left (how much depends on the weights: 0.09 mm for today's hama)
    assert lip_aperture.vertical_gap(raw[inside]).max() > 2e-5
    assert np.abs(track[inside] - raw[inside]).max() > 2e-5
    np.testing.assert_array_equal(track[job.pause == 0], raw[job.pause == 0])
