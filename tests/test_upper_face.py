"""The upper-face layer: F0 tracker, lid shapes on the mesh, blink timing rules, determinism,
the pipeline option, and the evaluation tool on a small setting."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from core import flame, prosody, upper_face as uf
from core.pipeline import Animator
from tests.conftest import SAMPLE_AUDIO

ROOT = Path(__file__).resolve().parent.parent


def _tone(f0, seconds=1.0, sr=16000):
    t = np.arange(int(sr * seconds)) / sr
    # a voice-like harmonic tone: the fundamental plus weaker harmonics
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, 6))


@pytest.mark.parametrize("f0", [75.0, 110.0, 180.0, 260.0, 400.0])
def test_f0_tracker_on_tones(f0):
    est, voiced = prosody.yin_f0(_tone(f0))
    assert voiced.mean() > 0.9
    assert np.abs(est[voiced] - f0).max() < 0.01 * f0


def test_f0_tracker_follows_a_glide_and_ignores_noise():
    sr = 16000
    t = np.arange(2 * sr) / sr
    f_inst = 100.0 + 60.0 * t                      # 100 -> 220 Hz over 2 s
    x = np.sin(2 * np.pi * np.cumsum(f_inst) / sr)
    est, voiced = prosody.yin_f0(x)
    ref = 100.0 + 60.0 * prosody.frame_times(len(est))
    assert voiced.mean() > 0.9
    assert np.median(np.abs(est[voiced] - ref[voiced]) / ref[voiced]) < 0.01
    noise = np.random.default_rng(0).normal(scale=0.1, size=sr)
    assert prosody.yin_f0(noise)[1].mean() < 0.05
    assert not prosody.yin_f0(np.zeros(sr))[1].any()


def test_long_clip_analysis_in_chunks_equals_the_whole_array_formulas():
    """Loudness and the 8 kHz signal are computed a chunk at a time (bounded memory on long
    clips) and the pitch frames on two threads: the numbers are those of the plain formulas."""
    rng = np.random.default_rng(4)
    for n in (30, 31, prosody._CHUNK + 1, 2 * prosody._CHUNK + 17):
        x = (0.1 * np.sin(np.arange(n) * 0.05) + rng.normal(scale=0.01, size=n)).astype(np.float32)
        padded = np.zeros(prosody._num_frames(n) * prosody.HOP + prosody.WINDOW)
        padded[:n] = x
        sq = np.concatenate([[0.0], np.cumsum(padded ** 2)])
        starts = np.arange(prosody._num_frames(n)) * prosody.HOP
        plain = 10.0 * np.log10(np.maximum(sq[starts + prosody.WINDOW] - sq[starts], 0.0) / prosody.WINDOW + 1e-10)
        assert np.array_equal(prosody.loudness_db(x), plain)
        halved = prosody._halve(x)
        out = np.zeros(len(halved) + 5)
        prosody._halve_into(x, out)
        assert np.array_equal(out[:len(halved)], halved) and not out[len(halved):].any()
    f0, voiced = prosody.yin_f0(x)
    one, _ = prosody.yin_f0(x, block=1 << 20)   # one block: the same frames, the same numbers
    assert voiced.any() and np.array_equal(f0, one)


def test_accent_envelope_peaks_on_a_pitch_rise():
    sr = 16000
    t = np.arange(3 * sr) / sr
    f_inst = 110.0 + 50.0 * np.exp(-0.5 * ((t - 1.5) / 0.15) ** 2)   # an accent at 1.5 s
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f_inst) / sr)
    p = prosody.analyse(x)
    peak = prosody.frame_times(p.num_frames)[np.argmax(p.accent)]
    assert abs(peak - 1.5) < 0.1


def test_blink_closes_the_lids_on_the_mesh_and_stays_outside_the_eyeball(topology):
    v = topology.template.astype(np.float64)
    names, basis = uf.basis()
    assert names == uf.NAMES and basis.shape == (len(uf.NAMES), 5023, 3)
    rest = {s: uf.lid_gap(v, s) for s in "LR"}
    assert all(0.006 < g < 0.012 for g in rest.values())  # an open FLAME eye: ~8.6 mm
    previous = rest
    for w in (0.25, 0.5, 0.75, 1.0):
        controls = np.zeros((1, len(uf.NAMES)))
        controls[0, [uf.INDEX["blink_L"], uf.INDEX["blink_R"]]] = w
        closed = v + uf.dense(controls)[0]
        gap = {s: uf.lid_gap(closed, s) for s in "LR"}
        assert all(gap[s] < previous[s] for s in "LR")   # the lids close monotonically
        previous = gap
        for s, (a, b) in uf.EYEBALLS.items():   # lid skin outside the eyeball never passes into it
            skin = uf.eye_rigs()[s].region
            c, radius = uf._sphere_fit(v[a:b])
            outside = np.linalg.norm(v[skin] - c, axis=1) >= radius
            assert (np.linalg.norm(closed[skin[outside]] - c, axis=1) >= radius).all()
    assert max(gap.values()) < 0.001                # closed: under 1 mm
    # eye_wide or squint at full weight do not keep a blink from closing
    controls = np.zeros((1, len(uf.NAMES)))
    controls[0, [uf.INDEX["blink_L"], uf.INDEX["blink_R"], uf.INDEX["eye_wide"], uf.INDEX["squint"]]] = 1.0
    closed = v + uf.dense(controls)[0]
    assert max(uf.lid_gap(closed, s) for s in "LR") < 0.001


def test_shapes_move_their_regions_only(topology):
    v = topology.template.astype(np.float64)
    _, basis = uf.basis()
    lmk = flame.landmarks(v)
    lips = topology.regions["lips"]
    for name, shape in zip(uf.NAMES, basis):
        assert np.abs(shape[uf.FACE_VERTICES:]).max() == 0.0, name       # eyeballs never move
        assert np.abs(shape[lips]).max() == 0.0, name                     # the lips stay the networks'
    brow = flame.landmarks(basis.astype(np.float64))[:, 17:27]
    assert brow[uf.INDEX["brow_raise"], :, 1].min() > 0.003          # all brow points up > 3 mm
    assert brow[uf.INDEX["brow_lower"], :, 1].max() < 0.0            # all down
    inner = brow[uf.INDEX["brow_inner_raise"], :, 1]
    assert inner[[4, 5]].mean() > 3 * inner[[0, 9]].mean()           # the inner ends rise most
    # frown: the inner brow ends move toward each other
    moved = lmk[[21, 22]] + brow[uf.INDEX["brow_lower"], [4, 5]]
    assert abs(moved[0, 0] - moved[1, 0]) < abs(lmk[21, 0] - lmk[22, 0]) - 0.002


def test_layer_builds_on_any_identity(topology):
    """On another head (built from the template by moving its eyes and lids) the blink closes
    that head's own lids."""
    v = topology.template.astype(np.float64).copy()
    v *= np.array([1.05, 0.97, 1.0])   # a wider, flatter head
    _, keys = uf.shape_keys(v)
    controls = np.zeros((1, len(uf.NAMES)))
    controls[0, :2] = 1.0
    closed = v + uf.dense(controls, v)[0]
    assert max(uf.lid_gap(closed, s) for s in "LR") < 0.001


