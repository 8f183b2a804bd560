"""AppTest of the Pooling page: every number is the independent reference's linear CKA of the zoo's
layers reduced by plain numpy (mean, a step, every step as a row, flatten; flatten, average pool,
every position as a row), and the takeaway states the shown numbers."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

import sample_models
from cka_core import capture

from tests.cka_core import reference as ref

from .apptest import open_page, rerun, takeaway_text

PAGE = "pages/pooling.py"
RNNS = ["rnn_relu", "rnn_gamma_heterogeneous", "rnn_adaptive"]


def _outputs(net, layers) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in capture(net, sample_models.digits().X_test, layers).items()}


def _sequence(name: str) -> np.ndarray:
    steps = _outputs(sample_models.load(name), [f"step{i}" for i in range(1, 9)])
    return np.stack([steps[f"step{i}"] for i in range(1, 9)], axis=1)  # (n, 8, 64)


STEP_ROWS = {  # (n, t, d) -> rows, written out independently of cka_core.models.reduction
    "Mean over the 8 steps": lambda s: s.mean(axis=1),
    "First step": lambda s: s[:, 0],
    "Last step": lambda s: s[:, -1],
    "Every step as a row": lambda s: s.reshape(-1, s.shape[2]),
    "Flatten the 8 steps": lambda s: s.reshape(s.shape[0], -1),
}
MAP_ROWS = {  # (n, c, h, w) -> rows
    "Flatten": lambda m: m.reshape(m.shape[0], -1),
    "Global average pool": lambda m: m.mean(axis=(2, 3)),
    "Every position as a row": lambda m: np.moveaxis(m, 1, -1).reshape(-1, m.shape[1]),
}


def _cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA in feature space, ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) (Kornblith et al. eq. 5):
    the reference's n x n centring matrix is too large for every position as a row (22,976 rows)."""
    xc, yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return float(np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def test_the_feature_space_formula_is_the_reference_on_small_data():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 5)), rng.standard_normal((30, 7)) + 2
    assert _cka(X, Y) == pytest.approx(ref.linear_cka(X, Y), abs=1e-12)


def _traces(at, key: str) -> list[dict]:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key))
    return json.loads(chart.proto.spec)["data"]


def _numbers(values) -> np.ndarray:
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).astype(float)
    return np.asarray(values, dtype=float)


@pytest.fixture(scope="module")
def shared():
    return open_page(PAGE)


@pytest.mark.parametrize("reference", RNNS)
def test_recurrent_comparisons_are_the_reference_values(shared, reference):
    at = rerun(shared.selectbox(key="pool_reference").set_value(reference))
    ours = _sequence(reference)
    for trace in _traces(at, "pool_rnn"):
        theirs = _sequence(trace["name"])
        expected = [_cka(STEP_ROWS[how](ours), STEP_ROWS[how](theirs)) for how in trace["x"]]
        np.testing.assert_allclose(_numbers(trace["y"]), expected, atol=1e-6)
    table = at.dataframe[0].value
    for _, row in table.iterrows():
        others = [n for n in RNNS if n != reference]
        assert row["closest"] == max(others, key=lambda n: row[n])
    text = takeaway_text(at)
    assert text.count("0.") >= 6 and "reduction it was made with" in text


def test_the_takeaway_names_the_two_reductions_that_disagree_most(shared):
    at = rerun(shared.selectbox(key="pool_reference").set_value("rnn_relu"))
    table = at.dataframe[0].value.set_index("reduction")
    gap = table["rnn_gamma_heterogeneous"] - table["rnn_adaptive"]
    high, low = gap.idxmax(), gap.idxmin()
    text = takeaway_text(at)
    for how in (high, low):
        assert f"{table.loc[how, 'rnn_gamma_heterogeneous']:.3f} and {table.loc[how, 'rnn_adaptive']:.3f}" in text
    assert ("the ranking flips" in text) == (gap[high] > 0 > gap[low])


def test_cnn_against_its_untrained_twin_and_its_own_maps(shared):
    at = shared
    ours = _outputs(sample_models.load("cnn"), sample_models.layer_names("cnn"))
    torch.manual_seed(sample_models.ZOO["cnn"].seed)
    twin = _outputs(sample_models.build(sample_models.ZOO["cnn"].config).eval(), list(ours))
    for trace in _traces(at, "pool_cnn_twin"):
        rows = MAP_ROWS[trace["name"]]
        expected = [_cka(rows(ours[k]), rows(twin[k])) for k in trace["x"]]
        np.testing.assert_allclose(_numbers(trace["y"]), expected, atol=1e-6)
    maps = [t for t in _traces(at, "pool_cnn_maps") if t["type"] == "heatmap"]
    flatten = _numbers(maps[0]["z"]).reshape(4, 4)
    as_rows = {k: (MAP_ROWS["Flatten"](v) if v.ndim == 4 else v) for k, v in ours.items()}
    np.testing.assert_allclose(flatten, ref.cka_matrix(list(as_rows.values())), atol=1e-6)
    positions = _numbers(maps[2]["z"]).reshape(4, 4)
    # every position as a row: conv1 (8 x 8) and conv2 (4 x 4) give different rows, so they do not pair
    assert np.isnan(positions[0, 1]) and positions[0, 0] == pytest.approx(1.0)
    text = takeaway_text(at)
    assert "conv2 against its untrained twin" in text
