"""Run the slow tests first, the slow browser test (minutes of Chromium sessions) before all: under
xdist each worker takes whole files in collection order, so the concurrent-sessions test, collected
late, ran alone at the end of CI; started first, it overlaps the other worker's files."""
from __future__ import annotations


def _order(item) -> int:
    slow, browser = item.get_closest_marker("slow") is not None, item.get_closest_marker("e2e") is not None
    return 0 if slow and browser else 1 if slow else 2


def pytest_collection_modifyitems(items) -> None:
    items.sort(key=_order)  # stable: the file order is kept within each rank
