"""AppTest checks of the Separability page (Davari et al. Cor. 4): the probe's accuracy and
margin do not move while CKA falls to its limit; a random direction does change the decisions."""
import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import sample_models
from cka_core import capture, linear_cka, translation_cka_limit
from ui.sources.data import SYNTHETIC_SETS
from ui.pitfalls.separability import DIRECTIONS
from ui.sources.sidebar import KINDS

from .apptest import metric, open_page

PAGE = "pages/separability.py"


def _page() -> AppTest:
    return open_page(PAGE)


def _metrics(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def _number(text: str) -> float:
    return float(text.rstrip("%"))


def _set_c(at: AppTest, log_c: float) -> dict[str, tuple[str, str]]:
    at.slider(key="sep_log_c").set_value(log_c).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return _metrics(at)


def _chart(at: AppTest, key_part: str) -> dict:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if key_part in chart.proto.id:
            return spec
    raise AssertionError(f"no plotly chart with {key_part!r} in its id")


def _array(values) -> np.ndarray:
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"])
    return np.asarray(values, dtype=float)


def test_renders_with_metrics_figures_and_theory():
    at = _page()
    assert not at.error
    metrics = _metrics(at)
    for label in ("Linear CKA", "CKA limit as c → ∞", "Probe accuracy", "Probe margin (smallest)",
                  "Network accuracy", "Score change (max)"):
        assert label in metrics
    assert len(at.get("plotly_chart")) == 2
    assert any(e.label == "Theory" for e in at.expander)
    assert at.latex, "the Theory expander shows the corollary in LaTeX"
    for key in ("sep_class", "sep_direction", "sep_seed", "sep_log_c"):
        assert at.get_by_key(key) is not None


def test_probe_unchanged_while_cka_falls_to_the_limit():
    at = _page()
    seen = [_set_c(at, log_c) for log_c in (-1.0, -0.5, 0.0, 0.5, 1.0, 4.0)]
    limit = _number(seen[0]["CKA limit as c → ∞"][0])
    for label in ("Probe accuracy", "Probe margin (smallest)"):
        values = {m[label][0] for m in seen}
        assert len(values) == 1, f"{label} changed with c: {values}"
        assert all("unchanged" in m[label][1] for m in seen)
    cka = [_number(m["Linear CKA"][0]) for m in seen]
    assert all(a > b for a, b in zip(cka[:5], cka[1:5])), f"CKA should fall as c grows: {cka}"
    assert cka[0] > 0.99 and cka[-1] == pytest.approx(limit, abs=2e-3)
    assert limit < 0.5
    assert float(seen[-1]["Score change (max)"][0]) < 1e-6      # rounding only

    # the probe curve in the figure is flat for the orthogonal direction
    spec = _chart(at, "separability_curves")
    probe = next(t for t in spec["data"] if t["name"].startswith("probe, orthogonal"))
    y = _array(probe["y"])
    assert y.size > 100 and np.all(y == y[0])


def test_numbers_match_an_independent_computation():
    at = _page()
    at.selectbox(key="sep_class").set_value(4).run()
    _set_c(at, 0.5)
    X = capture(sample_models.load("mlp_seed0"), sample_models.digits().X_test, ["hidden3"])["hidden3"]
    X = X.astype(np.float64)
    mask = sample_models.digits().y_test == 4
    assert metric(at, "CKA limit as c") == pytest.approx(translation_cka_limit(X, mask), abs=1e-4)
    # brute force: rebuild the page's direction, move the class, compute CKA from scratch
    probe = sample_models.LinearProbe().fit(
        capture(sample_models.load("mlp_seed0"), sample_models.digits().X_train, ["hidden3"])["hidden3"],
        sample_models.digits().y_train)
    from cka_core.pitfalls.directions import null_space_direction
    v = null_space_direction((probe.coef_ * probe.scale_[:, None]).T, 0)
    scale = np.sqrt(np.mean(np.sum((X - X.mean(0)) ** 2, axis=1)))
    moved = X + np.outer(mask * (10**0.5 * scale), v)
    assert metric(at, "Linear CKA") == pytest.approx(linear_cka(X, moved), abs=1e-4)
    assert metric(at, "Probe accuracy") == pytest.approx(probe.score(moved, sample_models.digits().y_test), abs=1e-3)


def test_url_restores_the_controls():
    at = open_page(PAGE, {"sep_class": "7", "sep_direction": DIRECTIONS["random"], "sep_seed": "3", "sep_log_c": "2.5"})
    assert at.selectbox(key="sep_class").value == 7
    assert at.radio(key="sep_direction").value == DIRECTIONS["random"]
    assert at.slider(key="sep_seed").value == 3
    assert at.slider(key="sep_log_c").value == pytest.approx(2.5)
    assert any("Class 7" in c.value for c in at.caption)


def test_random_direction_changes_the_probe_at_large_c():
    at = _page()
    at.radio(key="sep_direction").set_value(DIRECTIONS["random"]).run()
    small = _set_c(at, -2.0)
    large = _set_c(at, 4.0)
    assert _number(large["Probe accuracy"][0]) < _number(small["Probe accuracy"][0]) - 5
    assert "unchanged" not in large["Probe accuracy"][1]
    # CKA still goes to the same limit, and the orthogonal contrast keeps the probe's accuracy
    assert _number(large["Linear CKA"][0]) == pytest.approx(_number(large["CKA limit as c → ∞"][0]), abs=2e-3)
    assert "unchanged" in large["Orthogonal v: probe"][1]


def test_non_negative_direction_keeps_probe_but_not_network():
    at = _page()
    at.radio(key="sep_direction").set_value(DIRECTIONS["orthant"]).run()
    before = _set_c(at, -2.0)
    after = _set_c(at, 4.0)
    assert after["Probe accuracy"][0] == before["Probe accuracy"][0]
    assert after["Probe margin (smallest)"][0] == before["Probe margin (smallest)"][0]
    # the network reads the representation through its own next layer, not the probe
    assert after["Network accuracy"][0] != before["Network accuracy"][0]
    assert any("to the network's next layer" in i.value for i in at.info)


def test_synthetic_source_works():
    at = _page()
    at.radio(key="src_kind").set_value(KINDS["synthetic"]).run()
    assert not at.exception, at.exception
    assert not at.error
    assert any("Gaussian clusters" in c.value for c in at.caption)
    assert at.selectbox(key="sep_class").options == ["0", "1", "2"]
    small, large = _set_c(at, -1.0), _set_c(at, 3.0)
    assert small["Probe accuracy"][0] == large["Probe accuracy"][0]
    assert small["Probe margin (smallest)"][0] == large["Probe margin (smallest)"][0]
    assert _number(large["Linear CKA"][0]) < _number(small["Linear CKA"][0])
    assert large["Network accuracy"][0] == "—"
    at.selectbox(key="src_synth").set_value(SYNTHETIC_SETS["two_cubes"]).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="sep_class").options == ["0", "1"]


