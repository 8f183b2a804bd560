"""A toy measure registered for one test: what "adding a measure" takes (one function pair plus one
registry entry), so the tests can check that every consumer picks it up from that entry alone."""
from __future__ import annotations

from cka_core.measures.cka import rbf_cka, rbf_cka_of
from cka_core.measures.registry import MEASURES, MeasureInfo, MeasureParameter, _ALL_BUT_LINEAR

NAME = "toy_power"
POWER = MeasureParameter("power", 2.0, "Power p of the toy",
                         "The toy measure is RBF CKA raised to this power.",
                         "exponent of --measure toy_power (default 2)",
                         "Toy power (p = {:g})", low=0.5, high=4.0, step=0.5)


def toy_power(X, Y, *, power: float = 2.0) -> float:
    return rbf_cka(X, Y) ** power


def toy_power_of(vx, vy, power: float = 2.0) -> float:
    return rbf_cka_of(vx, vy) ** power


INFO = MeasureInfo(NAME, "Toy power measure", toy_power, True, (0.0, 1.0), _ALL_BUT_LINEAR, True,
                   "RBF CKA to a power: a toy for the tests.", "none", toy_power_of, parameters=(POWER,))


def register(monkeypatch) -> MeasureInfo:
    """Add the toy to the registry for the current test (undone by ``monkeypatch`` afterwards)."""
    monkeypatch.setitem(MEASURES, NAME, INFO)
    return INFO
