"""S2L and S2D (torch) shapes, lengths and gradients, and numpy-runtime parity."""
import numpy as np
import pytest
import torch

from core import framerate, weights
from core.numpy_runtime import NumpyS2D, NumpyS2L, random_state, s2d_parameter_shapes, s2l_parameter_shapes
from core.s2d import S2D, S2DConfig
from core.s2l import S2L, S2LConfig
from core.torch_runtime import TorchS2D, TorchS2L


# (fps, seconds, frames) worked out by hand: the frames that cover the clip, frame i at i / fps.
# 0.5 s at 25 fps is 12.5 -> 13; 3.7 s at 29.97 is 110.889 -> 111; 10 s at 30 is exactly 300.
FRAME_COUNTS = [
    (24, 0.5, 12), (25, 0.5, 13), (29.97, 0.5, 15), (30000 / 1001, 0.5, 15), (30, 0.5, 15), (60, 0.5, 30),
    (24, 3.7, 89), (25, 3.7, 93), (29.97, 3.7, 111), (30000 / 1001, 3.7, 111), (30, 3.7, 111), (60, 3.7, 222),
    (24, 10.0, 240), (25, 10.0, 250), (29.97, 10.0, 300), (30000 / 1001, 10.0, 300), (30, 10.0, 300),
    (60, 10.0, 600),
]


@pytest.mark.parametrize("fps, seconds, expected", FRAME_COUNTS)
def test_s2l_output_length_follows_fps(fps, seconds, expected):
    n_enc = int(seconds * 50)
    n = framerate.num_frames(seconds, fps)
    assert n == expected
    model = S2L(S2LConfig(input_dim=12, hidden_size=8)).eval()
    out = model(torch.randn(1, n_enc, 12), n, fps)
    assert out.shape == (1, expected, 68, 3)


def test_num_frames_edges():
    assert framerate.num_frames(10.0, 30) == 300
    assert framerate.num_frames(10.0, 29.97) == 300
    assert framerate.num_frames(0.001, 60) == 1
    with pytest.raises(ValueError):
        framerate.num_frames(1.0, 0)


def test_frame_resampling_is_linear_in_time():
    # A feature that is a ramp in time stays the same ramp at any frame rate.
    t_enc = (np.arange(100) + 0.5) / 50.0
    feats = t_enc[:, None].astype(np.float64)
    out = framerate.resample_frames(feats, 50.0, 24.0, 48)
    t = np.arange(48) / 24.0
    inside = (t >= t_enc[0]) & (t <= t_enc[-1])
    np.testing.assert_allclose(out[inside, 0], t[inside], atol=1e-12)


def test_s2l_paper_architecture():
    model = S2L(S2LConfig())
    lstm = model.lstm
    assert (lstm.num_layers, lstm.hidden_size, lstm.bidirectional, lstm.dropout) == (3, 64, True, 0.2)
    assert model.output.in_features == 128 and model.output.out_features == 204


def test_s2l_gradients_flow_to_every_parameter():
    model = S2L(S2LConfig(encoder="mel", input_dim=80, frontend_channels=16))
    # The output layer starts at zero (no motion, as in the paper's code): its gradient is
    # non-zero at once; the layers below receive gradient once it has moved.
    assert model.output.weight.abs().sum() == 0
    out = model(torch.randn(2, 40, 80), 24, 30.0)
    (out - 0.01).pow(2).mean().backward()
    assert model.output.weight.grad.abs().sum() > 0 and model.output.bias.grad.abs().sum() > 0
    torch.nn.init.normal_(model.output.weight, std=0.1)
    model.zero_grad()
    out = model(torch.randn(2, 40, 80), 24, 30.0)
    out.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_s2d_shapes_levels_and_gradients():
    model = S2D(S2DConfig())
    assert [c.spiral.shape[0] for c in model.convs] == [20, 79, 314, 1256, 5023]
    assert len(model.convs) == 5 and len(model.ups) == 4
    x = torch.randn(3, 68, 3, requires_grad=True) * 0.01
    out = model(x)
    assert out.shape == (3, 5023, 3)
    out.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def _relative_error(ours, ref):
    """Largest difference as a fraction of the largest output (outputs are ~1e-3 m)."""
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name", ["s2l_hama", "s2l_mel"])
def test_numpy_s2l_equals_torch_on_shipped_weights(name):
    config, state, _ = weights.load_network(weights.DEFAULT_DIR, name, "s2l")
    # Features around the training statistics, so the trained network sees inputs of its scale.
    rng = np.random.default_rng(0)
    feats = (state["feature_mean"] + state["feature_std"] * rng.normal(size=(173, config["input_dim"])))
    feats = feats.astype(np.float32)
    ours = NumpyS2L(config, state)(feats, 104, 29.97)
    ref = TorchS2L(config, state)(feats, 104, 29.97)
    assert ours.shape == (104, 68, 3)
    assert np.abs(ref).max() > 1e-4  # a trained network moves the landmarks (metres)
    assert _relative_error(ours, ref) < 1e-4, _relative_error(ours, ref)
    if config.get("seal_head"):      # and its seal logits (core.lip_seal)
        _, seal = NumpyS2L(config, state)(feats, 104, 29.97, return_seal=True)
        _, seal_ref = TorchS2L(config, state)(feats, 104, 29.97, return_seal=True)
        assert np.abs(seal_ref).max() > 0.1 and np.abs(seal - seal_ref).max() < 1e-3


