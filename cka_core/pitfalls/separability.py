"""Linear separability under translation (Davari et al. 2023, Corollary 4).

A linear classifier scores example x for class k as s_k(x) = w_k^T x + b_k. Translating a set
of examples by c * v with w_k^T v = 0 for every k leaves every score, hence every decision and
every margin, exactly as it was, while linear CKA between the original and the translated
representation falls towards rho (1 - rho) ||mu_moved - mu_rest||^2 / ||Sigma||_F
(:func:`cka_core.translation_cka_limit`). This module holds the classifier side of that
statement: margins, the accuracy of a translated set for many c at once, and directions that
are orthogonal to every normal (optionally non-negative, so a post-ReLU representation stays
in the ReLU orthant).
"""
from __future__ import annotations

import numpy as np
import scipy.optimize

from .directions import null_space_dim, project_to_null_space
from ..errors import RepresentationError

__all__ = [
    "class_margins",
    "normal_alignment",
    "orthant_null_direction",
    "translated_accuracy",
]


def _scores_and_labels(scores, labels, classes) -> tuple[np.ndarray, np.ndarray]:
    """Validate (n, K) scores and n labels drawn from ``classes``; return scores and column indices."""
    scores = np.asarray(scores, dtype=np.float64)
    classes = np.asarray(classes).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[1] != classes.shape[0]:
        raise RepresentationError(
            f"scores must have one column per class (shape (n, {classes.shape[0]})), got shape {scores.shape}."
        )
    if labels.shape[0] != scores.shape[0]:
        raise RepresentationError(f"labels has {labels.shape[0]} entries but scores has {scores.shape[0]} rows.")
    if classes.shape[0] < 2:
        raise RepresentationError("a margin needs at least two classes; the labels hold only one.")
    order = np.argsort(classes)
    position = np.searchsorted(classes[order], labels)
    position = np.clip(position, 0, classes.shape[0] - 1)
    found = classes[order][position] == labels
    if not found.all():
        missing = np.unique(labels[~found])[:5]
        raise RepresentationError(f"labels {missing.tolist()} are not among the classifier's classes {classes.tolist()}.")
    return scores, order[position]


def class_margins(scores, labels, classes) -> np.ndarray:
    """Per-example margin of a multi-class linear classifier: s_true(x) - max_{k != true} s_k(x).

    Parameters
    ----------
    scores : array, shape (n, K)
        Class scores (e.g. ``LinearProbe.decision_function``), column k for ``classes[k]``.
    labels : array, shape (n,)
        True class of each example, values among ``classes``.
    classes : array, shape (K,)
        The class of each score column.

    Returns
    -------
    np.ndarray, shape (n,)
        Positive where the example is classified correctly, negative where it is not.
    """
    scores, column = _scores_and_labels(scores, labels, classes)
    rows = np.arange(scores.shape[0])
    true = scores[rows, column]
    others = scores.copy()
    others[rows, column] = -np.inf
    return true - others.max(axis=1)


def translated_accuracy(scores, labels, classes, moved, shift, c) -> np.ndarray:
    """Accuracy of an affine classifier after the rows ``moved`` are translated by c * v, for many c.

    An affine classifier's scores move by c * (W v) under that translation, where W (K, d) holds
    the class normals; ``shift`` is that vector W v (shape (K,)). The result is exact (no
    approximation: the scores are affine in c) and costs O(len(c) * moved * K).

    Returns an array of accuracies with the shape of ``c``.
    """
    scores, column = _scores_and_labels(scores, labels, classes)
    moved = np.asarray(moved, dtype=bool).reshape(-1)
    if moved.shape[0] != scores.shape[0]:
        raise RepresentationError(f"moved has {moved.shape[0]} entries but scores has {scores.shape[0]} rows.")
    shift = np.asarray(shift, dtype=np.float64).reshape(-1)
    if shift.shape[0] != scores.shape[1]:
        raise RepresentationError(f"shift must have one entry per class ({scores.shape[1]}), got {shift.shape[0]}.")
    c_arr = np.asarray(c, dtype=np.float64)
    if not np.all(np.isfinite(c_arr)):
        raise RepresentationError("c must be finite.")
    n = scores.shape[0]
    still = (np.argmax(scores[~moved], axis=1) == column[~moved]).sum()
    moved_scores = scores[moved]                                     # (m, K)
    shifted = moved_scores[None, :, :] + c_arr.reshape(-1, 1, 1) * shift[None, None, :]
    correct = (np.argmax(shifted, axis=2) == column[moved][None, :]).sum(axis=1)
    result = (still + correct) / n
    return float(result[0]) if c_arr.ndim == 0 else result.reshape(c_arr.shape)


