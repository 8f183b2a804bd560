"""ReSi's six grounding tests (Klabunde et al., ICLR 2025, §3): does a measure's similarity follow
something known about the models?

* ``accuracy_correlation``, ``output_correlation``: Spearman's correlation, over pairs of models,
  between the measure's dissimilarity and the absolute accuracy difference / the output difference
  (Jensen-Shannon divergence of the predicted distributions; disagreement as a second statistic);
* ``label_randomization``, ``shortcut_affinity``, ``augmentation``: groups of models trained alike;
  for each group, the average precision of ranking its within-group pairs above its pairs with
  the other groups' models by similarity, averaged over the groups (ReSi's AUPRC);
* ``layer_monotonicity``: within each model, from every layer, the similarity to the other layers
  should fall with the distance in layers: Spearman's correlation of dissimilarity and layer
  distance (each layer forwards and backwards, averaged; then over the models), and the share of
  violated orderings as a second statistic.

A similarity becomes a dissimilarity by its sign, from the registry's ``higher_is_similar``.
Every interval is a model bootstrap (:mod:`.statistics`). The functions take :class:`Member` s,
plain arrays, so a user's own models go through the tests that need only a group.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np

from ..errors import RepresentationError
from ..measures.registry import MEASURES, similarity
from .members import Member
from .pairs import PAIR_CACHE, PairCache, Representation, pair_values
from .scorecard import Cell, PairRecord, Scorecard, Statistic
from .statistics import average_precision, model_counts, pair_weights, percentile_interval, spearman

__all__ = ["TESTS", "GROUP_TESTS", "FUNCTIONAL", "candidate_measures", "scorecard"]

TESTS = ("accuracy_correlation", "output_correlation", "label_randomization", "shortcut_affinity", "augmentation",
         "layer_monotonicity")
GROUP_TESTS = frozenset({"label_randomization", "shortcut_affinity", "augmentation"})
#: Measures of outputs or accuracy: the ground truth of the tests, not candidates.
FUNCTIONAL = frozenset({"jsd", "disagreement", "accuracy_difference"})
#: The output differences of ``output_correlation``, the first being the main statistic.
OUTPUT_DIFFERENCES = ("jsd", "disagreement")

Functional = Callable[[np.ndarray, np.ndarray], float]


def candidate_measures() -> list[str]:
    """The registry's measures of representations (those flagged ``on_outputs`` are left out)."""
    return [name for name, info in MEASURES.items()
            if not getattr(info, "on_outputs", False) and name not in FUNCTIONAL]


def _registry_functional(name: str) -> Functional:
    def difference(a: np.ndarray, b: np.ndarray) -> float:
        if name not in MEASURES:
            raise RepresentationError(f"output_correlation needs the functional measure {name!r}, which is not in the "
                                      "registry; pass functional={name: f(logits_a, logits_b)}.")
        return similarity(a, b, name)
    return difference


