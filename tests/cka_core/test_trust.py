"""cka_core.trust: the statistics against brute force, each grounding test on synthetic groups
whose right answer is known, failures as messages, the cache, the scorecard's JSON and CSV."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from itertools import combinations

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import average_precision_score

from cka_core.errors import RepresentationError
from cka_core.measures.registry import MEASURES, MeasureInfo
from cka_core.trust import Member, PairCache, Scorecard, TESTS, candidate_measures, scorecard
from cka_core.trust.statistics import average_precision, model_counts, pair_weights, percentile_interval, spearman

N = 32  # examples per synthetic model (accuracies k/32 and their differences are exact in binary)


# ----------------------------------------------------------------------------- statistics against brute force
def test_average_precision_by_hand():
    # Ranked: + - + -. Precision at each positive: 1/1, 2/3; AP = (1 + 2/3) / 2.
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])[0] == pytest.approx((1 + 2 / 3) / 2)
    # A tie between a positive and a negative enters together: precision 1/2 at recall 1/2.
    assert average_precision([0.9, 0.5, 0.5], [1, 1, 0])[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([3, 2, 1], [0, 0, 1])[0] == pytest.approx(1 / 3)
    assert np.isnan(average_precision([1, 2], [0, 0])[0])


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties_and_weights(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 30).astype(float)  # many ties
    positive = rng.random(30) < 0.3
    positive[0] = True
    weights = rng.integers(0, 4, (3, 30)).astype(float)
    weights[:, 0] = 1
    got = average_precision(scores, positive, weights)
    for row, w in zip(got, weights):
        assert row == pytest.approx(average_precision_score(positive, scores, sample_weight=w))
    assert average_precision(scores, positive)[0] == pytest.approx(average_precision_score(positive, scores))


@pytest.mark.parametrize("seed", range(5))
def test_spearman_matches_scipy_and_the_expanded_sample(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 5, 25).astype(float), rng.standard_normal(25)
    assert spearman(x, y)[0] == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
    counts = rng.integers(0, 3, (4, 25)).astype(float)
    counts[:, :3] = 1
    for got, c in zip(spearman(x, y, counts), counts.astype(int)):
        expected = scipy.stats.spearmanr(np.repeat(x, c), np.repeat(y, c)).statistic
        assert got == pytest.approx(expected)


def test_spearman_of_a_constant_side_is_zero():
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])[0] == 0.0


def test_model_counts_draw_every_model_count_and_keep_a_pair():
    counts = model_counts(np.random.default_rng(0), [2, 3, 10], 400)
    for k, c in zip([2, 3, 10], counts):
        assert c.shape == (400, k) and (c.sum(axis=1) == k).all()
        assert (np.count_nonzero(c, axis=1) >= 2).all()
    weights = pair_weights(np.array([[2, 0, 1]]), np.array([[0, 1], [0, 2], [1, 2]]))
    assert weights.tolist() == [[0.0, 2.0, 0.0]]


def test_model_bootstrap_interval_covers_the_population_score():
    """Models with a latent z; a pair's dissimilarity is |z_i - z_j| plus pair noise and the truth is
    |z_i - z_j|. The population Spearman (300 models) should fall in most 90 % intervals from 12."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal(300)

    def pair_data(idx):
        pairs = np.array(list(combinations(range(idx.size), 2)))
        truth = np.abs(z[idx][pairs[:, 0]] - z[idx][pairs[:, 1]])
        noise = np.random.default_rng(abs(hash(tuple(idx))) % 2**32).standard_normal(truth.size)
        return pairs, truth, truth + 0.6 * noise

    _, t_all, d_all = pair_data(np.arange(300))
    population = scipy.stats.spearmanr(t_all, d_all).statistic
    covered = 0
    for trial in range(60):
        idx = rng.choice(300, 12, replace=False)
        pairs, truth, d = pair_data(idx)
        counts = model_counts(rng, [12], 300)[0]
        low, high = percentile_interval(spearman(d, truth, pair_weights(counts, pairs)), 0.9)
        covered += low <= population <= high
    assert covered >= 0.75 * 60, covered


