"""AppTest of the Invariances page: it renders, every slider moves what theory says it moves
(in the right direction), the measure x transformation table shows no broken declared
invariance, and a URL restores the controls."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cka_core import MEASURES
from ui.pitfalls import triangles

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/invariances.py"
# Every measure of one representation: dCKA also needs the inputs, so it is on the Confounders page.
# dCKA needs the inputs; the output measures (jsd, ...) compare two networks' logits, not a hidden layer.
ONE_LAYER = {m: info for m, info in MEASURES.items() if not info.needs_inputs and not info.on_outputs}
LABELS = {"orthogonal": "Orthogonal map", "isotropic": "Isotropic scaling", "anisotropic": "Anisotropic scaling",
          "one_feature": "One feature scaled", "invertible": "Invertible linear map",
          "permutation": "Feature permutation", "translation": "Translation", "noise": "Gaussian noise",
          "top_k": "Top-k PC projection"}


def open_page(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if query:
        at.switch_page(PAGE)
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()
    at.run()
    return at.switch_page(PAGE).run()


def takeaway_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown if "**Takeaway.**" in m.value)


def metrics(at: AppTest) -> dict[str, float]:
    """The single-transformation panel's values (not the triangle section's counts)."""
    return {m.label: float(m.value) for m in at.metric if m.value != "—" and not m.label.endswith("triples broken")}


def choose(at: AppTest, name: str) -> AppTest:
    return at.selectbox(key="inv_transform").set_value(LABELS[name]).run()


def chart(at: AppTest, key: str) -> dict:
    import json

    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        if element.proto.id.endswith(key) or key in element.proto.id:
            return spec
    raise AssertionError(f"no plotly chart with key {key!r}")


def decode(values):
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"])
    return np.asarray(values)


@pytest.fixture(scope="module")
def shared() -> AppTest:
    """One session for the tests that only read the default view or set every control they read."""
    return open_page()


@pytest.fixture
def default_view(shared) -> AppTest:
    return choose(shared, "invertible") if shared.selectbox(key="inv_transform").value != LABELS["invertible"] else shared


def test_renders_with_metrics_charts_and_theory(default_view):
    page = default_view
    assert not page.exception
    assert page.selectbox(key="inv_transform").value == LABELS["invertible"]
    values = metrics(page)
    assert set(values) >= {info.label for info in ONE_LAYER.values()}
    assert not set(values) & {info.label for info in MEASURES.values() if info.on_outputs}
    ids = " ".join(e.proto.id for e in page.get("plotly_chart"))
    for key in ("inv_bars", "inv_spectrum", "inv_table"):
        assert key in ids
    assert any(e.label == "Theory" for e in page.expander)
    assert len(page.latex) >= 4
    assert not page.error


def test_table_has_no_declared_invariance_violation(default_view):
    page = default_view
    spec = chart(page, "inv_table")
    trace = spec["data"][0]
    text = np.array(trace["text"], dtype=object)
    z = np.array([decode(row) for row in trace["z"]]) if isinstance(trace["z"], list) else decode(trace["z"])
    assert text.shape == (len(ONE_LAYER), len(LABELS))
    assert not any("⚠" in cell for cell in text.ravel())
    declared = np.vectorize(lambda cell: "✓" in cell)(text)
    assert declared.any() and (~declared).any()
    z = np.asarray(z, dtype=float).reshape(text.shape)
    assert np.all(z[declared] < 1e-6)
    assert z[~declared].max() > 0.05  # something does move: the table is not trivially zero
    # mean CCA (invariant to every invertible map) is ✓ in every linear-map column
    measures = list(ONE_LAYER)
    row = text[measures.index("mean_cca")]
    assert all("✓" in row[j] for j, t in enumerate(LABELS) if t not in ("noise", "top_k"))
    assert "every declared invariance holds" in takeaway_text(page)


@pytest.mark.parametrize("name, key, values", [
    ("orthogonal", "inv_seed", [0, 5, 20]),
    ("permutation", "inv_seed", [0, 9]),
    ("isotropic", "inv_log_scale", [-3.0, 0.0, 3.0]),
    ("translation", "inv_log_shift", [-2.0, 1.0, 3.0]),
])
def test_cka_stays_one_under_its_invariances(shared, name, key, values):
    at = choose(shared, name)
    for value in values:
        at.slider(key=key).set_value(value).run()
        assert not at.exception and not at.error
        got = metrics(at)
        assert got["Linear CKA"] == 1.0 and got["RBF CKA"] == 1.0 and got["Procrustes angle"] == 0.0, (name, value)


def test_condition_number_lowers_cka_but_not_cca(shared):
    at = choose(shared, "invertible")
    cka = []
    for log_kappa in [0.0, 1.0, 2.0, 4.0]:
        at.slider(key="inv_log_kappa").set_value(log_kappa).run()
        got = metrics(at)
        cka.append(got["Linear CKA"])
        assert got["Mean CCA"] == 1.0 and got["Linear regression R²"] == 1.0
    assert cka[0] == 1.0  # kappa = 1 is a rotation
    assert all(a > b for a, b in zip(cka, cka[1:])), cka


def test_anisotropic_spread_lowers_cka(shared):
    at = choose(shared, "anisotropic")
    cka = [metrics(at.slider(key="inv_spread").set_value(s).run())["Linear CKA"] for s in (0.0, 1.0, 3.0)]
    assert cka[0] == 1.0 and cka[0] > cka[1] > cka[2], cka


def test_scaling_one_feature_lowers_cka(shared):
    at = choose(shared, "one_feature")
    cka = [metrics(at.slider(key="inv_log_factor").set_value(v).run())["Linear CKA"] for v in (0.0, 1.0, 2.0)]
    assert cka[0] == 1.0 and cka[0] > cka[1] > cka[2], cka


def test_noise_lowers_every_cka(shared):
    at = choose(shared, "noise")
    low = metrics(at.slider(key="inv_log_noise").set_value(-3.0).run())
    high = metrics(at.slider(key="inv_log_noise").set_value(1.0).run())
    for label in ("Linear CKA", "RBF CKA", "Mean CCA"):
        assert high[label] < low[label]
    assert high["Procrustes angle"] > low["Procrustes angle"]  # lower is more similar


def test_keeping_more_components_raises_cka_to_the_r8_value(shared):
    at = choose(shared, "top_k")
    seen = []
    for k in (1, 2, 4, 64):
        got = metrics(at.slider(key="inv_k").set_value(k).run())
        assert abs(got["Linear CKA"] - got["Linear CKA predicted by R8"]) <= 1e-4
        seen.append(got["Linear CKA"])
    assert seen == sorted(seen) and seen[0] < 0.9 and seen[-1] == 1.0


def test_deep_link_restores_controls():
    at = open_page({"inv_transform": LABELS["top_k"], "inv_k": "5"})
    assert not at.exception
    assert at.selectbox(key="inv_transform").value == LABELS["top_k"]
    assert at.slider(key="inv_k").value == 5
    at = open_page({"inv_transform": LABELS["isotropic"], "inv_log_scale": "-2.5"})
    assert at.slider(key="inv_log_scale").value == -2.5


def test_bar_chart_matches_the_metrics(default_view):
    page = default_view
    bars = chart(page, "inv_bars")["data"][0]
    heights = decode(bars["x"])  # horizontal bars: one per measure, top to bottom
    labels = list(bars["y"])
    assert labels[0] == "Linear CKA" and len(labels) == len(ONE_LAYER)
    assert heights[labels.index("Mean CCA")] < 1e-6  # declared invariance: no bar
    assert abs(heights[0] - (1 - metrics(page)["Linear CKA"])) < 1e-4


def test_constant_upload_shows_errors_not_tracebacks():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.radio(key="src_kind").set_value("Uploaded file").run()
    buffer = io.BytesIO()
    np.save(buffer, np.ones((40, 5)))
    at.file_uploader(key="src_upload").set_value(("flat.npy", buffer.getvalue(), "application/octet-stream")).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    [error] = at.error  # the measures say why they cannot be computed
    assert "No similarity measure can be computed" in error.value and "Pick another source" in error.value
    assert not at.get("plotly_chart")  # nothing drawn from a representation nothing can measure


def test_the_triangle_section_tests_the_sidebar_network_and_follows_alpha():
    """The section checks the sidebar's network (here mlp_deep: 6 layers, 120 ordered triples): 1 − CKA
    breaks the triangle inequality on its layers, the angles do not; α reaches the shape metric."""
    at = open_page({"src_model": "mlp_deep", "inv_alpha": "0.2"})
    assert not at.exception and not at.error
    shown = {m.label.removesuffix(": triples broken"): m.value for m in at.metric if m.label.endswith("triples broken")}
    rows = {row.label: row for row in triangles.triangle_rows("mlp_deep", 0.2)}
    assert list(shown) == list(rows)
    assert shown["1 − linear CKA"] == f"{rows['1 − linear CKA'].check.violations} of 120" != "0 of 120"
    assert shown["Shape metric, α = 0.2"] == shown["arccos(linear CKA)"] == shown["Procrustes angle"] == "0 of 120"
    assert any(c.value.startswith("Worst triple for 1 − linear CKA: (1 − CKA)(") for c in at.caption)
    at.slider(key="inv_alpha").set_value(0.9).run()
    assert "Shape metric, α = 0.9: triples broken" in {m.label for m in at.metric}
