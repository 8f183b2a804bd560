"""Which measure to trust? ReSi's six grounding tests (Klabunde et al., ICLR 2025) on groups of
models given as plain arrays, every measure of the registry scored with a model-bootstrap interval.

    from cka_core.trust import Member, scorecard
    card = scorecard({"layer_monotonicity": [Member("net", {"l1": a1, "l2": a2, "l3": a3})]})
    card.cell("layer_monotonicity", "linear_cka").score, card.to_json()

:mod:`.members` (a model: named layers, logits, labels, group), :mod:`.grounding` (the tests and
:func:`scorecard`), :mod:`.statistics` (average precision, Spearman, the model bootstrap),
:mod:`.pairs` (pair values over shared layer views, cached), :mod:`.scorecard` (the result).
The zoo's groups come as plain dicts from ``sample_models.groups`` (this package never imports it)::

    from sample_models.groups import suites
    card = scorecard({test: [Member(**d) for d in members] for test, members in suites().items()})
    cell = card.cell("label_randomization", "rsa")   # .score, .ci, .error, .statistics, .pairs
"""
from .grounding import FUNCTIONAL, GROUP_TESTS, TESTS, candidate_measures, check_names, scorecard
from .members import Member, accuracy
from .pairs import PAIR_CACHE, PairCache
from .scorecard import Cell, PairRecord, Scorecard, Statistic

__all__ = ["TESTS", "GROUP_TESTS", "FUNCTIONAL", "Member", "accuracy", "scorecard", "candidate_measures", "check_names",
           "Scorecard", "Cell", "PairRecord", "Statistic", "PairCache", "PAIR_CACHE"]