# ----------------------------------------------------------------------------- toy measures with a known answer
def _offset_distance(X, Y):
    """Distance of the means of column 0: the synthetic models put their ground truth there."""
    return abs(float(np.mean(X[:, 0])) - float(np.mean(Y[:, 0])))


def _coin(X, Y):
    """A similarity that knows nothing: a fixed pseudo-random number per unordered pair."""
    a, b = sorted(hashlib.sha256(np.ascontiguousarray(m).tobytes()).hexdigest() for m in (X, Y))
    return int(hashlib.sha256((a + b).encode()).hexdigest()[:8], 16) / 16 ** 8


def _refuses(X, Y):
    raise RepresentationError("toy: k must be smaller than n.")


CALLS = {"n": 0}


def _counted(X, Y):
    CALLS["n"] += 1
    return _offset_distance(X, Y)


def _info(name, fn, higher):
    return MeasureInfo(name, name, fn, higher, (0.0, 1.0), frozenset(), True, "toy", "none")


@pytest.fixture
def toys(monkeypatch):
    for name, fn, higher in [("oracle", _offset_distance, False), ("coin", _coin, True),
                             ("refuses", _refuses, True), ("counted", _counted, False)]:
        monkeypatch.setitem(MEASURES, name, _info(name, fn, higher))


def _layer(rng, offset, d=5):
    X = rng.standard_normal((N, d))
    X[:, 0] = offset + np.resize([0.5, -0.5], N)  # its mean is exactly the offset: no round-off ties
    return X


def _logits_with_accuracy(labels, correct):
    """(n, 3) logits whose argmax equals the label on the first ``correct`` rows only."""
    logits = np.zeros((labels.size, 3))
    right = np.arange(labels.size) < correct
    logits[np.arange(labels.size), np.where(right, labels, (labels + 1) % 3)] = 1.0
    return logits


def _correlation_group(rng, k=6):
    labels = np.arange(N) % 3
    members = []
    for i in range(k):
        correct = 8 + 4 * i
        members.append(Member(f"m{i}", {"h1": rng.standard_normal((N, 4)), "h2": _layer(rng, correct / N)},
                              logits=_logits_with_accuracy(labels, correct), labels=labels))
    return members


def _mean_logit_difference(a, b):
    return abs(float(a.mean()) - float(b.mean()))


def _groups(rng, n_groups=4, size=3, separated=True):
    return [Member(f"g{g}m{i}", {"h": _layer(rng, (10.0 * g if separated else 0.0) + 0.01 * i)}, group=f"G{g}")
            for g in range(n_groups) for i in range(size)]


def _deep(rng, k=3, depth=5):
    return [Member(f"deep{m}", {f"h{l}": _layer(rng, float(l)) for l in range(depth)}) for m in range(k)]


def test_a_perfect_function_of_the_ground_truth_scores_one(toys):
    rng = np.random.default_rng(0)
    group = _correlation_group(rng)
    output = [Member(m.name, {"h": _layer(rng, i / 8)}, logits=np.full((N, 3), i / 8))
              for i, m in enumerate(group)]
    suites = {"accuracy_correlation": group, "output_correlation": output,
              **{t: _groups(rng) for t in ("label_randomization", "shortcut_affinity", "augmentation")},
              "layer_monotonicity": _deep(rng)}
    card = scorecard(suites, ["oracle"], n_resamples=200, cache=None,
                     functional={"jsd": _mean_logit_difference, "disagreement": _mean_logit_difference})
    for test in TESTS:
        cell = card.cell(test, "oracle")
        assert cell.error is None
        assert cell.score == pytest.approx(1.0), test
        assert cell.ci[0] == pytest.approx(1.0) and cell.ci[1] == pytest.approx(1.0), test
    assert card.cell("layer_monotonicity", "oracle").statistics["violation_rate"].score == 0.0
    assert set(card.cell("output_correlation", "oracle").statistics) == {"spearman_jsd", "spearman_disagreement"}