def _speech_with_pauses(seconds=30.0, seed=0):
    """Syllable-like voiced bursts (pitch-accented every few syllables) with pauses."""
    sr = 16000
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * sr))
    t = 0.3
    while t < seconds - 1.0:
        phrase = rng.uniform(1.5, 3.0)
        end = min(t + phrase, seconds - 0.5)
        while t < end:
            dur = rng.uniform(0.12, 0.25)
            n = int(dur * sr)
            tt = np.arange(n) / sr
            f0 = 120.0 * (1.3 if rng.random() < 0.3 else 1.0)
            env = np.sin(np.pi * tt / dur) ** 2
            a = int(t * sr)
            x[a:a + n] += 0.3 * env * sum(np.sin(2 * np.pi * k * f0 * tt) / k for k in range(1, 5))
            t += dur + rng.uniform(0.02, 0.06)
        t += rng.uniform(0.4, 1.0)   # a pause between phrases
    return x.astype(np.float32)


def test_controller_is_deterministic_given_a_seed():
    x = _speech_with_pauses(8.0)
    a, names = uf.upper_face_motion(x, 30.0, 240, seed=3)
    b, _ = uf.upper_face_motion(x, 30.0, 240, seed=3)
    c, _ = uf.upper_face_motion(x, 30.0, 240, seed=4)
    assert names == uf.NAMES and a.shape == (240, len(uf.NAMES)) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_blink_timing_rules():
    fps, seconds = 30.0, 120.0
    x = _speech_with_pauses(seconds, seed=1)
    n = int(seconds * fps)
    pros = prosody.analyse(x)
    speech = prosody.to_frames(pros.speech.astype(float), fps, n) > 0.5
    # a lip closure every ~0.3 s during speech (worst case), none in pauses
    closure = np.zeros(n, bool)
    closure[::9] = True
    closure &= speech
    w, _ = uf.upper_face_motion(x, fps, n, seed=0, avoid=closure)
    blink = w[:, uf.INDEX["blink_L"]]
    np.testing.assert_array_equal(blink, w[:, uf.INDEX["blink_R"]])
    events = prosody.runs(blink > 0.1)
    rate = len(events) / (seconds / 60.0)
    assert 8 <= rate <= 30, rate
    assert not (closure & (blink >= 0.5)).any()          # never half-closed at a lip closure
    for a, b in events:
        assert 0 < a and b < n                             # whole blinks only, none cut by the clip's ends
        ms = (b - a) / fps * 1000.0
        assert 100 <= ms <= 400, ms
        peak = a + int(np.argmax(blink[a:b]))
        assert blink[peak] == 1.0                          # every blink closes fully on a frame
        assert (peak - a) < (b - peak)                     # fast close, slower opening
    # blinks prefer pauses: the share of blink peaks in pauses exceeds the pauses' share of time
    peaks = [a + int(np.argmax(blink[a:b])) for a, b in events]
    assert np.mean(~speech[peaks]) > 1.5 * np.mean(~speech)


