"""Each page's takeaway sentence says what its numbers say, at every setting tried: the values in
the sentence are the page's metrics, and its words (unchanged, strongly similar, ...) follow them."""
from __future__ import annotations

import pytest

from tests.pages.apptest import metric, number_after, open_page
from tests.pages.apptest import takeaway_text as takeaway
from ui.frame import navigation


def delta_text(at, label: str) -> str:
    return next(m for m in at.metric if m.label.startswith(label)).proto.delta


@pytest.mark.parametrize("page", [p.path for p in navigation.PAGES])
def test_every_page_opens_with_one_takeaway(page):
    text = takeaway(open_page(page))
    assert len(text) > 80 and text.count("**Takeaway.**") == 1


@pytest.mark.parametrize("log_c", ["-2", "0", "1.5", "4"])
@pytest.mark.parametrize("what", ["One point", "One class"])
def test_outliers_sentence_carries_the_metrics(log_c, what):
    at = open_page("pages/outliers.py", {"out_log_c": log_c, "out_what": what})
    text = takeaway(at)
    assert number_after(text, "takes linear CKA from 1 to") == pytest.approx(metric(at, "Linear CKA"), abs=6e-4)
    assert number_after(text, "and to") == pytest.approx(metric(at, "Limit as c"), abs=6e-4)
    unchanged = "unchanged" in delta_text(at, "Network accuracy")
    assert ("does not change" in text) == unchanged
    if not unchanged:
        shown = float(delta_text(at, "Network accuracy").split()[0])
        assert number_after(text, "changes by") == pytest.approx(shown, abs=0.05)


@pytest.mark.parametrize("direction", ["Orthogonal to every normal", "Random"])
@pytest.mark.parametrize("log_c", ["-1", "2", "4"])
def test_separability_sentence_carries_the_metrics(direction, log_c):
    at = open_page("pages/separability.py", {"sep_log_c": log_c, "sep_direction": direction})
    text = takeaway(at)
    assert number_after(text, "linear CKA falls to" if "Orthogonal" in direction else "takes linear CKA to") == \
        pytest.approx(metric(at, "Linear CKA"), abs=6e-4)
    probe_unchanged = "unchanged" in delta_text(at, "Probe accuracy")
    assert ("stay the same" in text or "stays at" in text) == probe_unchanged
    if "Orthogonal" in direction:
        assert probe_unchanged  # Corollary 4: the probe's decisions do not move
        network = delta_text(at, "Network accuracy")
        if "unchanged" in network:
            assert "does not change either" in text
        else:
            assert number_after(text, "its accuracy changes by") == pytest.approx(float(network.split()[0]), abs=0.05)


@pytest.mark.parametrize("spread", ["0.0", "1.5", "3.0"])
def test_function_preserving_sentence_carries_the_metrics(spread):
    at = open_page("pages/function_preserving.py", {"fp_spread": spread})
    text = takeaway(at)
    assert "all 359 predictions are identical" in text
    assert number_after(text, "before and after is") == pytest.approx(metric(at, "Linear CKA, hidden5"), abs=6e-4)


@pytest.mark.parametrize(("n", "d"), [("100", "1"), ("100", "1000"), ("20", "5000"), ("500", "10")])
def test_estimators_sentence_carries_the_null_bias_metrics(n, d):
    at = open_page("pages/estimators.py", {"est_n": n, "est_d": d})
    text = takeaway(at)
    biased = metric(at, "Biased CKA")
    assert number_after(text, "read biased CKA") == pytest.approx(biased, abs=6e-3)
    assert number_after(text, "and debiased CKA") == pytest.approx(metric(at, "Debiased CKA"), abs=6e-3)
    assert ("looks strongly similar" in text) == (biased >= 0.5)
    assert f"n = {n} examples and d = {d} features" in text


@pytest.mark.parametrize("amplitude", ["0.2", "0.5", "1.0"])
def test_neural_diversity_sentence_carries_the_rank_statistics(amplitude):
    at = open_page("pages/neural_diversity.py", {"nd_amp_sin": amplitude})
    text = takeaway(at)
    assert number_after(text, "Spearman ρ =") == pytest.approx(metric(at, "Spearman ρ"), abs=6e-3)
    assert f"at A = {float(amplitude):g}" in text
    paper = next(i.value for i in at.info if "Geadah et al. found" in i.value)
    assert f"At A = {float(amplitude):g}," in paper