def _upload(at: AppTest, **arrays) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    at.radio(key="src_kind").set_value(KINDS["upload"]).run()
    at.file_uploader(key="src_upload").set_value(("acts.npz", buffer.getvalue(), "application/octet-stream")).run()
    assert not at.exception, at.exception


def test_no_null_space_is_an_error_and_the_page_stays_usable():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(5), 20)                           # 5 classes in 3-D: the normals span everything
    at = _page()
    _upload(at, acts=rng.standard_normal((100, 3)) + np.eye(5)[y][:, :3] * 3, labels=y)
    assert any("span all 3 features" in e.value for e in at.error)
    at.radio(key="sep_direction").set_value(DIRECTIONS["random"]).run()
    assert not at.exception and not at.error
    assert "Probe accuracy" in _metrics(at)
    assert "Orthogonal v: CKA" in _metrics(at)                # the contrast is missing, not broken


def test_logits_have_no_non_negative_direction():
    at = _page()
    at.selectbox(key="src_layer_mlp_seed0").set_value("logits").run()
    at.radio(key="sep_direction").set_value(DIRECTIONS["orthant"]).run()
    assert not at.exception, at.exception
    assert any("positive in every coordinate" in e.value for e in at.error)
    at.radio(key="sep_direction").set_value(DIRECTIONS["orthogonal"]).run()
    assert not at.exception and not at.error


def test_unlabelled_upload_shows_info_and_stops():
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal((50, 6)))
    at = _page()
    at.radio(key="src_kind").set_value(KINDS["upload"]).run()
    at.file_uploader(key="src_upload").set_value(("acts.npy", buffer.getvalue(), "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert any("needs class labels" in i.value for i in at.info)
    assert not at.metric


def test_labelled_upload_works():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    at = _page()
    _upload(at, acts=rng.standard_normal((90, 8)) + 3 * np.eye(8)[y], labels=y)
    assert not at.error
    small, large = _set_c(at, -1.0), _set_c(at, 3.0)
    assert small["Probe accuracy"][0] == large["Probe accuracy"][0]
    assert _number(large["Linear CKA"][0]) < _number(small["Linear CKA"][0])
    assert large["Network accuracy"][0] == "—"