# ----------------------------------------------------------------------------- designs: pairs and ground truth
class _Design:
    """The pairs of one test and their ground truth, shared by every measure."""

    def __init__(self, test: str, members: Sequence[Member], reps: list[Representation], pairs: np.ndarray,
                 truths: dict[str, np.ndarray], groups: np.ndarray | None = None, owner: np.ndarray | None = None):
        self.test, self.members, self.reps, self.pairs, self.truths = test, members, reps, pairs, truths
        self.groups = groups  # group-separation tests: the group index of each member
        self.owner = owner    # layer monotonicity: the member each representation belongs to
        self.sides = _sides(self) if owner is not None else {}
        self._counts: dict = {}

    def counts(self, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """((n_resamples, M) model-bootstrap counts, the pairs' weights), drawn once per design and seed:
        every measure of a test is scored on the same resamples (intervals comparable measure to measure)."""
        key = (n_resamples, seed)
        if key not in self._counts:
            rng = np.random.default_rng(seed)
            M = len(self.members)
            if self.groups is not None:
                counts = np.empty((n_resamples, M))
                for k, c in enumerate(model_counts(rng, np.bincount(self.groups), n_resamples)):
                    counts[:, self.groups == k] = c
            elif self.owner is not None:
                counts = rng.multinomial(M, np.full(M, 1.0 / M), size=n_resamples).astype(np.float64)
            else:
                counts = model_counts(rng, [M], n_resamples)[0].astype(np.float64)
            # Layer monotonicity pairs layers, not models: its statistics reweight the models directly.
            weights = None if self.owner is not None else pair_weights(counts, self.pairs)
            self._counts = {key: (counts, weights)}
        return self._counts[key]


def _check_group(test: str, members: Sequence[Member], at_least: int = 2) -> None:
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise RepresentationError(f"{test}: two models share a name; give each model its own name.")
    if len(members) < at_least:
        raise RepresentationError(f"{test} needs at least {at_least} models, got {len(members)}.")
    n = {m.layers[m.compared].shape[0] for m in members}
    if len(n) != 1:
        raise RepresentationError(f"{test}: the models were run on different numbers of examples ({sorted(n)}); "
                                  "every model must read the same inputs.")


def _compared(members: Sequence[Member]) -> list[Representation]:
    return [Representation(m.layers[m.compared], f"{m.name}:{m.compared}") for m in members]


def _all_pairs(k: int) -> np.ndarray:
    return np.array(list(combinations(range(k), 2)), dtype=np.intp).reshape(-1, 2)


def correlation_design(test: str, members: Sequence[Member],
                       functional: Mapping[str, Functional] | None = None) -> _Design:
    """Every pair of models, with |accuracy difference| or the output differences as ground truth."""
    _check_group(test, members, 3)
    pairs = _all_pairs(len(members))
    if test == "accuracy_correlation":
        acc = np.array([m.accuracy for m in members])
        truths = {"spearman_accuracy": np.abs(acc[pairs[:, 0]] - acc[pairs[:, 1]])}
    else:
        missing = [m.name for m in members if m.logits is None]
        if missing:
            raise RepresentationError(f"output_correlation needs every model's logits; {', '.join(missing)} "
                                      "have none.")
        functional = dict(functional or {})
        truths = {}
        for name in OUTPUT_DIFFERENCES:
            f = functional.get(name) or _registry_functional(name)
            truths[f"spearman_{name}"] = np.array([f(np.asarray(members[i].logits), np.asarray(members[j].logits))
                                                   for i, j in pairs])
    return _Design(test, members, _compared(members), pairs, truths)


def group_design(test: str, members: Sequence[Member]) -> _Design:
    """Every pair of models, labelled same group (1) or not (0)."""
    _check_group(test, members)
    labels = [m.group for m in members]
    if any(g is None for g in labels):
        raise RepresentationError(f"{test} needs a group for every model; "
                                  f"{', '.join(m.name for m in members if m.group is None)} have none.")
    names = list(dict.fromkeys(labels))
    groups = np.array([names.index(g) for g in labels])
    sizes = np.bincount(groups)
    if len(names) < 2 or sizes.min() < 2:
        raise RepresentationError(f"{test} needs at least 2 groups of at least 2 models each; got group sizes "
                                  f"{dict(zip(names, sizes.tolist()))}.")
    pairs = _all_pairs(len(members))
    same = (groups[pairs[:, 0]] == groups[pairs[:, 1]]).astype(np.float64)
    return _Design(test, members, _compared(members), pairs, {"auprc": same}, groups=groups)


def monotonicity_design(test: str, members: Sequence[Member]) -> _Design:
    """Every pair of layers within each model, with their distance in layers as ground truth."""
    if not members:
        raise RepresentationError(f"{test} needs at least one model.")
    reps, pairs, distance, owner = [], [], [], []
    for k, m in enumerate(members):
        if len(m.layers) < 3:
            raise RepresentationError(f"{test}: model {m.name!r} has {len(m.layers)} layers; layer monotonicity "
                                      "needs at least 3, in forward order.")
        start = len(reps)
        reps += [Representation(a, f"{m.name}:{layer}") for layer, a in m.layers.items()]
        owner += [k] * len(m.layers)
        for i, j in combinations(range(len(m.layers)), 2):
            pairs.append((start + i, start + j))
            distance.append(j - i)
    return _Design(test, members, reps, np.array(pairs), {"spearman": np.array(distance, dtype=np.float64)},
                   owner=np.array(owner))


# ----------------------------------------------------------------------------- scores of one measure
def _dissimilarity(measure: str, values: np.ndarray) -> np.ndarray:
    return -values if MEASURES[measure].higher_is_similar else values


def _auprc(design: _Design, d: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Mean over groups of the AP of the group's own pairs against its pairs with other groups."""
    g = design.groups
    ga, gb = g[design.pairs[:, 0]], g[design.pairs[:, 1]]
    per_group = []
    for k in range(g.max() + 1):
        involved = (ga == k) | (gb == k)
        w = None if weights is None else weights[:, involved]
        per_group.append(average_precision(-d[involved], (ga == gb)[involved], w))
    return np.mean(per_group, axis=0)


def _sides(design: _Design) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Layer monotonicity's sides, by length k >= 2: (model, source layer, the k layers on one side
    of it, nearest first), as arrays (S,), (S,), (S, k) of layer positions within the model."""
    sides: dict[int, list] = {}
    for k in range(len(design.members)):
        L = int(np.count_nonzero(design.owner == k))
        for src in range(L):
            for targets in (np.arange(src + 1, L), np.arange(src - 1, -1, -1)):
                if targets.size >= 2:
                    sides.setdefault(targets.size, []).append((k, src, targets))
    return {size: (np.array([m for m, _, _ in rows]), np.array([s for _, s, _ in rows]),
                   np.stack([t for _, _, t in rows])) for size, rows in sides.items()}


def _per_model_monotonicity(design: _Design, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correlation, violation rate) of each model. From each layer, forwards and backwards, the
    Spearman correlation of dissimilarity with layer distance (ReSi's sign: 1 when similarity falls
    with distance); a side with one other layer has no ordering and is skipped, a side whose
    dissimilarities are all equal counts 0. A violation: a layer farther on the same side that is
    strictly more similar than a nearer one."""
    M = len(design.members)
    first = np.array([np.flatnonzero(design.owner == k)[0] for k in range(M)])
    model = design.owner[design.pairs[:, 0]]
    i, j = design.pairs[:, 0] - first[model], design.pairs[:, 1] - first[model]
    size = int(max(i.max(), j.max())) + 1
    D = np.zeros((M, size, size))
    D[model, i, j] = D[model, j, i] = d
    corr_sum, sides = np.zeros(M), np.zeros(M)
    violations, orderings = np.zeros(M), np.zeros(M)
    for k, (owner, src, targets) in design.sides.items():
        x = D[owner[:, None], src[:, None], targets]  # (S, k), nearest first: distance ranks 1..k
        ranks = (x[:, None, :] < x[:, :, None]).sum(-1) + ((x[:, None, :] == x[:, :, None]).sum(-1) + 1) / 2
        centred = ranks - (k + 1) / 2
        spread = np.sqrt((centred ** 2).sum(axis=1) * (k * (k * k - 1) / 12))
        distance = np.arange(1, k + 1) - (k + 1) / 2
        rho = np.divide(centred @ distance, spread, out=np.zeros(len(x)), where=spread > 0)
        corr_sum += np.bincount(owner, rho, M)
        sides += np.bincount(owner, minlength=M)
        near, far = np.triu_indices(k, 1)
        violations += np.bincount(owner, (x[:, near] > x[:, far]).sum(axis=1), M)
        orderings += np.bincount(owner, minlength=M) * near.size
    return corr_sum / sides, violations / orderings


def _score(design: _Design, measure: str, options: dict, n_resamples: int, confidence: float, seed: int,
           cache: PairCache | None) -> Cell:
    values, error = pair_values(design.reps, design.pairs, measure, options, cache)
    if error is not None:
        return Cell.failed(design.test, measure, error)
    d = _dissimilarity(measure, values)
    counts, weights = design.counts(n_resamples, seed)
    truth = next(iter(design.truths.values()))
    records = [PairRecord(design.reps[i].name, design.reps[j].name, float(t), float(v))
               for (i, j), t, v in zip(design.pairs, truth, values)]
    if design.groups is not None:
        boot = _auprc(design, d, weights)
        stats = {"auprc": Statistic(float(_auprc(design, d, None)[0]), percentile_interval(boot, confidence))}
    elif design.owner is not None:
        corr, viol = _per_model_monotonicity(design, d)
        share = counts / counts.shape[1]
        stats = {"spearman": Statistic(float(corr.mean()), percentile_interval(share @ corr, confidence)),
                 "violation_rate": Statistic(float(viol.mean()), percentile_interval(share @ viol, confidence))}
    else:
        stats = {}
        for name, truth in design.truths.items():
            stats[name] = Statistic(float(spearman(d, truth)[0]),
                                    percentile_interval(spearman(d, truth, weights), confidence))
    return Cell.of(design.test, measure, stats, records)


# ----------------------------------------------------------------------------- the scorecard
def design(test: str, members: Sequence[Member], functional: Mapping[str, Functional] | None = None) -> _Design:
    """The pairs and ground truth of ``test`` on ``members``."""
    if test in GROUP_TESTS:
        return group_design(test, members)
    if test == "layer_monotonicity":
        return monotonicity_design(test, members)
    return correlation_design(test, members, functional)


def _fill_apart(design: _Design, measures: list[str], options: dict, cache: PairCache) -> None:
    """Fill ``cache`` with the design's pair values one connected set of representations at a time (a deep
    model's layers in layer monotonicity), forgetting each set's views before the next: holding all 30 layer
    views of that test at once was the scorecard's peak memory (8 MB of per-layer work each)."""
    sets = _connected(len(design.reps), design.pairs)
    if len(sets) < 2:
        return
    for members in sets:
        chunk = [(i, j) for i, j in design.pairs if i in members]
        for measure in measures:
            pair_values(design.reps, chunk, measure, _options(measure, design.members, options), cache)
        for i in members:
            design.reps[i].forget_view()


def _connected(count: int, pairs) -> list[set[int]]:
    """The connected sets of ``count`` nodes under ``pairs`` (union-find), those in no pair left out."""
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(i)] = root(j)
    sets: dict[int, set[int]] = {}
    for i, j in pairs:
        sets.setdefault(root(i), set()).update((i, j))
    return list(sets.values())