def test_numpy_s2d_equals_torch_on_shipped_weights():
    config, state, _ = weights.load_network(weights.DEFAULT_DIR, "s2d", "s2d")
    lmk = np.random.default_rng(1).normal(scale=0.003, size=(7, 68, 3)).astype(np.float32)
    ours = NumpyS2D(config, state)(lmk)
    ref = TorchS2D(config, state)(lmk)
    assert ours.shape == (7, 5023, 3)
    assert np.abs(ref).max() > 1e-4
    assert _relative_error(ours, ref) < 1e-4, _relative_error(ours, ref)


def test_numpy_runtime_equals_torch_on_random_weights():
    """Shapes the shipped weights do not cover (a mel front end of another width)."""
    config = dict(encoder="mel", input_dim=80, frontend_channels=32)
    state = random_state(s2l_parameter_shapes(config), seed=3)
    state["feature_mean"] = np.linspace(-1, 1, 80).astype(np.float32)
    state["feature_std"] = np.linspace(0.5, 2, 80).astype(np.float32)
    feats = np.random.default_rng(0).normal(size=(173, 80)).astype(np.float32)
    ours, ref = NumpyS2L(config, state)(feats, 104, 29.97), TorchS2L(config, state)(feats, 104, 29.97)
    assert _relative_error(ours, ref) < 1e-4, _relative_error(ours, ref)


def _layer_by_layer_s2d(config: dict, state: dict, lmk: np.ndarray) -> np.ndarray:
    """The training module, which applies each layer as the paper writes it."""
    model = S2D(S2DConfig(**config)).eval()
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()})
    with torch.no_grad():
        return model(torch.from_numpy(lmk)).numpy()


def test_numpy_and_torch_s2d_equal_the_layer_by_layer_network():
    state = random_state(s2d_parameter_shapes({}), seed=4)
    lmk = np.random.default_rng(1).normal(scale=0.005, size=(11, 68, 3)).astype(np.float32)
    ref = _layer_by_layer_s2d({}, state, lmk)
    for runtime in (NumpyS2D({}, state), TorchS2D({}, state)):
        ours = runtime(lmk)
        assert ours.shape == (11, 5023, 3)
        assert np.abs(ours - ref).max() < 1e-5


def test_s2d_reformulation_is_exact_with_the_shipped_weights():
    """The folded / coarse-level / merged-operator S2D against the layer-by-layer network."""
    directory = weights.DEFAULT_DIR
    if not weights.has_networks(directory, "s2d"):
        pytest.skip("no shipped S2D weights")
    config, state, _ = weights.load_network(directory, "s2d", "s2d", weights.read_manifest(directory))
    # Speech-sized landmark motion (a few mm), 9 frames so the runtime's frame passes split.
    lmk = np.random.default_rng(2).normal(scale=0.003, size=(9, 68, 3)).astype(np.float32)
    ref = _layer_by_layer_s2d(config, state, lmk)
    scale = np.abs(ref).max()
    assert scale > 1e-4  # the trained decoder moves the face
    for runtime in (NumpyS2D(config, state), TorchS2D(config, state)):
        diff = np.abs(runtime(lmk) - ref).max()
        assert diff < 1e-6 and diff < 1e-5 * scale, diff


def test_s2d_threads_and_passes_do_not_change_the_result():
    """Batches are split between threads and cut into passes: any split gives the same motion
    (up to float32 rounding in the matrix products, which may group a pass's rows differently)."""
    config, state, _ = weights.load_network(weights.DEFAULT_DIR, "s2d", "s2d")
    lmk = np.random.default_rng(3).normal(scale=0.003, size=(37, 68, 3)).astype(np.float32)
    one = NumpyS2D(config, state)
    one.threads = 1
    ref = one(lmk)
    two = NumpyS2D(config, state)
    two.threads, two.frames_per_pass = 2, 5
    assert np.abs(two(lmk) - ref).max() < 1e-8
    assert np.abs(np.concatenate([two(lmk[i:i + 1]) for i in range(3)]) - ref[:3]).max() < 1e-8
    assert two(lmk[:0]).shape == (0, 5023, 3)
    torch_two = TorchS2D(config, state)
    torch_two.threads = 2
    assert np.abs(torch_two(lmk) - ref).max() < 1e-7