def test_bilabial_peaks_ignore_the_closed_mouth_of_a_pause():
    fps = 30.0
    gap = np.zeros(90)
    gap[10:40] = 0.004           # open speech ...
    gap[24:26] = 0.0             # ... with a bilabial closure at 24-25
    gap[60:80] = 0.003
    peaks = uf.bilabial_peaks(gap, fps)
    assert peaks[24] and peaks[25]
    assert not peaks[:9].any() and not peaks[45:58].any() and not peaks[82:].any()


def test_brows_follow_pitch_accents():
    fps = 30.0
    x = _speech_with_pauses(20.0, seed=2)
    n = int(20.0 * fps)
    w, _ = uf.upper_face_motion(x, fps, n, seed=0)
    brow = w[:, uf.INDEX["brow_raise"]]
    assert brow.max() > 0.2
    env = uf.pitch_accent_envelope(x, fps, n)
    assert np.corrcoef(brow, env)[0, 1] > 0.0
    half, _ = uf.upper_face_motion(x, fps, n, seed=0, intensity=0.5)
    np.testing.assert_allclose(half[:, 2:], 0.5 * w[:, 2:], atol=1e-6)   # expressive parts scale
    np.testing.assert_array_equal(half[:, :2], w[:, :2])                  # blinks stay full


@pytest.fixture(scope="module")
def animator():
    return Animator.load(weights_dir="/nonexistent-weights", encoder="mel", allow_random=True)


