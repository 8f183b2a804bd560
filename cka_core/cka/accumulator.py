"""Linear CKA between every pair of layers: :class:`CKAAccumulator` and :func:`cka_matrix`, which
runs one accumulator over every row. Per-layer statistics are computed once.

Two exact forms of the same statistics, chosen by cost and memory (docs/theory.md §1.3):

* **feature space** (narrow layers, D = sum of widths not much above n): sufficient
  statistics that are sums over examples -- column sums s, cross-products C = A^T A
  (only the blocks a heatmap needs), row-norm moments R = A^T Q, P = Q^T Q -- from which
  both the biased and the debiased (Song et al. 2012) HSIC follow exactly. Because they
  are sums, they can be updated batch by batch and merged across processes.
* **Gram vectors** (wide layers, D >> n, or the minibatch estimator of Nguyen et al. 2021):
  the lower triangle of each layer's Gram matrix (BLAS syrk, half the multiply-adds) is formed
  once per batch, flattened and stacked into G; all HSIC values follow from one product G G^T,
  the Gram diagonals and row sums, with the centring done algebraically.

Features are shifted to (near) zero mean before any product -- in float64 for the feature form,
by their column means in the input's precision for the Gram form -- so float32 activations with
large offsets lose nothing to cancellation.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..errors import RepresentationError
from .kernels import cka_from_hsic, gram_lower_triangle, hsic_from_gram_sums, near_centred, row_dots
from .validation import check_rows, min_rows
from .memory import check_feature_memory
from .statistics import FeatureStatistics, GramStatistics
from .layers import layer_layout, LayerLayout


def _map_leaves(value, leaf_type: type, fn):
    """``value`` with ``fn`` applied to every leaf of ``leaf_type`` inside dataclasses, lists,
    tuples and dicts (the statistics' containers)."""
    if isinstance(value, leaf_type):
        return fn(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _map_leaves(getattr(value, f.name), leaf_type, fn)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, (list, tuple)):
        return type(value)(_map_leaves(v, leaf_type, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_leaves(v, leaf_type, fn) for k, v in value.items()}
    return value


class CKAAccumulator:
    """Streaming linear CKA between the layers of two representations.

    ``update`` with batches of paired activations (rows = the same examples on both
    sides), ``merge`` with an accumulator filled elsewhere, ``result`` for the
    (L_a, L_b) matrix.

    Parameters
    ----------
    debiased : bool
        Use the unbiased HSIC estimator of Song et al. (2012) instead of the biased one.
    batch_size : int or None
        ``None``: exact full-data CKA from feature-space sufficient statistics; the result
        equals one pass over all rows, however they were split. An int ``b``: the minibatch
        estimator of Nguyen et al. (2021) -- the rows of each update are split into
        consecutive batches of ``b``, HSIC is summed over batches (a trailing batch with
        fewer than 4 rows for the debiased, 2 for the biased estimator is dropped), and
        the ratio is taken at the end.

    Distributed use: every statistic is a sum over examples. Under torch.distributed each rank
    updates its own accumulator on its shard, then either

    * gathers the accumulators (``torch.distributed.gather_object``) and merges them on one rank, or
    * all-reduces the statistics in place: broadcast rank 0's ``shift()`` so every rank can
      ``align_to`` it, then ``all_reduce(SUM)`` each tensor of ``state_tensors()`` (the example
      count included); every rank then holds the full-data statistics and ``result()``.

    Any map-reduce engine does the same with ``merge`` as the reducer.
    """

    def __init__(self, *, debiased: bool = False, batch_size: int | None = None):
        self.debiased = bool(debiased)
        self.batch_size = checked_batch_size(batch_size, debiased)
        self.structure: LayerLayout | None = None
        self.n_examples = 0
        self._stats: FeatureStatistics | GramStatistics | None = None

    def __getstate__(self) -> dict:
        """Pickle the statistics as numpy arrays (they unpickle on the CPU). Tensors would travel
        through multiprocessing as torch's shared-memory handles, which stay tied to the sending
        process; a process-pool worker then dies now and then while its result is in flight.
        Arrays make the pickle self-contained."""
        return {**self.__dict__, "_stats": _map_leaves(self._stats, torch.Tensor, lambda t: t.detach().cpu().numpy())}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({**state, "_stats": _map_leaves(state["_stats"], np.ndarray, torch.from_numpy)})

    # ------------------------------------------------------------------ public
    def update(self, layers_a, layers_b=None) -> "CKAAccumulator":
        """Add a batch of paired activations (same layers, in the same order, on every call)."""
        structure, unique = layer_layout(layers_a, layers_b)
        return self._ingest(structure, unique)

    def _ingest(self, structure: LayerLayout, unique: list[torch.Tensor]) -> "CKAAccumulator":
        """Add validated layers (the unique layers U of ``structure``)."""
        self._check_structure(structure)
        if self.batch_size is None:
            self._update_features(unique)
        else:
            rows = unique[0].shape[0]
            for start in range(0, rows, self.batch_size):
                chunk = [t[start : start + self.batch_size] for t in unique]
                if chunk[0].shape[0] >= min_rows(self.debiased):
                    self._update_grams(chunk)
        return self

    def merge(self, other: "CKAAccumulator") -> "CKAAccumulator":
        """Add the statistics of an accumulator filled elsewhere (another process or rank)."""
        if not isinstance(other, CKAAccumulator):
            raise TypeError(f"can only merge another CKAAccumulator, not {type(other).__name__}")
        if (other.debiased, other.batch_size) != (self.debiased, self.batch_size):
            raise RepresentationError(
                "cannot merge accumulators with different settings: "
                f"(debiased={self.debiased}, batch_size={self.batch_size}) vs "
                f"(debiased={other.debiased}, batch_size={other.batch_size})."
            )
        if other.structure is None:
            return self
        if self.structure is None:
            self.structure, self.n_examples = other.structure, other.n_examples
            self._stats = other._stats.map(torch.clone)
            return self
        self._check_structure(other.structure)
        device = self._stats.device
        theirs = other._stats.map(lambda t: t.to(device))
        if isinstance(theirs, FeatureStatistics):
            theirs = theirs.shifted(self._stats.shift, self.structure, other.n_examples)
        self._stats.add_(theirs)
        self.n_examples += other.n_examples
        return self

    def shift(self) -> list[torch.Tensor] | None:
        """The per-layer vectors subtracted from every row (full-data mode; None before data)."""
        return list(self._stats.shift) if isinstance(self._stats, FeatureStatistics) else None

    def align_to(self, shift: list[torch.Tensor]) -> "CKAAccumulator":
        """Re-express the statistics as those of rows minus ``shift`` (exact), so that
        accumulators sharing one shift can be summed tensor by tensor (all-reduce)."""
        if isinstance(self._stats, FeatureStatistics):
            target = [t.to(device=self._stats.device, dtype=torch.float64) for t in shift]
            self._stats = self._stats.shifted(target, self.structure, self.n_examples)
        return self

    def layout(self) -> dict | None:
        """What every rank of a reduction must agree on, as plain data (JSON): the estimator's
        settings and the layers' names and widths. None before any data."""
        if self.structure is None:
            return None
        s = self.structure
        return {"debiased": self.debiased, "batch_size": self.batch_size, "names_a": list(s.names_a),
                "names_b": list(s.names_b), "widths": list(s.widths), "self_compare": s.self_compare}

    def start_empty(self, layout: dict, device: torch.device | str = "cpu") -> "CKAAccumulator":
        """Zero statistics for the layers of ``layout`` (another accumulator's :meth:`layout`): how
        a rank that saw no rows joins a reduction. The settings must be this accumulator's."""
        if (layout["debiased"], layout["batch_size"]) != (self.debiased, self.batch_size):
            raise RepresentationError(
                f"this accumulator has debiased={self.debiased}, batch_size={self.batch_size}; the layout has "
                f"debiased={layout['debiased']}, batch_size={layout['batch_size']}.")
        if self.structure is not None:
            raise RepresentationError("start_empty is for an accumulator that has seen no data.")
        self.structure = LayerLayout(tuple(layout["names_a"]), tuple(layout["names_b"]), tuple(layout["widths"]),
                                    bool(layout["self_compare"]))
        kind = GramStatistics if self.batch_size is not None else FeatureStatistics
        if kind is FeatureStatistics:
            check_feature_memory(self.structure, torch.device(device))
        self._stats = kind.zeros(self.structure, torch.device(device))
        return self

    def state_tensors(self) -> list[torch.Tensor]:
        """Every statistic as a tensor, in a fixed order, for in-place all-reduce (SUM).
        The first is the example count; the shift is not included (it must be shared)."""
        if self.structure is None:
            raise RepresentationError("the accumulator has seen no data; call update() first.")
        count = torch.tensor([float(self.n_examples)], dtype=torch.float64, device=self._stats.device)
        self._count = count
        return [count, *self._stats.summed()]

    def result(self) -> np.ndarray:
        """The (L_a, L_b) CKA matrix of everything seen so far."""
        if self.structure is None:
            raise RepresentationError("the accumulator has seen no data; call update() first.")
        if getattr(self, "_count", None) is not None:  # updated in place by an all-reduce
            self.n_examples, self._count = int(round(float(self._count[0]))), None
        return cka_matrix_from_hsic(self._hsic(), self.structure)

    # ----------------------------------------------------------------- internals
    def _hsic(self) -> torch.Tensor:
        """HSIC (up to a common factor) for every needed pair of layers."""
        check_rows(self.n_examples, self.n_examples, self.debiased)
        if isinstance(self._stats, FeatureStatistics):
            return self._stats.hsic(self.structure, self.n_examples, self.debiased)
        return self._stats.hsic_sums

    def _check_structure(self, structure: LayerLayout) -> None:
        if self.structure is None:
            self.structure = structure
            return
        mine = self.structure
        if (mine.widths, mine.self_compare, len(mine.names_a)) != (
            structure.widths,
            structure.self_compare,
            len(structure.names_a),
        ):
            raise RepresentationError(
                "this batch has a different layer structure from the earlier ones "
                f"(widths {structure.widths} vs {mine.widths}); pass the same layers every time."
            )

    def _update_features(self, unique: list[torch.Tensor]) -> None:
        structure = self.structure
        if self._stats is None:
            check_feature_memory(structure, unique[0].device)
            self._stats = FeatureStatistics.empty(unique, structure)
        stats = self._stats
        shifted = [t.to(device=stats.device, dtype=torch.float64) - mu for t, mu in zip(unique, stats.shift)]
        q = torch.stack([(x * x).sum(dim=1) for x in shifted], dim=1)  # (rows, L) squared row norms
        product_dtype = _product_dtype(unique)
        for k in range(len(shifted)):
            _check_precision_range(q[:, k], product_dtype, structure, k)
        for k, x in enumerate(shifted):
            stats.column_sums[k] += x.sum(dim=0)
            stats.norm_moments[k] += x.T @ q
        for (l, m), block in _cross_products(shifted, structure, product_dtype):
            stats.cross[(l, m)] += block
        stats.norm_products += q.T @ q
        stats.norm_sums += q.sum(dim=0)
        self.n_examples += unique[0].shape[0]

    def _update_grams(self, chunk: list[torch.Tensor]) -> None:
        structure = self.structure
        device = chunk[0].device
        dtype = _product_dtype(chunk)
        m = chunk[0].shape[0]
        # Each layer's Gram (its lower triangle) goes straight into its row of G, no centring
        # pass: HSIC follows from G G^T, the Gram diagonals, row sums and their totals.
        g = torch.zeros(len(chunk), m * m, dtype=dtype, device=device)
        row_sums = torch.empty(len(chunk), m, dtype=torch.float64, device=device)
        diagonals = torch.empty(len(chunk), m, dtype=torch.float64, device=device)
        workspace = torch.empty(m * max(x.shape[1] for x in chunk), dtype=dtype, device=device)
        for k, x in enumerate(chunk):
            centred = near_centred(x, dtype, out=workspace[: x.numel()].view(x.shape))
            row_sums[k], diagonals[k] = gram_lower_triangle(centred, g[k].view(m, m), zero_diagonal=self.debiased)
            _check_precision_range(diagonals[k], dtype, structure, k)
        # <K, L> = 2 <tril K, tril L> - diag K . diag L, and U-centred Grams have a zero diagonal.
        dots = 2.0 * _pairwise_dots(g, structure)
        if not self.debiased:
            dots -= diagonals @ diagonals.T
        if self._stats is None:
            self._stats = GramStatistics.zeros(structure, device)
        # Each batch adds its own HSIC estimate, so a shorter trailing batch is weighted correctly.
        self._stats.hsic_sums += hsic_from_gram_sums(
            dots, row_sums @ row_sums.T, row_sums.sum(dim=1), m, self.debiased
        )
        self.n_examples += chunk[0].shape[0]


class PrecisionLost(RepresentationError):
    """The products of a layer came close to underflow in the precision they are formed in."""


def _check_precision_range(squared_norms: torch.Tensor, dtype: torch.dtype, structure: LayerLayout, k: int) -> None:
    """Products x_i . x_j of a layer whose largest squared row norm is below sqrt(tiny) of their
    dtype lose digits to gradual underflow with no sign in the result; ``cka_matrix`` then
    rescales the layer exactly. (Overflow and complete underflow do show, as Inf / NaN or a zero
    self term.)"""
    largest = float(squared_norms.max())
    if 0.0 < largest < math.sqrt(torch.finfo(dtype).tiny):
        raise PrecisionLost(
            f"layer {structure.names[k]!r} is too small in magnitude (largest squared row norm "
            f"{largest:.1e}) for {str(dtype).removeprefix('torch.')} products; multiply it by a constant, e.g. "
            "one over its largest absolute value: CKA does not change."
        )


def checked_batch_size(batch_size, debiased: bool) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise RepresentationError(f"batch_size must be an integer or None, not {batch_size!r}.")
    if batch_size < min_rows(debiased):
        raise RepresentationError(
            f"batch_size={batch_size} is too small: the {'debiased' if debiased else 'biased'} "
            f"estimator needs at least {min_rows(debiased)} examples per batch."
        )
    return int(batch_size)


def _product_dtype(unique: list[torch.Tensor]) -> torch.dtype:
    """Large products run in the input's precision once the features are shifted to near zero
    mean (that shift is what removes float32 cancellation); statistics accumulate in float64."""
    return torch.float64 if any(t.dtype == torch.float64 for t in unique) else torch.float32


def _cross_products(shifted: list[torch.Tensor], structure: LayerLayout, dtype: torch.dtype):
    """Yield ((l, m), X_l^T X_m) for every needed pair, as few large GEMMs as possible:
    one block row X_l^T [X_l ... X_L] per layer for a self-comparison (symmetric work once),
    one A^T B plus the self blocks for two models."""
    widths = structure.widths
    offsets = np.concatenate([[0], np.cumsum(widths)]).tolist()
    a = torch.cat(shifted, dim=1).to(dtype)
    n_a = structure.n_a
    if structure.self_compare:
        for l in range(len(widths)):
            row = (a[:, offsets[l] : offsets[l + 1]].T @ a[:, offsets[l] :]).to(torch.float64)
            for m in range(l, len(widths)):
                yield (l, m), row[:, offsets[m] - offsets[l] : offsets[m + 1] - offsets[l]]
        return
    cross = (a[:, : offsets[n_a]].T @ a[:, offsets[n_a] :]).to(torch.float64)
    for i in range(n_a):
        for j in range(n_a, len(widths)):
            yield (i, j), cross[offsets[i] : offsets[i + 1], offsets[j] - offsets[n_a] : offsets[j + 1] - offsets[n_a]]
    for k in range(len(widths)):
        x = a[:, offsets[k] : offsets[k + 1]]
        yield (k, k), (x.T @ x).to(torch.float64)


def _pairwise_dots(g: torch.Tensor, structure: LayerLayout) -> torch.Tensor:
    """G G^T restricted to what is needed: the full product for a self-comparison,
    the cross block plus the self terms otherwise (symmetric work done once)."""
    if structure.self_compare:
        return row_dots(g, g)
    size = g.shape[0]
    out = torch.zeros(size, size, dtype=torch.float64, device=g.device)
    a, b = g[: structure.n_a], g[structure.n_a :]
    cross = row_dots(a, b)
    out[: structure.n_a, structure.n_a :] = cross
    out[structure.n_a :, : structure.n_a] = cross.T
    idx = torch.arange(size, device=g.device)
    out[idx, idx] = torch.stack([row_dots(row[None], row[None])[0, 0] for row in g])
    return out


def cka_matrix_from_hsic(hsic: torch.Tensor, structure: LayerLayout) -> np.ndarray:
    """The (L_a, L_b) CKA matrix from the HSIC of every needed pair of layers; refuses overflowed or constant layers."""
    self_terms = torch.diagonal(hsic)
    names = structure.names
    for k, value in enumerate(self_terms.tolist()):
        if not math.isfinite(value):
            raise RepresentationError(
                f"the products of layer {names[k]!r} overflowed (its values are too large for their "
                "precision); divide it by a constant, e.g. its largest absolute value: CKA does not change."
            )
        if not value > 0.0:
            raise RepresentationError(
                f"layer {names[k]!r} is constant across the examples (zero variance after centring), "
                "so CKA is undefined (0/0). Drop this layer, or check that its hook captured real activations."
            )
    index_b = structure.index_b
    sub = hsic[: structure.n_a][:, index_b]
    cka = cka_from_hsic(sub, self_terms[: structure.n_a, None], self_terms[None, index_b])
    return cka.detach().cpu().numpy()

