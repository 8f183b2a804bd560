"""Every hostile case has its own name (the names are the test ids)."""
import importlib
import pkgutil
from pathlib import Path


def test_case_names_are_unique():
    names = [case.name for info in pkgutil.iter_modules([str(Path(__file__).parent)]) if info.name.startswith("cases_")
             for case in importlib.import_module(f"{__package__}.{info.name}").CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
