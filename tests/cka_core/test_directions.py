"""Which module reads a representation, and the null-space direction built from it: checked by
running the network on with the moved representation (the function must not change)."""
import numpy as np
import pytest
import torch
from torch import nn

import sample_models
from cka_core import RepresentationError, capture
from cka_core.pitfalls import directions


class TwoReaders(nn.Module):
    """h = relu(lin(x)) is read by two heads; their outputs are added."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 12)
        self.act = nn.ReLU()
        self.head_a = nn.Linear(12, 3)
        self.head_b = nn.Linear(12, 4)

    def forward(self, x):
        h = self.act(self.lin(x))
        return torch.cat([self.head_a(h), self.head_b(h)], dim=1)


def test_every_reader_is_found_and_their_weights_stacked():
    torch.manual_seed(0)
    model = TwoReaders().double()
    example = torch.zeros(2, 6, dtype=torch.float64)
    assert [name for name, _ in directions.readers(model, "act", example)] == ["head_a", "head_b"]
    weight = directions.next_layer_weight(model, "act", example)
    assert weight.shape == (7, 12)
    v = directions.null_space_direction(weight, seed=3)
    h = model.act(model.lin(torch.randn(5, 6, dtype=torch.float64)))
    moved = h + 4.0 * torch.from_numpy(v)
    before = torch.cat([model.head_a(h), model.head_b(h)], dim=1)
    after = torch.cat([model.head_a(moved), model.head_b(moved)], dim=1)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)


def test_a_pre_activation_is_read_by_its_nonlinearity_not_by_the_next_linear():
    """Registration order would pick head_a here; the ReLU in between makes its null space useless."""
    example = torch.zeros(2, 6)
    with pytest.raises(RepresentationError, match=r"read by act \(ReLU\)"):
        directions.next_layer_weight(TwoReaders(), "lin", example)


def test_the_output_layer_and_unknown_layers_are_refused():
    example = torch.zeros(2, 6)
    with pytest.raises(RepresentationError, match="network's output"):
        directions.next_layer_weight(TwoReaders(), "head_b", example)
    with pytest.raises(RepresentationError, match="not a module"):
        directions.next_layer_weight(TwoReaders(), "nope", example)


@pytest.fixture(scope="module")
def digits():
    return sample_models.digits()


def _zoo_layers():
    return [(name, layer) for name in sample_models.available() for layer in sample_models.layer_names(name)
            if layer != "logits"]


@pytest.mark.parametrize("name,layer", _zoo_layers())
def test_zoo_null_space_moves_keep_the_logits_or_are_refused(name, layer, digits):
    """Every zoo layer: either the direction leaves the logits unchanged when the rest of the network
    runs on the moved representation, or a clear error says why there is none."""
    model = sample_models.load(name)
    example = torch.zeros(2, model.input_dim)
    try:
        v = directions.null_space_direction(directions.next_layer_weight(model, layer, example), seed=1)
    except RepresentationError as error:
        reading = [n for n, _ in directions.readers(model, layer, example)]
        assert reading, "every hidden layer is read by something"
        assert any(r in str(error) for r in reading) or "full column rank" in str(error)
        return
    x = torch.tensor(digits.X_test[:64], dtype=torch.float32)
    z = capture(model, x, layers=[layer])[layer]
    moved = torch.as_tensor(np.asarray(z).reshape(len(x), -1) + 3.0 * v, dtype=torch.float32)
    if layer not in sample_models.run_from_layers(name):
        pytest.fail(f"{name}:{layer} has a null-space direction but the network cannot run on from it")
    shape = (len(x),) + tuple(np.asarray(z).shape[1:])
    with torch.no_grad():
        before = model.run_from(layer, torch.as_tensor(np.asarray(z), dtype=torch.float32).reshape(shape))
        after = model.run_from(layer, moved.reshape(shape))
    # float32 round-off scales with the logits (mlp_deep_wide's reach ~600); a move the network can see shifts
    # them by O(1)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-4 * max(1.0, float(before.abs().max()) / 10))


def test_the_cnn_and_rnn_cases_that_registration_order_got_wrong():
    cnn, rnn = sample_models.load("cnn"), sample_models.load("rnn_relu")
    cnn_example, rnn_example = torch.zeros(2, cnn.input_dim), torch.zeros(2, rnn.input_dim)
    with pytest.raises(RepresentationError, match=r"conv2\.conv \(Conv2d\)"):
        directions.next_layer_weight(cnn, "conv1", cnn_example)
    assert [n for n, _ in directions.readers(cnn, "conv2", cnn_example)] == ["fc1.linear"]  # through Flatten
    assert [n for n, _ in directions.readers(rnn, "step3", rnn_example)] == ["recurrent"]
    assert [n for n, _ in directions.readers(rnn, "step8", rnn_example)] == ["logits"]


def test_wide_null_direction_is_orthogonal_without_a_d_by_d_basis():
    W = np.random.default_rng(2).standard_normal((10, 50_000))  # a d x d basis would take 20 GB
    v = directions.null_space_direction(W, 3, what="the probe")
    assert abs(np.linalg.norm(v) - 1) < 1e-12 and np.abs(W @ v).max() < 1e-10
    np.testing.assert_array_equal(v, directions.null_space_direction(W, 3, what="the probe"))
    assert not np.allclose(v, directions.null_space_direction(W, 4, what="the probe"))
    assert directions.null_space_dim(W) == 50_000 - 10


def test_null_space_dimension_counts_the_numerical_rank():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((3, 8))
    repeated = np.vstack([W, W[0] + W[1], 2 * W[2]])  # 5 rows, rank 3
    assert directions.null_space_dim(repeated) == 5
    assert directions.null_space_dim(np.eye(3)) == 0
    assert directions.null_space_dim(np.zeros((2, 4))) == 4
    with pytest.raises(RepresentationError, match="full column rank"):
        directions.null_space_direction(np.eye(3))
    v = directions.null_space_direction(repeated, seed=0)
    assert np.abs(repeated @ v).max() < 1e-12


def test_null_directions_are_uniform_within_the_null_space():
    """Projected Gaussians: over many seeds the mean of v v^T is P / k (P the null-space projector)."""
    W = np.random.default_rng(5).standard_normal((2, 5))
    samples = np.array([directions.null_space_direction(W, seed) for seed in range(4000)])
    second_moment = samples.T @ samples / len(samples)
    projector = np.eye(5) - np.linalg.pinv(W) @ W
    np.testing.assert_allclose(second_moment, projector / 3, atol=0.02)


def test_a_first_draw_inside_the_row_space_is_drawn_again():
    """W made from the same seed: the first Gaussian draw is W's first row, all row space."""
    W = np.random.default_rng(0).standard_normal((2, 8))
    v = directions.null_space_direction(W, 0)
    assert abs(np.linalg.norm(v) - 1) < 1e-12 and np.abs(W @ v).max() < 1e-12
