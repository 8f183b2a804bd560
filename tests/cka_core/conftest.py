"""Make the helper modules of this folder (reference.py, cka_testdata.py, cka_mp_worker.py)
importable however pytest imports the tests (rootdir-relative or as a package). Spawned worker
processes inherit sys.path, so they find cka_mp_worker too."""
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
