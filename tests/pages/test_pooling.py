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
    others = [n for n in RNNS if n != reference]
    for _, row in table.iterrows():
        assert row["difference"] == pytest.approx(row[others[0]] - row[others[1]], abs=1e-12)
        assert row["low"] <= row["difference"] <= row["high"]
        clear = row["low"] > 0 or row["high"] < 0
        assert row["closest"] == (max(others, key=lambda n: row[n]) if clear else "no clear order")
    for trace in _traces(at, "pool_rnn"):  # each bar's interval is drawn around it
        up, down = _numbers(trace["error_y"]["array"]), _numbers(trace["error_y"]["arrayminus"])
        assert (up >= 0).all() and (down >= 0).all() and (up + down > 0).all()
    text = takeaway_text(at)
    assert text.count("0.") >= 6 and "reduction it was made with" in text


@pytest.mark.parametrize("reference", RNNS)
def test_a_flip_is_claimed_only_when_both_intervals_exclude_zero(shared, reference):
    """Regression: the headline said "the ranking flips" on 0.788 against 0.792, a difference of 0.004 whose
    bootstrap interval holds 0. The sentence states each difference with its interval and claims a flip only
    when the two intervals lie on opposite sides of 0."""
    at = rerun(shared.selectbox(key="pool_reference").set_value(reference))
    first, second = [n for n in RNNS if n != reference]
    table = at.dataframe[0].value.set_index("reduction")
    high, low = table["difference"].idxmax(), table["difference"].idxmin()
    text = takeaway_text(at)
    for how in (high, low):
        row = table.loc[how]
        assert f"{row[first]:.3f} and {row[second]:.3f}" in text
        assert f"difference {row['difference']:+.3f}, interval {row['low']:+.3f} to {row['high']:+.3f}" in text
    flips = table.loc[high, "low"] > 0 > table.loc[low, "high"]
    assert ("the ranking flips" in text) == flips
    if not flips and table.loc[high, "difference"] > 0 > table.loc[low, "difference"]:
        assert "does not clearly flip" in text or "neither order is clear" in text


def test_the_flip_rule_on_made_up_intervals():
    from ui.pitfalls.pooling import Interval, RnnView, rnn_takeaway

    def view(gaps):
        values = {how: (0.5 + gap.value / 2, 0.5 - gap.value / 2) for how, gap in gaps.items()}
        return RnnView("r", ("a", "b"), values, {}, gaps)

    both = {"mean": Interval(0.2, 0.1, 0.3), "last": Interval(-0.1, -0.15, -0.05)}
    assert "both 95% intervals exclude 0, so the ranking flips" in rnn_takeaway(view(both))
    one = {"mean": Interval(0.2, 0.1, 0.3), "last": Interval(-0.004, -0.027, 0.019)}
    assert "the 95% interval at the last step includes 0, so the ranking does not clearly flip" in \
        rnn_takeaway(view(one))
    neither = {"mean": Interval(0.01, -0.02, 0.03), "last": Interval(-0.01, -0.03, 0.02)}
    assert "neither order is clear" in rnn_takeaway(view(neither))
    same = {"mean": Interval(0.2, 0.1, 0.3), "last": Interval(0.01, -0.01, 0.03)}
    assert "goes from 0.010 to 0.200, the smaller one's 95% interval including 0" in rnn_takeaway(view(same))


@pytest.mark.parametrize("how", ["mean", "first", "last", "tokens", "flatten"])
def test_the_paired_bootstrap_is_cka_on_the_drawn_rows(how):
    """resampled_cka works from Grams or per-example cross-products, never building the resampled rows:
    each value is the plain linear CKA of the drawn examples' rows, an example repeated as often as drawn
    (and keeping its 8 steps together under 'every step as a row'). 40 features flattened: d > n."""
    from ui.pitfalls.pooling import resample_weights, resampled_cka

    rng = np.random.default_rng(3)
    ours, theirs = rng.standard_normal((30, 8, 5)), [rng.standard_normal((30, 8, 4)) + 1, rng.standard_normal((30, 8, 6))]
    weights = resample_weights(30, 4, seed=1)
    got = resampled_cka(ours, theirs, how, weights)
    label = {"mean": "Mean over the 8 steps", "first": "First step", "last": "Last step",
             "tokens": "Every step as a row", "flatten": "Flatten the 8 steps"}[how]
    for r, counts in enumerate(weights):
        drawn = np.repeat(np.arange(30), counts.astype(int))
        for k, other in enumerate(theirs):
            rows = STEP_ROWS[label]
            assert got[r, k] == pytest.approx(_cka(rows(ours[drawn]), rows(other[drawn])), abs=1e-10)


def test_the_difference_interval_is_a_paired_bootstrap(shared):
    """The table's interval for the last step against an independent bootstrap on the same draws: CKA of the
    drawn rows for each network, their difference, the percentile interval re-centred on the full-data
    difference (as cka_core.stats.resampling does)."""
    from ui.pitfalls.pooling import CONFIDENCE, RESAMPLES, SEED, resample_weights

    at = rerun(shared.selectbox(key="pool_reference").set_value("rnn_relu"))
    row = at.dataframe[0].value.set_index("reduction").loc["Last step"]
    ours, a, b = (_sequence(n)[:, -1] for n in RNNS)
    differences = []
    for counts in resample_weights(len(ours), RESAMPLES, SEED):
        drawn = np.repeat(np.arange(len(ours)), counts.astype(int))
        differences.append(_cka(ours[drawn], a[drawn]) - _cka(ours[drawn], b[drawn]))
    tail = (1 - CONFIDENCE) / 2
    q_low, median, q_high = np.quantile(differences, [tail, 0.5, 1 - tail])
    full = _cka(ours, a) - _cka(ours, b)
    assert row["difference"] == pytest.approx(full, abs=1e-6)
    assert (row["low"], row["high"]) == pytest.approx((full + q_low - median, full + q_high - median), abs=1e-6)


def test_bar_labels_are_written_large_inside_the_bars(shared):
    """Regression: the values above the bars were drawn at about 10 px, too small to read."""
    for key in ("pool_rnn", "pool_cnn_twin"):
        for trace in _traces(shared, key):
            assert trace["textposition"] == "inside" and trace["textfont"]["size"] >= 14


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