def test_a_random_measure_scores_near_chance(toys):
    rng = np.random.default_rng(1)
    auprc, corr, violations = [], [], []
    for _ in range(8):
        suites = {"label_randomization": _groups(rng), "accuracy_correlation": _correlation_group(rng, 8),
                  "layer_monotonicity": _deep(rng, 4, 6)}
        card = scorecard(suites, ["coin"], n_resamples=20, cache=None)
        auprc.append(card.cell("label_randomization", "coin").score)
        corr.append(card.cell("accuracy_correlation", "coin").score)
        violations.append(card.cell("layer_monotonicity", "coin").statistics["violation_rate"].score)
    chance = 3 / (3 + 3 * 9)  # per group: 3 pairs inside, 27 with the other groups
    assert abs(np.mean(auprc) - chance) < 0.12
    assert abs(np.mean(corr)) < 0.2
    assert abs(np.mean(violations) - 0.5) < 0.1


def test_an_unrelated_grouping_gives_a_low_auprc_and_a_separated_one_a_perfect(toys):
    rng = np.random.default_rng(2)
    mixed = scorecard({"augmentation": _groups(rng, separated=False)}, ["oracle", "linear_cka"], n_resamples=50,
                      cache=None)
    separated = scorecard({"augmentation": _groups(rng)}, ["oracle"], n_resamples=50, cache=None)
    assert mixed.cell("augmentation", "oracle").score < 0.6
    assert separated.cell("augmentation", "oracle").score == pytest.approx(1.0)


def test_a_measure_that_fails_is_reported_not_nan(toys):
    rng = np.random.default_rng(3)
    card = scorecard({"layer_monotonicity": _deep(rng)}, ["refuses", "deconfounded_cka", "oracle"], n_resamples=10,
                     cache=None)
    refused = card.cell("layer_monotonicity", "refuses")
    assert refused.score is None and refused.ci is None and "k must be smaller than n" in refused.error
    assert "inputs" in card.cell("layer_monotonicity", "deconfounded_cka").error
    doc = card.to_dict()["tests"]["layer_monotonicity"]
    assert doc["refuses"] == {"score": None, "ci": None, "error": refused.error}
    assert card.cell("layer_monotonicity", "oracle").error is None


def test_a_card_comes_back_equal_from_its_record_through_json(toys):
    """to_record / from_record: every cell, statistic, interval, pair and error survives plain JSON."""
    rng = np.random.default_rng(5)
    card = scorecard({"layer_monotonicity": _deep(rng), "augmentation": _groups(rng)}, ["refuses", "oracle", "coin"],
                     n_resamples=20, cache=None)
    assert card.cell("layer_monotonicity", "refuses").error and card.cell("augmentation", "oracle").pairs
    again = Scorecard.from_record(json.loads(json.dumps(card.to_record())))
    assert again == card and list(again.cells) == list(card.cells) and again.measures == card.measures


def test_deconfounded_cka_takes_the_members_inputs():
    rng = np.random.default_rng(4)
    inputs = rng.standard_normal((N, 6))
    members = [Member(f"deep{m}", {f"h{l}": np.tanh(inputs @ rng.standard_normal((6, 5))) for l in range(4)},
                      inputs=inputs) for m in range(2)]
    card = scorecard({"layer_monotonicity": members}, ["deconfounded_cka"], n_resamples=10, cache=None)
    assert card.cell("layer_monotonicity", "deconfounded_cka").error is None


def test_pair_values_are_cached_by_digest_and_measure(toys):
    rng = np.random.default_rng(5)
    members = _groups(rng)
    cache = PairCache()
    CALLS["n"] = 0
    first = scorecard({"label_randomization": members}, ["counted"], n_resamples=20, cache=cache)
    calls = CALLS["n"]
    assert calls == len(members) * (len(members) - 1) // 2
    renamed = [Member("x" + m.name, m.layers, group=m.group) for m in members]  # same arrays: same digests
    again = scorecard({"label_randomization": renamed}, ["counted"], n_resamples=20, cache=cache)
    assert CALLS["n"] == calls
    assert again.cell("label_randomization", "counted").score == first.cell("label_randomization", "counted").score


