"""How much of a representation the app works on: one policy, declared once, one message format.

Two levels, both stated in values and multiply-adds so the arithmetic is in one place:

* **Loading** (every page, through the sidebar, and the Compare page's own uploads): an upload may
  hold at most :data:`MAX_VALUES` values over all its arrays. The session keeps the parsed arrays
  (float32 or float64) and the chosen array as float64, so one upload costs at most 4 + 8 bytes per
  value (~200 MiB) besides the raw bytes Streamlit holds. Every float32 file under the 50 MB upload
  limit fits (13.1M values); int8/bool values count like any other (each becomes 4 + 8 bytes), and a
  compressed .npz (which can inflate a thousandfold) is refused from its headers, before anything is
  inflated.
* **Per page**: a page that computes on the sidebar's representation declares a
  :class:`PageLimits` and calls :func:`require`, which either lets it through or shows one
  ``st.error`` saying what the page forms, what the representation costs, the limit and the fix,
  and stops the page (the sidebar, already drawn, stays usable).

Pages that do not use the sidebar's representation (Home, Compare, Function-preserving edits,
Manipulate, Neural diversity; Estimators when the source has no model) only pay the loading cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

# ---------------------------------------------------------------------------------- loading
#: Values (over all arrays of one upload). 2**24 = 16.8M: 128 MiB as float64.
MAX_VALUES = 2**24
#: Arrays in one upload: each becomes an option of the sidebar's "Array" box.
MAX_ARRAYS = 1_000
#: Distinct labels: more are not class labels (regression targets, ids); a probe holds n x classes.
MAX_CLASSES = 100

# ---------------------------------------------------------------------------------- per page
#: Multiply-adds of one product X_c^T X_c or X_c X_c^T, whichever is smaller: n * d * min(n, d).
#: Linear CKA (both estimators), the closed-form translation terms, the probe fit and the top
#: principal axes all cost a few such products per change. 1e10 is ~0.3 s per product on one
#: core at ~60 GFLOP/s; it admits 200 x 60,000 (2.4e9), 1M x 12 (1.4e8), 64 x 150,528 (6.2e8)
#: and squares up to n = d = 2,150.
MAX_PRODUCT = 1e10
#: Examples for an n x n kernel matrix (RBF CKA): 8 n^2 bytes each, ~8 alive at once -> 256 MiB.
MAX_KERNEL_ROWS = 2_000
#: Points per scatter plot sent to the browser (more are subsampled, and the caption says so).
MAX_PLOT_POINTS = 5_000
#: The Invariances page compares every measure (RSA ranks n^2/2 distances, CCA takes SVDs) on
#: an evenly spaced subset of at most this many examples and features.
SUBSET_ROWS = 500
SUBSET_FEATURES = 1_024


def count(value: float) -> str:
    """12000000 -> '12,000,000'; 3.6e10 -> '3.6e+10' (large products read better in powers)."""
    return f"{int(value):,}" if value < 1e9 else f"{value:.2g}"


@dataclass(frozen=True)
class PageLimits:
    """What one page forms from the sidebar's representation, and how large that may be."""

    page: str
    work: str  # how the page uses X, for the message: "forms the d × d or n × n product of X ..."
    min_rows: int = 4
    max_product: float = MAX_PRODUCT
    needs_variation: bool = True  # CKA of a constant representation is 0/0
    probe: bool = False  # fits a linear probe on the labels: n x classes scores


OUTLIERS = PageLimits(
    "Outliers",
    "forms the smaller of X's d × d covariance and n × n Gram matrix a few times per change (linear CKA, "
    "the closed-form curve, the principal axes)",
    probe=True,
)
SEPARABILITY = PageLimits(
    "Separability",
    "fits a linear probe and forms the smaller of X's d × d covariance and n × n Gram matrix a few times "
    "per change (the closed-form curve, the probe's scores for 241 distances)",
    probe=True,
)


def product_cost(n: int, d: int) -> float:
    return float(n) * float(d) * float(min(n, d))


def problem(X: np.ndarray, y: np.ndarray | None, limits: PageLimits) -> str | None:
    """Why ``limits.page`` cannot work on X (n x d), or None if it can."""
    n, d = X.shape
    if n < limits.min_rows:
        return (f"{limits.page} needs at least {limits.min_rows} examples (debiased CKA divides by n − 3); this "
                f"representation has {n}. Upload more examples (rows), or check that the array is not transposed.")
    cost = product_cost(n, d)
    if cost > limits.max_product:
        return (f"{limits.page} {limits.work}: {n:,} examples × {d:,} features cost {count(cost)} multiply-adds per "
                f"product, over this page's limit of {count(limits.max_product)} (n · d · min(n, d)). Upload a random "
                f"subsample of rows, or fewer features (e.g. the leading principal components).")
    if limits.probe and y is not None:
        classes = int(np.unique(y).size)
        if n * classes > MAX_VALUES:
            return (f"{limits.page} fits a linear probe with one score per example and class: {n:,} examples × "
                    f"{classes} classes is over this page's limit of {MAX_VALUES:,} scores. Upload a random subsample "
                    "of rows.")
    if limits.needs_variation and is_constant(X):
        return (f"This representation is constant across examples (every feature has zero variance), so CKA is "
                f"undefined (0/0) and {limits.page} has nothing to show. Pick another array or layer, or check that "
                "the activations were captured.")
    return None


def is_constant(X: np.ndarray) -> bool:
    """Every row equal to the first (to rounding): zero variance after centring. Read in chunks of
    about a million values, so the check never copies X; stops at the first chunk that varies."""
    first = X[0]
    tol = 1e-12 * max(float(np.abs(first).max(initial=0.0)), 1.0)
    step = max(1, 2**20 // max(X.shape[1], 1))
    return all(bool(np.all(np.abs(X[i:i + step] - first) <= tol)) for i in range(0, X.shape[0], step))


def require(X: np.ndarray, y: np.ndarray | None, limits: PageLimits) -> None:
    """Show why the page cannot work on X and stop it (the sidebar stays usable), or return."""
    reason = problem(X, y, limits)
    if reason is not None:
        st.error(reason, icon=":material/block:")
        st.info("Pick a sample model or a synthetic set in the sidebar, or upload a smaller file.")
        st.stop()


def kernel_rows_note(n: int, what: str) -> str | None:
    """Why an n x n kernel value is not computed here, or None when n is within MAX_KERNEL_ROWS."""
    if n <= MAX_KERNEL_ROWS:
        return None
    return (f"{what} forms n × n kernel matrices: {n:,} examples is over the limit of {MAX_KERNEL_ROWS:,} "
            f"({8 * n * n / 2**30:.1f} GiB per matrix), so it is not computed here. Upload a random subsample of "
            "rows to see it.")


def plot_rows(n: int, keep: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Rows to draw: all of them up to MAX_PLOT_POINTS, else a fixed random subset (sorted) that
    contains the first rows of ``keep`` (a boolean mask of rows that must be seen, e.g. moved ones)."""
    if n <= MAX_PLOT_POINTS:
        return np.arange(n)
    chosen = np.random.default_rng(seed).choice(n, size=MAX_PLOT_POINTS, replace=False)
    if keep is not None:
        chosen = np.union1d(chosen, np.flatnonzero(keep)[: MAX_PLOT_POINTS // 10])
    return np.sort(chosen)


def plot_caption(shown: int, n: int) -> str | None:
    if shown >= n:
        return None
    return (f"The plot shows {shown:,} of the {n:,} examples (a fixed random subset, moved examples included) so "
            "that the browser stays responsive; every number above uses all of them.")