def normal_alignment(normals, direction) -> float:
    """max_k |cos(w_k, v)| over the non-zero normals: 0 when v is orthogonal to all of them."""
    W = np.atleast_2d(np.asarray(normals, dtype=np.float64))
    v = np.asarray(direction, dtype=np.float64).reshape(-1)
    if W.shape[1] != v.shape[0]:
        raise RepresentationError(f"direction has {v.shape[0]} entries but the normals have {W.shape[1]}.")
    v_norm = np.linalg.norm(v)
    if not v_norm > 0:
        raise RepresentationError("direction is the zero vector.")
    w_norm = np.linalg.norm(W, axis=1)
    keep = w_norm > 0
    if not keep.any():
        return 0.0
    return float(np.max(np.abs(W[keep] @ v) / (w_norm[keep] * v_norm)))


def orthant_null_direction(normals, seed: int = 0, *, what: str = "the classifier") -> np.ndarray:
    """A unit vector v with W v = 0 (to rounding) and every coordinate strictly positive.

    Translating a post-ReLU representation along such a v keeps it in the ReLU orthant (every
    coordinate stays non-negative), as Davari et al. require in their CIFAR-10 experiment.
    They solve a QP for a *nearly* orthogonal positive direction; here a linear programme finds
    an *exactly* orthogonal one whenever one exists:

        minimise r^T x  subject to  W x = 0,  x >= 1,

    with a seeded random positive cost r (different seeds give different vertices), after which
    x is projected onto the null space of W (removing the solver's round-off) and normalised.

    Raises
    ------
    RepresentationError
        When no such direction exists (by Gordan's theorem: when the span of the normals contains
        a non-zero non-negative vector), e.g. for logits read out by a probe whose normals span
        every direction but one.
    """
    W = np.atleast_2d(np.asarray(normals, dtype=np.float64))
    if not np.all(np.isfinite(W)):
        raise RepresentationError(f"the normals of {what} contain NaN or Inf.")
    d = W.shape[1]
    if null_space_dim(W) == 0:
        raise RepresentationError(
            f"{what} has {W.shape[0]} normals spanning all {d} dimensions, so no direction is orthogonal "
            "to all of them; use more features than classes."
        )
    row_scale = np.linalg.norm(W, axis=1, keepdims=True)
    A = W[row_scale[:, 0] > 0] / row_scale[row_scale[:, 0] > 0]      # well-conditioned equalities
    cost = np.random.default_rng(seed).uniform(0.5, 1.5, d)
    if A.shape[0] == 0:
        x = cost
    else:
        result = scipy.optimize.linprog(cost, A_eq=A, b_eq=np.zeros(A.shape[0]), bounds=[(1.0, None)] * d,
                                        method="highs")
        if result.status != 0 or result.x is None:
            raise RepresentationError(
                f"no direction is both orthogonal to every normal of {what} and positive in every "
                "coordinate here (the span of the normals contains a non-negative vector); pick the plain "
                "orthogonal direction instead."
            )
        x = result.x
    x = project_to_null_space(W, x)                                    # exact orthogonality
    if not np.all(x > 0):
        raise RepresentationError(
            f"the direction orthogonal to {what} lost positivity after rounding; pick the plain orthogonal direction."
        )
    return x / np.linalg.norm(x)
