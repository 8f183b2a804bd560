"""How fast the sample models are where the app needs them to be.

    python -m benchmarks.bench_sample_models

* loading the whole zoo in a fresh process (budget: 10 s from a fresh clone);
* the linear probe on digits-sized representations (budget: 50 ms, so it can follow a slider).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import sample_models as sm
from cka_core import capture

ROOT = Path(__file__).resolve().parents[1]


def zoo_load_seconds() -> float:
    code = ("import time; t=time.perf_counter(); import sample_models as sm\n"
            "[sm.load(n) for n in sm.available()]; print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def probe_seconds(Z_train, y_train, Z_test, y_test, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sm.probe_accuracy(Z_train, y_train, Z_test, y_test)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    data = sm.digits()
    rows = [("pixels (64)", data.X_train, data.X_test)]
    for name, layer in (("mlp_seed0", "hidden3"), ("mlp_wide", "hidden2"), ("cnn", "conv2"), ("cnn", "conv1")):
        model = sm.load(name)
        train = capture(model, data.X_train, [layer])[layer].reshape(len(data.X_train), -1)
        test = capture(model, data.X_test, [layer])[layer].reshape(len(data.X_test), -1)
        rows.append((f"{name}.{layer} ({train.shape[1]})", train, test))
    print("| what | median time |\n|---|---|")
    print(f"| load the whole zoo, fresh process (incl. `import torch`) | {zoo_load_seconds():.2f} s |")
    for label, train, test in rows:
        seconds = probe_seconds(np.asarray(train), data.y_train, np.asarray(test), data.y_test)
        print(f"| linear probe, {label} | {1000 * seconds:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
