"""What the Outliers page shows for one setting of its controls (Davari et al., Theorem 1 and
Corollaries 3 and 4; docs/theory.md §3)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from cka_core import rbf_cka
from cka_core.pitfalls.translation import translation_cka_from_terms

from ..frame import figures
from ..frame.widgets import points_change
from ..sources import data, limits
from ..sources.probe import probe_accuracy_on
from . import translation as tr

SELECTIONS = {"point": "One point", "fraction": "Random fraction", "class": "One class"}


def selections(rep: data.Representation) -> dict[str, str]:
    """What can move: one point, a random fraction, and a class where there are labels."""
    return {k: v for k, v in SELECTIONS.items() if k != "class" or rep.has_labels}


def classes(rep: data.Representation) -> list[int]:
    return [int(c) for c in np.unique(rep.y)] if rep.has_labels else [0]


@dataclass(frozen=True)
class Setting:
    """The page's controls."""

    what: str
    index: int
    fraction: float
    cls: int
    direction: str
    seed: int
    c: float


@dataclass(frozen=True)
class OutliersView:
    moved_count: int
    n: int
    cka: float
    limit: float
    debiased: float
    rbf: float | None
    rbf_skipped: str | None           # why RBF CKA is not computed (too many rows), or None
    network_now: float | None
    network_before: float | None
    probe_now: float | None
    probe_before: float | None
    curve: go.Figure
    scatter: go.Figure
    plot_note: str | None             # the scatter shows a subset


def takeaway(shown: OutliersView, setting: Setting) -> str:
    """The page's lesson in one sentence, with the numbers of this setting."""
    moved = "one example" if shown.moved_count == 1 else f"{shown.moved_count} of {shown.n} examples"
    sentence = (f"Moving {moved} by c = {setting.c:.3g} takes linear CKA from 1 to {shown.cka:.3f}, and to "
                f"{shown.limit:.3f} as c grows")
    now, before, who = ((shown.network_now, shown.network_before, "the network's accuracy")
                        if shown.network_now is not None else (shown.probe_now, shown.probe_before, "a linear probe's accuracy"))
    if now is None or before is None:
        return sentence + "."
    points = points_change(now, before)
    if points == 0:
        return sentence + f", while {who} does not change ({100 * now:.1f}%)."
    return sentence + f"; {who} changes by {points:+.1f} points along this direction."


def view(rep: data.Representation, setting: Setting) -> OutliersView:
    """Every number and figure of the page; raises RepresentationError for a setting that cannot apply."""
    X = rep.X
    n = X.shape[0]
    mask = tr.moved_mask(rep.key, rep, setting.what, setting.index, setting.fraction, setting.cls, setting.seed)
    v = tr.direction(rep.key, rep, setting.direction, setting.seed)
    scale = tr.rms_scale(rep.key, X)
    terms = tr.terms(rep.key, X, mask, v, (setting.what, setting.index, setting.fraction, setting.cls, setting.seed),
                     (setting.direction, setting.seed))
    moved = tr.moved_by(X, mask, v, setting.c, scale)
    cka_now = translation_cka_from_terms(terms, setting.c * scale)
    rbf_skipped = limits.kernel_rows_note(n, "RBF CKA")
    network_before, probe_before = tr.baseline_accuracies(rep.key, rep)
    curve = figures.curve(tr.C_GRID, {"Linear CKA": translation_cka_from_terms(terms, tr.C_GRID * scale)},
                          title=f"CKA vs c ({int(mask.sum())} of {n} examples move)", x_title="c",
                          y_title="CKA(X, X moved)", log_x=True, marker=(setting.c, {"Linear CKA": cka_now}),
                          hlines={"limit": terms.limit}, y_range=(0, 1.05))
    shown = limits.plot_rows(n, keep=mask)  # at most limits.MAX_PLOT_POINTS points go to the browser
    return OutliersView(
        moved_count=int(mask.sum()), n=n, cka=cka_now, limit=terms.limit,
        debiased=tr.paired_linear_cka(X, moved, debiased=True),
        rbf=None if rbf_skipped else rbf_cka(X, moved), rbf_skipped=rbf_skipped,
        network_now=tr.accuracy_from(rep, moved), network_before=network_before,
        probe_now=probe_accuracy_on(rep, moved), probe_before=probe_before,
        curve=curve, scatter=_pca_scatter(rep, moved, mask, shown), plot_note=limits.plot_caption(shown.size, n),
    )


def _pca_scatter(rep: data.Representation, moved: np.ndarray, mask: np.ndarray, shown: np.ndarray) -> go.Figure:
    mean, axes = tr.pca_basis(rep.key, rep.X)
    labels = rep.y[shown] if rep.has_labels else None
    figure = figures.scatter_pair(tr.projected(rep.X[shown], mean, axes), tr.projected(moved[shown], mean, axes),
                                  labels, mask[shown],
                                  title="The two leading principal components of the original representation")
    if shown.size < rep.X.shape[0]:
        for trace in figure.data:  # hover names the example's row in the file, not its place in the subset
            trace.customdata = np.column_stack([shown[np.asarray(trace.customdata)[:, 0].astype(int)],
                                                np.asarray(trace.customdata)[:, 1]])
    return figure
