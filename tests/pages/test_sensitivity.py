"""AppTest of the "Specific and sensitive?" page: its numbers against an independent computation (an
explicit eigendecomposition, the float64 reference measures, the zoo network run on from the edited
layer), the takeaway following the k slider, and bad links answered with a notice, not a traceback."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

import sample_models
from cka_core import capture
from tests.cka_core import reference as ref
from ui.frame import shell

from .apptest import metric, number_after, open_page, rerun, takeaway_text

PAGE = "pages/sensitivity.py"
NETWORK, LAYER = "mlp_seed0", "hidden2"
PROBE = "A linear probe's accuracy"
NETWORK_ACCURACY, PROBE_ACCURACY = "Network accuracy", "Probe accuracy"


# ---------------------------------------------------------------- the independent computation
def activations(name: str, split: str = "test") -> np.ndarray:
    data = sample_models.digits()
    inputs = data.X_test if split == "test" else data.X_train
    return np.asarray(capture(sample_models.load(name), inputs, [LAYER])[LAYER], dtype=np.float64)


@pytest.fixture(scope="module")
def layer() -> dict:
    """hidden2 of mlp_seed0 on the test digits: its principal axes (eigh of the covariance) and
    what the page compares it with."""
    X = activations(NETWORK)
    mean = X.mean(axis=0)
    lam, axes = np.linalg.eigh((X - mean).T @ (X - mean) / X.shape[0])
    lam, axes = lam[::-1], axes[:, ::-1]
    rank = int(np.sum(lam > 1e-12 * lam[0]))
    seeds = [ref.linear_cka(X, activations(run)) for run in ("mlp_seed1", "mlp_seed2")]
    return {"X": X, "mean": mean, "lam": lam[:rank], "axes": axes[:, :rank], "rank": rank, "seeds": seeds}


def deleted(layer: dict, k: int, which: str) -> np.ndarray:
    chosen = layer["axes"][:, :k] if which == "top" else layer["axes"][:, layer["rank"] - k:]
    centred = layer["X"] - layer["mean"]
    return layer["mean"] + centred - (centred @ chosen) @ chosen.T


def network_accuracy(edited: np.ndarray) -> float:
    net = sample_models.load(NETWORK)
    return sample_models.accuracy(sample_models.run_from(net, LAYER, edited), sample_models.digits().y_test)


def probe_accuracy(edited: np.ndarray) -> float:
    data = sample_models.digits()
    return sample_models.LinearProbe().fit(activations(NETWORK, "train"), data.y_train).score(edited, data.y_test)


# ---------------------------------------------------------------- reading the page
def k_slider(at):
    """The one k slider, shared by top-k and bottom-k (its key carries the layer's component count)."""
    [slider] = [s for s in at.select_slider if s.key.startswith("sen_k_")]
    return slider


def table(at) -> dict[str, dict]:
    frame = next(d.value for d in at.dataframe if "hidden deletion" in d.value.columns)
    return {row["measure"]: row for row in frame.to_dict("records")}


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def _bottom(at, k: int | None = None):
    """The shared session on the default network and layer, bottom-k, the network's own accuracy (and k)."""
    at.radio(key="sen_score").set_value("The network's own accuracy")
    rerun(at.radio(key="sen_which").set_value("Bottom-k: smallest variance"))
    return at if k is None else rerun(k_slider(at).set_value(k))


# ---------------------------------------------------------------- tests
def test_default_view_matches_the_independent_computation(at, layer):
    assert at.selectbox(key="sen_model").value == NETWORK
    assert at.selectbox(key="sen_layer_mlp_seed0").value == LAYER
    slider = k_slider(at)
    assert slider.key == f"sen_k_{layer['rank']}" and slider.value == layer["rank"] - 4
    edited = deleted(layer, slider.value, "bottom")
    cka = ref.linear_cka(layer["X"], edited)
    assert metric(at, "Linear CKA") == pytest.approx(cka, abs=6e-5)
    assert metric(at, "CKA, closed form") == pytest.approx(cka, abs=6e-5)
    assert metric(at, "Procrustes angle") == pytest.approx(ref.procrustes_angle(layer["X"], edited), abs=6e-5)
    assert metric(at, "PWCCA") == 1.0
    accuracy = network_accuracy(edited)
    assert metric(at, NETWORK_ACCURACY) == pytest.approx(accuracy, abs=6e-4)
    text = takeaway_text(at)
    assert number_after(text, "linear CKA reads") == pytest.approx(cka, abs=6e-4)
    assert f"to {100 * accuracy:.1f}%" in text and f"{min(layer['seeds']):.3f}–{max(layer['seeds']):.3f}" in text
    assert ("closer to the original than" in text) == (cka > max(layer["seeds"]))
    assert "PWCCA reads 1.000 for every deletion" in text
    assert any("**PWCCA reads 1.0000 for every one of" in box.value for box in at.info)
    ids = " ".join(chart.proto.id for chart in at.get("plotly_chart"))
    assert "sen_deletions" in ids and "sen_spectrum" in ids
    theory = next(box for box in at.expander if box.label == "Theory")
    assert len(theory.get("latex")) >= 5
    assert not at.error and not at.exception


def test_the_hidden_drop_is_the_costliest_deletion_cka_reads_closer_than_a_seed(at, layer):
    """Every deletion recomputed here: CKA from the eigenvalues (the reference deletion's own), the accuracy
    from the network; the page's largest drop hidden below the seed spread must be the same."""
    _bottom(at)
    base = network_accuracy(layer["X"])
    floor = 1.0 - max(layer["seeds"])
    hidden = []
    for which in ("top", "bottom"):
        for k in range(1, layer["rank"]):
            kept = layer["lam"][k:] if which == "top" else layer["lam"][: layer["rank"] - k]
            cka = np.sqrt(np.sum(kept**2) / np.sum(layer["lam"] ** 2))
            if 1.0 - cka < floor:
                hidden.append((base - network_accuracy(deleted(layer, k, which)), f"{which} {k}"))
    drop, where = max(hidden, key=lambda item: item[0])
    row = table(at)["Linear CKA"]
    assert float(row["largest hidden drop (points)"]) == pytest.approx(100 * drop, abs=0.051)
    assert row["hidden deletion"] == where
    assert number_after(takeaway_text(at), "linear CKA hides accuracy drops of up to") == pytest.approx(100 * drop,
                                                                                                         abs=0.051)
    assert table(at)["PWCCA"]["ρ with the drop"] == "undefined: never moves"


def test_the_takeaway_follows_the_k_slider(at, layer):
    rank, ckas = layer["rank"], []
    for k in (rank - 1, rank - 3, rank - 8, 10):
        _bottom(at, k)
        edited = deleted(layer, k, "bottom")
        text = takeaway_text(at)
        shown = metric(at, "Linear CKA")
        assert shown == pytest.approx(ref.linear_cka(layer["X"], edited), abs=6e-5), k
        assert number_after(text, "linear CKA reads") == pytest.approx(shown, abs=6e-4)
        assert f"Deleting the {k} lowest-variance principal components of {LAYER}'s {rank} (" in text
        accuracy = metric(at, NETWORK_ACCURACY)
        assert accuracy == pytest.approx(network_accuracy(edited), abs=6e-4)
        shown_accuracy = f"{100 * accuracy:.1f}%"
        assert f"to {shown_accuracy}" in text or f"leaves the network's accuracy at {shown_accuracy}" in text
        ckas.append(shown)
    assert ckas == sorted(ckas)        # fewer components deleted, a CKA closer to 1


def _numbers(values) -> np.ndarray:
    """A chart's array as plotly serialises it (a typed array in base64, or a list)."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"])
    return np.asarray(values, dtype=float)


def _title(at, key: str) -> str:
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return json.loads(chart.proto.spec)["layout"]["title"]["text"]


def test_switching_to_top_k_keeps_k_and_one_component_reads_as_one(at, layer):
    """Issue 25: Bottom-k -> Top-k reset k to 1 without a word, and k = 1 read 'Deleting the highest-variance of
    hidden2's 56 principal components'."""
    _bottom(at, 10)
    rerun(at.radio(key="sen_which").set_value("Top-k: largest variance"))
    assert k_slider(at).value == 10
    assert metric(at, "Linear CKA") == pytest.approx(ref.linear_cka(layer["X"], deleted(layer, 10, "top")), abs=6e-5)
    assert f"Deleting the 10 highest-variance principal components of {LAYER}'s {layer['rank']} (" in takeaway_text(at)
    assert _title(at, "sen_spectrum").startswith(f"{LAYER}: the 10 deleted components (red) carry ")
    rerun(k_slider(at).set_value(1))
    edited = deleted(layer, 1, "top")
    assert metric(at, "Linear CKA") == pytest.approx(ref.linear_cka(layer["X"], edited), abs=6e-5)
    text = takeaway_text(at)
    assert f"Deleting the highest-variance principal component of {LAYER}'s {layer['rank']} (" in text
    assert "principal components" not in text.split(" (")[0]
    assert _title(at, "sen_spectrum").startswith(f"{LAYER}: the deleted component (red) carries ")
    rerun(at.radio(key="sen_which").set_value("Bottom-k: smallest variance"))
    assert k_slider(at).value == 1
    assert "Deleting the lowest-variance principal component of" in takeaway_text(at)


def test_top_k_and_the_probe(at, layer):
    rerun(at.radio(key="sen_which").set_value("Top-k: largest variance"))
    rerun(k_slider(at).set_value(1))
    edited = deleted(layer, 1, "top")
    rerun(at.radio(key="sen_score").set_value(PROBE))
    assert metric(at, PROBE_ACCURACY) == pytest.approx(probe_accuracy(edited), abs=6e-4)
    assert "the probe's accuracy" in takeaway_text(at)
    rerun(k_slider(at).set_value(5))
    assert metric(at, PROBE_ACCURACY) == pytest.approx(probe_accuracy(deleted(layer, 5, "top")), abs=6e-4)
    assert not at.error


def test_deletions_that_cost_the_same_stay_readable(at):
    """Issue 25: the chart stacked dozens of points of all four measures in the same columns at x = 0 and at the
    drop to chance. Each measure has its own panel (no measure's points on another's axes), every point stays at
    its true cost, and the caption counts the deletions that share a cost, as the values table has them."""
    _bottom(at)
    chart = next(c for c in at.get("plotly_chart") if "sen_deletions" in c.proto.id)
    traces = json.loads(chart.proto.spec)["data"]
    axes: dict[str, set] = {}
    for trace in traces:
        if trace.get("name") in ("bottom-k", "top-k"):
            continue
        measure = trace["hovertemplate"].split("<br>")[0].split(": ")[0]
        axes.setdefault(trace.get("xaxis", "x") + trace.get("yaxis", "y"), set()).add(measure)
    assert len(axes) == 4 and all(len(measures) == 1 for measures in axes.values()), axes
    values = next(d.value for d in at.dataframe if "accuracy drop" in d.value.columns)
    drops = values.assign(points=(100 * values["accuracy drop"]).round(1))
    caption = next(c.value for c in at.caption if c.value.startswith("Each point is one deletion"))
    for which, group in drops.groupby("which"):
        cost, count = group["points"].value_counts().idxmax(), group["points"].value_counts().max()
        assert count >= 5  # mlp_seed0's hidden2: most deletions cost nothing, or everything down to chance
        said = "cost nothing" if cost == 0 else f"cost {cost:.1f} points"
        assert f"{count} of the {len(group)} {which}-k deletions {said}" in caption
    shown = [x for trace in traces if "customdata" in trace for x in _numbers(trace["x"])]
    assert set(np.round(shown, 6)) <= set(np.round(100 * values["accuracy drop"], 6))


@pytest.mark.parametrize("value", ["500", "0", "abc", "52.5"])
def test_a_bad_k_in_the_link_gets_a_notice_and_the_default(layer, value):
    key = f"sen_k_{layer['rank']}"
    at = open_page(PAGE, {key: value})
    [notice] = [n for n in at.session_state[shell.URL_NOTICES] if key in n]
    assert "not a valid value" in notice
    assert k_slider(at).value == layer["rank"] - 4
    assert not at.error and takeaway_text(at)


def test_bad_choices_in_the_link_get_notices():
    at = open_page(PAGE, {"sen_model": "mlp_telepathy", "sen_which": "Middle-k", "sen_score": "Vibes"})
    notices = " ".join(at.session_state[shell.URL_NOTICES])
    for key in ("sen_model", "sen_which", "sen_score"):
        assert key in notices
    assert at.selectbox(key="sen_model").value == NETWORK and takeaway_text(at)


def test_a_network_without_seed_runs_says_so():
    at = open_page(PAGE, {"sen_model": "mlp_deep"})
    assert at.selectbox(key="sen_layer_mlp_deep").value == LAYER
    assert "has no retrained seed runs" in takeaway_text(at)
    assert any("no networks retrained from another seed" in box.value for box in at.info)
    assert {row["hidden deletion"] for row in table(at).values()} == {"no seed spread"}
    assert not at.error
