"""sample_models.zoo_scorecard: the shipped card was computed from the code and weights of this
checkout, equals a live computation cell by cell, and is refused (so the app computes it) as soon as
anything it depends on differs or the file cannot be read."""
from __future__ import annotations

import dataclasses
import gzip
import json
import shutil

import pytest

from cka_core.measures.registry import MEASURES
from cka_core.trust import candidate_measures
from sample_models import zoo_scorecard as zoo

SETTINGS = (zoo.RESAMPLES, zoo.SEED, zoo.CONFIDENCE)


def test_the_shipped_card_holds_for_this_checkout():
    card = zoo.shipped(candidate_measures(), *SETTINGS)
    assert card is not None, ("the shipped zoo scorecard was computed from other measures, grounding code or weights: "
                              "rebuild it with python -m sample_models.zoo_scorecard")
    assert card.measures == candidate_measures() and len(card.tests) == 6


def test_the_shipped_card_equals_a_live_computation():
    """Pair values to 1e-5 relative, scores and intervals to 2e-3: the members run in float32, so another
    CPU's kernels may move a pair value in its 7th digit and swap two values that agree to 9 digits
    (second-order cosine has such a pair), which moves a rank statistic by about 1e-4. A card computed
    from other code or weights differs by far more."""
    measures = candidate_measures()
    shipped = zoo.shipped(measures, *SETTINGS)
    live = zoo.compute(measures, *SETTINGS)
    assert shipped is not None and shipped.tests == live.tests and shipped.measures == live.measures
    for test in live.tests:
        for measure in measures:
            a, b = shipped.cell(test, measure), live.cell(test, measure)
            assert a.error == b.error, (test, measure)
            assert list(a.statistics) == list(b.statistics), (test, measure)
            for name, s in b.statistics.items():
                assert a.statistics[name].score == pytest.approx(s.score, abs=2e-3), (test, measure, name)
                assert a.statistics[name].ci == pytest.approx(s.ci, abs=2e-3), (test, measure, name)
            assert [(p.a, p.b, p.truth) for p in a.pairs] == [(p.a, p.b, p.truth) for p in b.pairs]
            assert [p.value for p in a.pairs] == pytest.approx([p.value for p in b.pairs], rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("change", ["resamples", "seed", "confidence", "measures"])
def test_other_settings_or_measures_are_not_served_the_shipped_card(change):
    measures, (resamples, seed, confidence) = candidate_measures(), SETTINGS
    if change == "measures":
        measures = measures[:-1]
    resamples += change == "resamples"
    seed += change == "seed"
    confidence -= 0.05 * (change == "confidence")
    assert zoo.shipped(measures, resamples, seed, confidence) is None


def test_a_changed_parameter_default_or_weights_manifest_is_not_served_the_shipped_card(monkeypatch, tmp_path):
    measures = candidate_measures()
    before = zoo.descriptor(measures, *SETTINGS)
    name = next(m for m in measures if MEASURES[m].parameters)
    info = MEASURES[name]
    changed = dataclasses.replace(info.parameters[0], default=info.parameters[0].default * 2 + 1)
    monkeypatch.setitem(MEASURES, name, dataclasses.replace(info, parameters=(changed, *info.parameters[1:])))
    assert zoo.descriptor(measures, *SETTINGS)["measures"] != before["measures"]
    monkeypatch.undo()
    groups_dir = tmp_path / "groups"
    shutil.copytree(zoo.GROUPS_DIR, groups_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    (groups_dir / "manifest.json").write_text((groups_dir / "manifest.json").read_text() + " ")
    monkeypatch.setattr(zoo, "GROUPS_DIR", groups_dir)
    assert zoo.descriptor(measures, *SETTINGS)["groups"] != before["groups"]
    assert zoo.shipped(measures, *SETTINGS) is None


@pytest.mark.parametrize("content", [None, b"not gzip", gzip.compress(b"{not json"), gzip.compress(b"[]"),
                                     gzip.compress(b'{"descriptor": 1}')],
                         ids=["missing", "not gzip", "not json", "a list", "no card"])
def test_a_missing_or_unreadable_file_is_no_card(tmp_path, content):
    path = tmp_path / "scorecard.json.gz"
    if content is not None:
        path.write_bytes(content)
    assert zoo.shipped(candidate_measures(), *SETTINGS, path=path) is None


def test_writing_the_same_card_gives_the_same_bytes(tmp_path):
    measures = candidate_measures()
    card = zoo.shipped(measures, *SETTINGS)
    first, second = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    zoo.write(card, measures, *SETTINGS, path=first)
    zoo.write(card, measures, *SETTINGS, path=second)
    assert first.read_bytes() == second.read_bytes()
    assert zoo.shipped(measures, *SETTINGS, path=first) == card
    assert json.loads(gzip.decompress(first.read_bytes()))["descriptor"] == zoo.descriptor(measures, *SETTINGS)