def test_pair_cache_is_bounded_and_survives_a_file(tmp_path):
    cache = PairCache(max_entries=3)
    for k in range(5):
        cache.put(f"k{k}", float(k))
    assert len(cache) == 3 and cache.get("k0") is None and cache.get("k4") == 4.0
    cache.put("bad", "measure failed")
    cache.save(tmp_path / "c.json")
    other = PairCache()
    other.load(tmp_path / "c.json")
    assert other.get("k4") == 4.0 and other.get("bad") == "measure failed"
    other.load(tmp_path / "missing.json")  # nothing to read: still usable
    assert len(other) == 3


def test_the_pairs_behind_a_cell_carry_truth_and_value(toys):
    rng = np.random.default_rng(6)
    members = _groups(rng, 2, 2)
    cell = scorecard({"shortcut_affinity": members}, ["oracle"], n_resamples=10, cache=None).cell(
        "shortcut_affinity", "oracle")
    assert len(cell.pairs) == 6
    first = cell.pairs[0]
    assert (first.a, first.b, first.truth) == ("g0m0:h", "g0m1:h", 1.0)
    assert first.value == pytest.approx(_offset_distance(members[0].layers["h"], members[1].layers["h"]))


def test_json_and_csv_schema(toys):
    rng = np.random.default_rng(7)
    card = scorecard({"layer_monotonicity": _deep(rng), "augmentation": _groups(rng)}, ["oracle", "coin"],
                     n_resamples=20, cache=None)
    doc = json.loads(card.to_json())
    assert list(doc) == ["tests"]
    assert list(doc["tests"]) == ["layer_monotonicity", "augmentation"]
    for row in doc["tests"].values():
        assert list(row) == ["oracle", "coin"]
        for entry in row.values():
            assert set(entry) == {"score", "ci"} and isinstance(entry["score"], float) and len(entry["ci"]) == 2
            assert entry["ci"][0] <= entry["ci"][1]
    rows = list(csv.DictReader(io.StringIO(card.to_csv())))
    assert {r["statistic"] for r in rows} == {"spearman", "violation_rate", "auprc"}
    assert len(rows) == 2 * 2 + 2


def test_unknown_names_and_unfit_groups_are_refused(toys):
    rng = np.random.default_rng(8)
    with pytest.raises(RepresentationError, match="valid tests: accuracy_correlation"):
        scorecard({"nope": _deep(rng)}, ["oracle"])
    with pytest.raises(RepresentationError, match="valid measures: .*linear_cka"):
        scorecard({"layer_monotonicity": _deep(rng)}, ["no_such_measure"])
    with pytest.raises(RepresentationError, match="needs a group for every model"):
        scorecard({"augmentation": _deep(rng)}, ["oracle"])
    with pytest.raises(RepresentationError, match="at least 2 groups of at least 2"):
        scorecard({"augmentation": _groups(rng, 2, 1)}, ["oracle"])
    with pytest.raises(RepresentationError, match="at least 3, in forward order"):
        scorecard({"layer_monotonicity": _groups(rng)}, ["oracle"])
    with pytest.raises(RepresentationError, match="no logits and labels"):
        scorecard({"accuracy_correlation": _groups(rng)}, ["oracle"])
    with pytest.raises(RepresentationError, match="different numbers of rows"):
        Member("m", {"h": np.zeros((3, 2))}, logits=np.zeros((4, 2)))


def test_functional_measures_are_not_candidates():
    names = candidate_measures()
    assert not {"jsd", "disagreement", "accuracy_difference"} & set(names)
    assert "linear_cka" in names