def check_names(tests, measures) -> None:
    """Refuse a test or measure name the scorecard does not know, listing the valid ones."""
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        raise RepresentationError(f"unknown test {', '.join(map(repr, unknown))}; valid tests: {', '.join(TESTS)}.")
    valid = candidate_measures()
    unknown = [m for m in measures if m not in valid]
    if unknown:
        raise RepresentationError(f"unknown measure {', '.join(map(repr, unknown))}; valid measures: "
                                  f"{', '.join(valid)}.")


def _options(measure: str, members: Sequence[Member], given: Mapping[str, dict]) -> dict:
    options = dict(given.get(measure, {}))
    if MEASURES[measure].needs_inputs and "inputs" not in options and members[0].inputs is not None:
        options["inputs"] = members[0].inputs
    return options


def scorecard(suites: Mapping[str, Sequence[Member]], measures: Sequence[str] | None = None, *,
              n_resamples: int = 500, confidence: float = 0.95, seed: int = 0,
              options: Mapping[str, dict] | None = None, functional: Mapping[str, Functional] | None = None,
              cache: PairCache | None = PAIR_CACHE,
              progress: Callable[[int, int, str], None] | None = None) -> Scorecard:
    """Every measure (default: :func:`candidate_measures`) on every test of ``suites``.

    Parameters
    ----------
    suites : {test name: the models of that test}
        Each test's models (a test of :data:`GROUP_TESTS` needs each model's ``group``; the
        correlation tests its logits, and labels for accuracy; layer monotonicity three layers or more).
    options : {measure: keywords}
        Parameters of a measure (its declared defaults otherwise).
    functional : {"jsd" | "disagreement": f(logits_a, logits_b)}
        The output differences; by default the registry's measures of those names.
    cache : where pair values are kept between calls (``None``: computed afresh).
    progress : called with (done, total, "test / measure") after each cell.

    A measure that fails on some pair has a cell with its ``error``; a test whose models do not
    fit it raises :class:`RepresentationError`.
    """
    measures = list(candidate_measures() if measures is None else measures)
    check_names(suites, measures)
    if n_resamples < 1 or not 0 < confidence < 1:
        raise RepresentationError("n_resamples must be at least 1 and confidence strictly between 0 and 1.")
    designs = {test: design(test, members, functional) for test, members in suites.items()}
    total, done = len(designs) * len(measures), 0
    cells: dict[str, dict[str, Cell]] = {}
    for test, dsg in designs.items():
        cells[test] = {}
        if cache is not None:
            _fill_apart(dsg, measures, options or {}, cache)
        for measure in measures:
            cells[test][measure] = _score(dsg, measure, _options(measure, dsg.members, options or {}), n_resamples,
                                          confidence, seed, cache)
            done += 1
            if progress is not None:
                progress(done, total, f"{test} / {measure}")
        for rep in dsg.reps:  # a test's views serve all its measures; kept for every test they held 1.3 GB
            rep.forget_view()
    return Scorecard(cells)
