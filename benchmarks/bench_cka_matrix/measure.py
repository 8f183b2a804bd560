"""Timing and accuracy of every method in one regime: warm-up, timed rounds in rotating order,
errors against the float64 reference on three data sets, the same-estimator check, and a cProfile
of ours."""
from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import statistics
import time

import numpy as np

from .activations import BIG_OFFSET, Regime, add_offset, make_activations
from .methods import Method, make_methods, ours_debiased, pcka_class, pcka_features
from .reference import reference_cka

THREADS = 2  # default torch.set_num_threads
SELF_CHECK_ROWS = 1000  # rows for the float64-only checks (reference self-check, peers on float64)
CAP_S = 30.0  # a method whose first timed run takes longer than this is run once only
TORCH_CKA_MAX_ROWS = 1000  # torch-cka does (2 L^2 + L) dense n x n products: above this n it (and ours, for its ratio) runs on the first rows


def call(fn, layers) -> tuple[np.ndarray | None, str | None]:
    """(result, None), or (None, what went wrong) when the library raises (e.g. torch-cka's NaN assert)."""
    try:
        return np.asarray(fn(layers), dtype=np.float64), None
    except Exception as exc:  # noqa: BLE001 - a peer's failure is a result to report
        return None, f"{type(exc).__name__}: {exc}".strip()


def timed(fn, layers) -> tuple[float, float, np.ndarray | None, str | None]:
    """Wall and CPU (process) time of one call. A call that raises is timed up to the raise
    (torch-cka asserts 'no NaN' only after all its work) and reported as failed."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out, err = call(fn, layers)
    return time.perf_counter() - t0, time.process_time() - c0, out, err


def _error(out: np.ndarray | None, failure: str | None, target: np.ndarray) -> float | str:
    """max |out - target|, or a short reason when the call failed."""
    if out is None:
        return "fails: " + (failure or "?").splitlines()[0][:60]
    return float(np.abs(out - target).max())


def run_regime(regime: Regime, repeats: int, log) -> dict:
    log(f"\n== {regime.name}: n={regime.n}, L={len(regime.widths)}, widths {regime.widths}")
    realistic, zero_mean = make_activations(regime.n, regime.widths, regime.seed)
    shifted = add_offset(realistic, BIG_OFFSET)
    timed_name = "realistic (timed)"
    datasets = {"zero-mean": zero_mean, timed_name: realistic, f"realistic + {BIG_OFFSET:g}": shifted}

    methods = make_methods()
    if regime.n > TORCH_CKA_MAX_ROWS:
        rows = TORCH_CKA_MAX_ROWS
        next(m for m in methods if m.key == "torch_cka").rows = rows
        methods.insert(4, Method("ours_sub", "ours on torch-cka's rows", ours_debiased, "debiased", rows=rows))
    row_counts = sorted({m.rows for m in methods}, key=lambda r: -1 if r is None else r)

    def head_rows(data, rows):
        return data if rows is None else [x[:rows].contiguous() for x in data]

    data_of = {name: {r: head_rows(data, r) for r in row_counts} for name, data in datasets.items()}

    t0 = time.perf_counter()
    refs = {(name, r): reference_cka(data_of[name][r]) for name in datasets for r in row_counts}
    ref = refs[(timed_name, None)]["debiased"]
    off_diag = ref[~np.eye(len(ref), dtype=bool)]
    # Self-check of the reference: Song's formula on the raw float64 Grams equals it on pre-centred ones.
    check_rows = min(regime.n, SELF_CHECK_ROWS)
    small_zero = head_rows(zero_mean, check_rows if check_rows < regime.n else None)
    small_ref = reference_cka(small_zero)["debiased"]
    ref_selfcheck = float(np.abs(reference_cka(small_zero, centre=False)["debiased"] - small_ref).max())
    log(f"   float64 references: {time.perf_counter() - t0:.1f} s; CKA off-diagonal range "
        f"[{off_diag.min():.3f}, {off_diag.max():.3f}]; raw-vs-centred Gram self-check {ref_selfcheck:.1e}")

    # Warm-up: every method on a slice (code paths, allocator), all but torch-cka on its timed data too.
    warm = [x[: min(regime.n, 256)] for x in realistic]
    for m in methods:
        call(m.fn, warm)
        if m.key != "torch_cka":
            call(m.fn, data_of[timed_name][m.rows])

    for r in range(repeats):
        order = methods[r % len(methods):] + methods[: r % len(methods)]
        for m in order:
            if m.capped:
                continue
            t, c, out, err = timed(m.fn, data_of[timed_name][m.rows])
            m.times.append(t)
            m.cpu_times.append(c)
            m.result, m.failure = out, err
            if t > CAP_S:
                m.capped = True
        log(f"   round {r + 1}/{repeats}: " + ", ".join(f"{m.key} {m.times[-1]:.3f}s" for m in methods)
            + f"; load {os.getloadavg()[0]:.1f}")

    # Accuracy: the timed results, and one untimed call on each of the other two data sets.
    errors: dict[str, dict[str, float | str]] = {name: {} for name in datasets}  # str: the call failed
    for m in methods:
        if not m.reference:
            continue
        for name in datasets:
            out, failure = (m.result, m.failure) if name == timed_name else call(m.fn, data_of[name][m.rows])
            errors[name][m.key] = _error(out, failure, refs[(name, m.rows)][m.reference])

    # Same estimator? pytorch-cka's maths is dtype-generic: on float64 copies it must reproduce the
    # float64 reference (its float32 accumulators in compute_cka leave ~1e-7). torch-cka cannot take
    # float64 (it multiplies by a float32 ones vector); its float32 zero-mean error above is the check.
    same = {}
    small64 = [x.double() for x in small_zero]
    for key, fn in (("pcka_feat", pcka_features), ("pcka_class", pcka_class)):
        out, failure = call(fn, small64)
        same[key] = _error(out, failure, small_ref)

    notes: list[str] = []
    tc = next(m for m in methods if m.key == "torch_cka")
    if tc.rows is not None:
        est = statistics.median(tc.times) * (regime.n / tc.rows) ** 3
        notes.append(
            f"{regime.name}: torch-cka does 2 L^2 + L dense n x n products (`trace(K @ L)` per HSIC call, 2 n^3 flops "
            f"each), so it is timed, and checked for "
            f"accuracy, on the first {tc.rows} of the {regime.n} rows, and its speed-up is against ours on the same "
            f"{tc.rows} rows ('ours on torch-cka's rows'); ours grows at most like n^2 D, so the ratio at "
            f"n={regime.n} is larger. Scaling its time by n^3 gives ~{est:.0f} s at n={regime.n} (an estimate, not timed)."
        )
    mb_dev = float(np.abs(next(m for m in methods if m.key == "ours_mb").result - ref).max())
    return {
        "regime": regime,
        "methods": methods,
        "errors": errors,
        "same": same,
        "same_rows": check_rows,
        "ref_selfcheck": ref_selfcheck,
        "ref_range": (float(off_diag.min()), float(off_diag.max())),
        "mb_dev": mb_dev,
        "notes": notes,
        "profile": None,
        "layers": realistic,
    }


def profile_ours(layers, top: int = 18) -> str:
    """cProfile of one ``cka_matrix(debiased=True)`` call (own time, top entries)."""
    prof = cProfile.Profile()
    prof.enable()
    ours_debiased(layers)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()