def _monotonicity_by_brute_force(D):
    """ReSi's loops, literally: from each layer, each side with two layers or more."""
    L = D.shape[0]
    corr, violations, orderings = [], 0, 0
    for src in range(L):
        for side in (range(src + 1, L), range(src - 1, -1, -1)):
            side = list(side)
            if len(side) < 2:
                continue
            d = [D[src, t] for t in side]
            constant = np.ptp(d) == 0  # no ordering: counted 0
            corr.append(0.0 if constant else scipy.stats.spearmanr(d, [abs(t - src) for t in side]).statistic)
            for a in range(len(side)):
                for b in range(a + 1, len(side)):
                    orderings += 1
                    violations += d[a] > d[b]
    return np.mean(corr), violations / orderings


def test_layer_monotonicity_matches_resi_loops(toys, monkeypatch):
    rng = np.random.default_rng(9)
    # Coarse values, so ties occur (a constant side among them).
    monkeypatch.setitem(MEASURES, "coarse", _info("coarse", lambda X, Y: float(round(3 * _coin(X, Y))), True))
    members = [Member(f"deep{m}", {f"h{l}": _layer(rng, float(l)) for l in range(L)}) for m, L in enumerate([4, 6, 7])]
    cell = scorecard({"layer_monotonicity": members}, ["coarse"], n_resamples=10, cache=None).cell(
        "layer_monotonicity", "coarse")
    expected = []
    for m in members:
        names = [f"{m.name}:{layer}" for layer in m.layers]
        D = np.zeros((len(names), len(names)))
        for p in cell.pairs:
            if p.a in names:
                i, j = names.index(p.a), names.index(p.b)
                D[i, j] = D[j, i] = -p.value  # a similarity: its negative is the dissimilarity
        expected.append(_monotonicity_by_brute_force(D))
    assert cell.score == pytest.approx(np.mean([c for c, _ in expected]))
    assert cell.statistics["violation_rate"].score == pytest.approx(np.mean([v for _, v in expected]))


def _jsd_bits(a, b):
    """Mean Jensen-Shannon divergence in bits of the rows' softmax distributions, in float64 loops."""
    total = 0.0
    for x, y in zip(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)):
        p, q = np.exp(x - x.max()), np.exp(y - y.max())
        p, q = p / p.sum(), q / q.sum()
        m = (p + q) / 2
        total += 0.5 * sum(pi * np.log2(pi / mi) for pi, mi in zip(p, m) if pi > 0)
        total += 0.5 * sum(qi * np.log2(qi / mi) for qi, mi in zip(q, m) if qi > 0)
    return total / len(a)


def _disagreement(a, b):
    return float(np.mean(np.argmax(a, axis=1) != np.argmax(b, axis=1)))


@pytest.mark.skipif("jsd" not in MEASURES or "disagreement" not in MEASURES,
                    reason="the registry's functional measures have not landed")
def test_output_correlation_reads_the_registrys_jsd_and_disagreement():
    rng = np.random.default_rng(10)
    base = rng.standard_normal((N, 4))
    members = [Member(f"m{i}", {"h": base + 0.3 * i * rng.standard_normal((N, 4))},
                      logits=3 * base[:, :3] + i * 0.4 * rng.standard_normal((N, 3))) for i in range(6)]
    registry = scorecard({"output_correlation": members}, ["linear_cka"], n_resamples=50, cache=None)
    literal = scorecard({"output_correlation": members}, ["linear_cka"], n_resamples=50, cache=None,
                        functional={"jsd": _jsd_bits, "disagreement": _disagreement})
    for name in ("spearman_jsd", "spearman_disagreement"):
        got = registry.cell("output_correlation", "linear_cka").statistics[name]
        expected = literal.cell("output_correlation", "linear_cka").statistics[name]
        assert got.score == pytest.approx(expected.score) and got.ci == pytest.approx(expected.ci)


def test_connected_sets_split_the_pairs_a_test_compares():
    """Layer monotonicity compares layers within a model only: each model's layers are one connected set, so
    the scorecard can hold one model's views at a time (their per-layer work was its peak memory)."""
    from cka_core.trust.grounding import _connected

    sets = _connected(7, [(0, 1), (1, 2), (0, 2), (3, 4), (5, 4)])
    assert sorted(map(sorted, sets)) == [[0, 1, 2], [3, 4, 5]]  # 6 is in no pair
    assert _connected(3, []) == []
