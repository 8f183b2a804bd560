"""The scorecard: one cell per (test, measure), with its score, bootstrap interval and the pairs
behind it, written as JSON or CSV."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

__all__ = ["PairRecord", "Statistic", "Cell", "Scorecard"]


@dataclass(frozen=True)
class PairRecord:
    """One pair behind a cell: the two representations, the ground truth (|accuracy difference|,
    output difference, 1/0 for same/different group, layer distance) and the measure's value."""

    a: str
    b: str
    truth: float
    value: float


@dataclass(frozen=True)
class Statistic:
    """A number with its bootstrap interval."""

    score: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class Cell:
    """How ``measure`` did on ``test``: ``score`` and ``ci`` (the main statistic), or ``error`` (why the
    measure has no value there). ``statistics`` holds every statistic the test reports (the main one
    first, e.g. ``spearman_jsd`` and ``spearman_disagreement``; ``spearman`` and ``violation_rate``),
    ``pairs`` the pairs it was computed from."""

    test: str
    measure: str
    score: float | None
    ci: tuple[float, float] | None
    error: str | None = None
    statistics: dict[str, Statistic] = field(default_factory=dict)
    pairs: tuple[PairRecord, ...] = ()

    @classmethod
    def failed(cls, test: str, measure: str, error: str) -> "Cell":
        return cls(test, measure, None, None, error)

    @classmethod
    def of(cls, test: str, measure: str, statistics: dict[str, Statistic], pairs) -> "Cell":
        main = next(iter(statistics.values()))
        return cls(test, measure, main.score, main.ci, None, statistics, tuple(pairs))


@dataclass(frozen=True)
class Scorecard:
    """Every cell, by test then measure, in the order asked for."""

    cells: dict[str, dict[str, Cell]]

    @property
    def tests(self) -> list[str]:
        return list(self.cells)

    @property
    def measures(self) -> list[str]:
        return list(next(iter(self.cells.values()), {}))

    def cell(self, test: str, measure: str) -> Cell:
        return self.cells[test][measure]

    def to_dict(self) -> dict:
        """``{"tests": {test: {measure: {"score": x, "ci": [lo, hi]}}}}``; a measure that failed has
        ``"score": null, "ci": null`` and its ``"error"``."""
        def entry(c: Cell) -> dict:
            if c.error is not None:
                return {"score": None, "ci": None, "error": c.error}
            return {"score": c.score, "ci": list(c.ci)}
        return {"tests": {t: {m: entry(c) for m, c in row.items()} for t, row in self.cells.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_record(self) -> dict:
        """Everything the card holds, as plain JSON types (:meth:`from_record` gives it back equal):
        per cell its statistics ``{name: [score, lo, hi]}``, its pairs ``[[a, b, truth, value], ...]``
        and its error. A shipped card (``sample_models.zoo_scorecard``) is written this way: no pickle."""
        def record(c: Cell) -> dict:
            return {"error": c.error, "statistics": {n: [s.score, *s.ci] for n, s in c.statistics.items()},
                    "pairs": [[p.a, p.b, p.truth, p.value] for p in c.pairs]}
        return {"tests": {t: {m: record(c) for m, c in row.items()} for t, row in self.cells.items()}}

    @classmethod
    def from_record(cls, record: dict) -> "Scorecard":
        """The card :meth:`to_record` wrote."""
        def cell(test: str, measure: str, r: dict) -> Cell:
            if r["error"] is not None:
                return Cell.failed(test, measure, r["error"])
            statistics = {n: Statistic(score, (lo, hi)) for n, (score, lo, hi) in r["statistics"].items()}
            return Cell.of(test, measure, statistics, (PairRecord(*p) for p in r["pairs"]))
        return cls({t: {m: cell(t, m, r) for m, r in row.items()} for t, row in record["tests"].items()})

    def to_csv(self) -> str:
        """One row per (test, measure, statistic): ``test,measure,statistic,score,ci_low,ci_high,error``."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["test", "measure", "statistic", "score", "ci_low", "ci_high", "error"])
        for test, row in self.cells.items():
            for measure, c in row.items():
                if c.error is not None:
                    writer.writerow([test, measure, "", "", "", "", c.error])
                for name, s in c.statistics.items():
                    writer.writerow([test, measure, name, repr(s.score), repr(s.ci[0]), repr(s.ci[1]), ""])
        return out.getvalue()
