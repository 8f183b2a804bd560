"""The statistics of the grounding tests, on pair values that are fixed while the bootstrap only
reweights them: average precision, Spearman's correlation, the model bootstrap and its interval.

The bootstrap resamples *models*, not pairs: pairs that share a model are not independent, so
resampling pairs would give intervals that are too narrow. A resample draws each model c times
(multinomial counts); a pair of two distinct models (i, j) then appears c_i c_j times, and a model
drawn twice is never paired with itself (its value would be the measure's self-similarity). Every
statistic below therefore takes per-pair *weights* (B, m): one row per resample, the point
estimate being all ones. All of it is plain numpy, independent of the models and the measures.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import RepresentationError

__all__ = ["average_precision", "spearman", "model_counts", "pair_weights", "percentile_interval"]


def _weights(weights, m: int) -> np.ndarray:
    w = np.ones((1, m)) if weights is None else np.asarray(weights, dtype=np.float64)
    return w.reshape(1, m) if w.ndim == 1 else w


def average_precision(scores, positive, weights=None) -> np.ndarray:
    """Average precision of ranking ``positive`` pairs above the others by ``scores`` (higher: more
    likely positive), for each row of ``weights`` (B, m); shape (B,).

    AP = sum over the distinct score thresholds t, from high to low, of (R_t - R_prev) P_t, with
    precision P_t and recall R_t of "score >= t" (weighted counts), as sklearn's
    ``average_precision_score`` defines it (tied scores enter together). The area under the
    precision-recall curve ReSi reports (Klabunde et al. 2025, §3): 1 when every positive outranks
    every negative, about the share of positives for a random score.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(positive, dtype=bool).reshape(-1)
    w = _weights(weights, s.size)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[:, order]
    tp = np.cumsum(w * y, axis=1)
    fp = np.cumsum(w * ~y, axis=1)
    # The last entry of each run of tied scores is where a threshold ends.
    end = np.append(s[1:] != s[:-1], True)
    tp_end, fp_end = tp[:, end], fp[:, end]
    total = tp_end[:, -1]
    gained = np.diff(tp_end, axis=1, prepend=0.0)
    counted = tp_end + fp_end
    precision = np.divide(tp_end, counted, out=np.zeros_like(tp_end), where=counted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (gained * precision).sum(axis=1) / total, np.nan)


def _midranks(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spearman's ranks of the sample in which value k appears w_k times: the number of copies below
    it plus (its tie group's copies + 1) / 2, for each row of ``w``. Ties are exact equality."""
    below = (values[None, :] < values[:, None]).astype(np.float64)  # below[j, k] = x_k < x_j
    tied = (values[None, :] == values[:, None]).astype(np.float64)
    return w @ below.T + (w @ tied.T + 1.0) / 2.0


def spearman(x, y, weights=None) -> np.ndarray:
    """Spearman's rank correlation of ``x`` and ``y`` (m,) for each row of ``weights`` (B, m): the
    Pearson correlation of the midranks of the sample where pair k appears w_k times (Spearman
    1904; ties get their average rank, as ``scipy.stats.spearmanr``). 0 where either side is constant.
    """
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise RepresentationError(f"spearman needs two sequences of one length, got {x.size} and {y.size}.")
    w = _weights(weights, x.size)
    rx, ry = _midranks(x, w), _midranks(y, w)
    total = w.sum(axis=1, keepdims=True)
    dx = rx - (w * rx).sum(axis=1, keepdims=True) / total
    dy = ry - (w * ry).sum(axis=1, keepdims=True) / total
    sxy, sxx, syy = (w * dx * dy).sum(axis=1), (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    scale = np.sqrt(sxx * syy)
    # A constant side (all ranks tied) carries no ordering: no correlation rather than 0/0.
    flat = scale <= 1e-12 * np.maximum(1.0, total[:, 0] ** 2)
    return np.where(flat, 0.0, sxy / np.where(flat, 1.0, scale))


def model_counts(rng: np.random.Generator, sizes: Sequence[int], n_resamples: int) -> list[np.ndarray]:
    """For each group of ``sizes[g]`` models, (n_resamples, sizes[g]) bootstrap counts (a multinomial
    draw of as many models, with replacement). A draw that keeps fewer than two distinct models of a
    group has no pair inside it and is drawn again: the bootstrap is conditioned on every group
    keeping a pair."""
    out = []
    for k in sizes:
        if k < 2:
            raise RepresentationError(f"a group needs at least 2 models to form a pair; one has {k}.")
        counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n_resamples)
        while (bad := np.count_nonzero(counts, axis=1) < 2).any():
            counts[bad] = rng.multinomial(k, np.full(k, 1.0 / k), size=int(bad.sum()))
        out.append(counts)
    return out


def pair_weights(counts: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(B, m) weight of each pair (i, j) of distinct models, c_i c_j, from (B, M) model counts."""
    pairs = np.asarray(pairs, dtype=np.intp).reshape(-1, 2)
    return counts[:, pairs[:, 0]] * counts[:, pairs[:, 1]].astype(np.float64)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The (1 - confidence)/2 and (1 + confidence)/2 quantiles of the bootstrap ``samples``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(samples, dtype=np.float64), [tail, 1.0 - tail])
    return float(low), float(high)
