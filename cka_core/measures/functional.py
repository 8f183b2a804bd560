"""Functional measures (as in ReSi, Klabunde et al. 2025): they compare what two networks output on
the same n inputs, not their hidden layers. X and Y are the two networks' logits, (n, c) each over the
same c classes; each measure is a distance (0 = the same outputs).
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from ..cka.validation import as_matrix
from ..errors import RepresentationError
from .view import LayerView


def checked_outputs(X, Y, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """Both networks' logits as (n, c) float64 arrays over the same examples and the same c >= 2 classes."""
    x = as_matrix(X, "X").detach().cpu().double().numpy()
    y = as_matrix(Y, "Y").detach().cpu().double().numpy()
    if x.shape[0] != y.shape[0]:
        raise RepresentationError(f"{measure}: X has {x.shape[0]} examples but Y has {y.shape[0]}; pass both networks' "
                                  "outputs on the same inputs, in the same order.")
    if x.shape[1] != y.shape[1] or x.shape[1] < 2:
        raise RepresentationError(
            f"{measure} compares class outputs: X has {x.shape[1]} columns and Y {y.shape[1]}; pass the two networks' "
            "logits over the same classes (at least 2), not hidden layers.")
    return x, y


def jensen_shannon(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """JSD(p, q) = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2, in bits (log base 2, so in [0, 1]),
    one per row; from log-probabilities, so that classes of probability ~0 add 0 log 0 = 0 and no NaN."""
    log_m = np.logaddexp(log_p, log_q) - np.log(2.0)
    with np.errstate(under="ignore"):  # a class of probability below ~1e-308 adds exactly 0
        kl = lambda log_a: np.sum(np.exp(log_a) * (log_a - log_m), axis=1)  # noqa: E731
        return np.clip((kl(log_p) + kl(log_q)) / (2.0 * np.log(2.0)), 0.0, 1.0)


def jsd_of_logits(x: np.ndarray, y: np.ndarray) -> float:
    """(1/n) sum_i JSD(softmax(x_i), softmax(y_i)) in bits (ReSi's convention: log base 2)."""
    return float(np.mean(jensen_shannon(log_softmax(x, axis=1), log_softmax(y, axis=1))))


def disagreement_of_logits(x: np.ndarray, y: np.ndarray) -> float:
    """(1/n) #{i : argmax x_i != argmax y_i} (a tie for the largest logit goes to the first class)."""
    return float(np.mean(x.argmax(axis=1) != y.argmax(axis=1)))


def checked_labels(labels, n: int, classes: int) -> np.ndarray:
    """The (n,) true classes as integers in [0, classes)."""
    if labels is None:
        raise RepresentationError("accuracy_difference needs labels=: the (n,) true class of each example.")
    values = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1)
    whole = values.dtype.kind in "iu" or (values.dtype.kind == "f" and bool(np.all(np.mod(values, 1) == 0)))
    if values.shape[0] != n or not whole:
        raise RepresentationError(f"accuracy_difference: labels must be {n} whole class numbers, one per example; "
                                  f"got shape {np.shape(labels)} of {values.dtype}.")
    if values.size and (values.min() < 0 or values.max() >= classes):
        raise RepresentationError(f"accuracy_difference: labels must lie in 0..{classes - 1} (the outputs have "
                                  f"{classes} classes); got {values.min()}..{values.max()}.")
    return values.astype(np.intp)


def accuracy_difference_of_logits(x: np.ndarray, y: np.ndarray, labels) -> float:
    """|acc(X) - acc(Y)| with acc(X) = (1/n) #{i : argmax x_i = label_i}."""
    truth = checked_labels(labels, x.shape[0], x.shape[1])
    return float(abs(np.mean(x.argmax(axis=1) == truth) - np.mean(y.argmax(axis=1) == truth)))


def _resampled(labels, view: LayerView):
    """The labels of a resampled view's rows (bootstrap, permutation): the root's labels, indexed."""
    if labels is None or view._index is None:
        return labels
    return np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).reshape(-1)[view._index]


def jsd_of(vx: LayerView, vy: LayerView) -> float:
    """:func:`jsd` on the layers as given (logits are neither centred nor scaled)."""
    return jsd_of_logits(*checked_outputs(vx.raw, vy.raw, "jsd"))


def disagreement_of(vx: LayerView, vy: LayerView) -> float:
    """:func:`disagreement` on the layers as given."""
    return disagreement_of_logits(*checked_outputs(vx.raw, vy.raw, "disagreement"))


def accuracy_difference_of(vx: LayerView, vy: LayerView, labels=None) -> float:
    """:func:`accuracy_difference` on the layers as given, ``labels`` those of the root's rows."""
    x, y = checked_outputs(vx.raw, vy.raw, "accuracy_difference")
    return accuracy_difference_of_logits(x, y, _resampled(labels, vx))


def jsd(X, Y) -> float:
    """Mean Jensen-Shannon divergence (in bits, so in [0, 1]) between the two networks' softmax outputs on
    each example; 0 = the same predicted distributions."""
    return jsd_of_logits(*checked_outputs(X, Y, "jsd"))


def disagreement(X, Y) -> float:
    """Fraction of examples on which the two networks predict different classes (argmax of the logits)."""
    return disagreement_of_logits(*checked_outputs(X, Y, "disagreement"))


def accuracy_difference(X, Y, labels=None) -> float:
    """|accuracy of X - accuracy of Y| on the true classes ``labels`` ((n,) integers)."""
    return accuracy_difference_of_logits(*checked_outputs(X, Y, "accuracy_difference"), labels)