def test_pipeline_option_is_additive(animator, topology, speech16k):
    clip = (speech16k[:16000 * 3], 16000)
    off = animator.animate(clip, topology.template, fps=30, upper_face=False)
    assert off.upper_face is None
    # today's output: S2D of S2L, mapped to the head (and gated in silence), nothing else
    job = animator.prepare(clip, topology.template, 30.0)
    lmk = animator.landmark_track(job)
    today = animator.decode(job, lmk, np.arange(len(lmk)))
    np.testing.assert_allclose(off.displacements, today, atol=1e-6)
    on = animator.animate(clip, topology.template, fps=30, seed=1)
    track = on.upper_face
    assert track is not None and track.names == uf.KEY_NAMES
    np.testing.assert_allclose(on.displacements - off.displacements, track.displacements(), atol=1e-6)
    again = animator.animate(clip, topology.template, fps=30, seed=1)
    np.testing.assert_array_equal(on.displacements, again.displacements)
    streamed = np.concatenate([b for _, b in animator.stream(clip, topology.template, fps=30, seed=1)])
    np.testing.assert_allclose(streamed, on.displacements, atol=1e-7)
    alone = animator.upper_face_track(job, seed=1)
    np.testing.assert_array_equal(alone.weights, track.weights)


def test_pipeline_upper_face_on_a_moved_head(animator, topology, speech16k):
    """The layer is built on the user's head in its own frame and units."""
    from tests.conftest import rotation
    clip = (speech16k[:16000 * 2], 16000)
    r = rotation((1, 0.2, 0), 90)
    user = 100.0 * topology.template.astype(np.float64) @ r.T + [10.0, -3.0, 50.0]
    base = animator.animate(clip, topology.template, fps=24, seed=5).upper_face.displacements()
    moved = animator.animate(clip, user, fps=24, seed=5).upper_face.displacements()
    expected = 100.0 * base.astype(np.float64) @ r.T
    assert np.abs(moved - expected).max() <= 1e-4 * max(np.abs(expected).max(), 1e-9)


def _samples(clip):
    from core import audio as audio_io
    return audio_io.normalise_loudness(audio_io.load_audio(clip[0], clip[1]))


def test_evaluation_tool_small(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import evaluate_upper_face
    rc = evaluate_upper_face.main(["--out", str(tmp_path), "--files", str(SAMPLE_AUDIO), "--allow-random",
                                   "--weights", "/nonexistent-weights"])
    assert rc == 0
    report = json.loads((tmp_path / "upper_face.json").read_text())
    s = report["summary"]
    assert s["recordings"] == 1 and s["lip_change_from_layer_mm_max"] == 0.0
    for e in report["recordings"][0]["blink_events"]:
        assert e["min_gap_mm"] < 1.0
    assert (tmp_path / "upper_face.md").read_text().startswith("# Upper-face layer")
    assert (tmp_path / "upper_face.png").stat().st_size > 1000


def test_measure_reads_blinks_and_brows_off_the_mesh(topology):
    fps, n = 30.0, 90
    controls = np.zeros((n, len(uf.NAMES)))
    t = (np.arange(n) - 30) / fps
    controls[:, 0] = controls[:, 1] = uf.blink_profile(t, 0.3)            # one blink, lids meet at frame 30
    controls[60:80, uf.INDEX["brow_raise"]] = 0.5
    v = topology.template + uf.dense(controls)
    m = uf.measure(v, topology.template, fps)
    assert m["blinks"] == 1 and m["blink_events"][0]["frame"] == 30
    assert m["blink_events"][0]["min_gap_mm"] < 1.0
    assert 100 <= m["blink_events"][0]["duration_ms"] <= 400
    assert m["blinks_per_minute"] == pytest.approx(1 / (n / fps / 60))
    assert m["brow_p95_mm"] > 1.5 and m["_brow_mm"][:55].max() < 0.5
