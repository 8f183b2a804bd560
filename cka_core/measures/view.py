"""One layer as the measures beside linear CKA see it, with its per-layer work done once.

Every such measure starts the same way on each side: centre the features (float64), check the
layer varies, bring it to unit magnitude by a power of two. Then each needs one per-layer quantity:
an orthonormal basis of its column space (CCA, SVCCA, PWCCA, regression), its pairwise distances
and their ranks (RSA, the RSM measures, uniformity), its RBF kernel (RBF CKA), the cosines between
its rows as given and each row's k nearest neighbours (the kNN measures), a summary statistic. A
:class:`LayerView` computes each on first use and keeps it, so that

* a matrix of L_a x L_b values prepares L_a + L_b views, not 2 L_a L_b;
* a bootstrap resample prepares one view per layer (:meth:`LayerView.rows`), taking its distances
  and cosines from the full-data ones by indexing instead of recomputing them;
* a permutation of the rows (:meth:`LayerView.permuted`) recomputes no basis, kernel or statistic:
  the rows of a basis, of a distance or rank matrix, of a kernel are simply reordered (each is
  equivariant to it), and a statistic of the set of rows is kept. Only the k nearest neighbours are
  searched again, in the reordered cosines, because ties go to the lower index.

The numbers are those of computing each pair from scratch, up to round-off.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import pdist, squareform

from ..errors import RepresentationError
from ..cka.linalg import thin_svd
from ..cka.kernels import centre_features, centre_gram, median, rbf_from_squared, scaled_to_unit, squared_distances, u_centre_gram
from ..cka.validation import as_matrix, check_not_constant, check_rows

TIE_TOLERANCE = 1e-9  # values this close (relative to the largest) are one value


class LayerView:
    """A layer centred, checked and at unit magnitude (``xc``, (n, d) float64), with a cache of the
    per-layer quantities the measures need.

    ``raw`` is the layer as given (float64, neither centred nor scaled), for the measures that are
    not invariant to translation or scale (the magnitude statistics, Procrustes size and shape).

    A view made by :meth:`rows` or :meth:`permuted` keeps its ``root`` (the full-data view) and
    ``index`` (its rows as rows of the root): quantities built from distances are then read off the
    root's, by indexing."""

    def __init__(self, xc: np.ndarray, raw: np.ndarray, root: "LayerView | None" = None,
                 index: np.ndarray | None = None, name: str = "X"):
        self.xc, self.raw, self.name = xc, raw, name
        self._cache: dict = {}
        self._root, self._index = root, index

    @classmethod
    def of(cls, X, name: str = "X") -> "LayerView":
        x = as_matrix(X, name)
        xc = centre_features(x)
        check_not_constant(xc, x, name)
        return cls(scaled_to_unit(xc).cpu().numpy(), x.detach().cpu().to(torch.float64).numpy(), name=name)

    @property
    def n(self) -> int:
        return self.xc.shape[0]

    def _cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # ---------------------------------------------------------------- bases (CCA family, regression, shape metric)
    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(U, s): the left singular vectors and singular values of the column space, from a
        rank-revealing SVD (values at round-off level of the largest are not directions), with s
        at unit norm (the layer at unit Frobenius norm)."""
        def compute():
            u, s, _ = thin_svd(self.xc)
            rank = int((s > s[0] * max(self.xc.shape) * np.finfo(float).eps).sum())
            return u[:, :rank], s[:rank] / np.linalg.norm(s[:rank])
        return self._cached(("spectrum",), compute)

    def basis(self, keep_variance: float | None = None) -> np.ndarray:
        """Orthonormal basis of the column space, optionally only the leading directions that
        explain ``keep_variance`` of the variance (SVCCA)."""
        u, s = self.spectrum()
        if keep_variance is None:
            return u
        return u[:, :int(np.searchsorted(np.cumsum(s ** 2), keep_variance) + 1)]

    # ---------------------------------------------------------------- distances and their ranks (RSA)
    def distances(self) -> np.ndarray:
        """||x_i - x_j|| of the centred layer at unit magnitude, (n, n) float64, from row differences
        (accurate for near pairs); a resample's are the root's, indexed."""
        def compute():
            if self._root is not None:
                return self._root.distances()[np.ix_(self._index, self._index)]
            return squareform(pdist(self.xc))
        return self._cached("distances", compute)

    def unit_scale(self) -> float:
        """The power of two that took the centred layer to ``xc`` (``raw`` is at ``xc / unit_scale()``
        plus its mean): distances in the layer's own units are ``distances() / unit_scale()``."""
        def compute():
            if self._root is not None:
                return self._root.unit_scale()
            spread = float(np.abs(self.raw - self.raw.mean(axis=0)).max())
            return float(2.0 ** round(np.log2(float(np.abs(self.xc).max()) / spread)))
        return self._cached("unit_scale", compute)

    def _distance_groups(self, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
        """(for every pair i, j of the root: the tie group of its distance, groups numbered in
        increasing distance; the index of the group holding 0, the distance of a repeated row).
        ``metric``: "euclidean", ||x_i - x_j|| from row differences (accurate for near pairs), or
        "correlation", 1 - the Pearson correlation of rows i and j across the features. Values
        within round-off of each other (relative to the largest) share a group."""
        def compute():
            euclidean = metric == "euclidean"
            condensed = squareform(self.distances(), checks=False) if euclidean else correlation_distances(self.raw)
            values = np.concatenate([[0.0], condensed])  # 0: a row against its own repeat (bootstrap)
            order = np.argsort(values)  # equal values end up adjacent, in one group, whatever their order
            group = np.empty(values.size, dtype=np.intp)
            # A correlation distance lies in [0, 2] whatever the data: round-off is relative to 2, also
            # when every value is round-off around 0 (rows all perfectly correlated).
            group[order] = tie_groups(values[order], scale=None if euclidean else 2.0)
            return squareform(group[1:].astype(np.float64)).astype(np.intp), group[0]
        return self._cached(("groups", metric), compute)

    def distance_ranks(self, metric: str = "euclidean") -> np.ndarray:
        """Average ranks of the upper-triangle distances (row-major, i < j; ``metric`` as in
        :meth:`_distance_groups`), ties merged at round-off (Spearman's convention): a group of k values
        starting after s smaller ones has rank s + (k+1)/2."""
        def compute():
            root = self._root or self
            groups, zero = root._distance_groups(metric)
            if self._index is not None:
                groups = groups[np.ix_(self._index, self._index)]
                repeated = self._index[:, None] == self._index[None, :]
                groups = np.where(repeated, zero, groups)
            g = groups[np.triu_indices(self.n, k=1)]
            counts = np.bincount(g, minlength=int(groups.max()) + 1)
            before = np.cumsum(counts) - counts
            return before[g] + (counts[g] + 1) / 2
        return self._cached(("ranks", metric), compute)

    def centred_ranks(self, metric: str = "euclidean") -> np.ndarray:
        """The distance ranks minus their mean, at unit norm (a Pearson correlation is then a dot product)."""
        def compute():
            ranks = self.distance_ranks(metric)
            if np.ptp(ranks) == 0:
                raise RepresentationError(f"RSA is undefined here: all pairwise {metric} distances of one side "
                                          "are equal.")
            centred = ranks - ranks.mean()
            return centred / np.linalg.norm(centred)
        return self._cached(("centred_ranks", metric), compute)

    # ---------------------------------------------------------------- cosine neighbourhoods (kNN measures)
    def row_directions(self, measure: str) -> np.ndarray:
        """The rows of the layer as given, each at unit length (cosine geometry, not centred).
        ``measure`` names the caller in the error for an all-zero row, which has no direction."""
        def compute():
            rows = scaled_to_unit(torch.from_numpy(self.raw)).numpy()  # clear of under/overflow
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            zero = np.flatnonzero(norms[:, 0] == 0)
            if zero.size:
                raise RepresentationError(
                    f"{measure}: {self.name} has {zero.size} all-zero row(s) (example {int(zero[0])} first), whose "
                    "cosine similarity to any row is undefined; drop those examples, or use a Euclidean measure "
                    "(rsm_norm_difference, distance_correlation).")
            return rows / norms
        return self._cached("directions", compute)

    def cosine_similarities(self, measure: str) -> np.ndarray:
        """cos(x_i, x_j) of the rows as given, (n, n) float64; a resample's are the root's, indexed."""
        def compute():
            if self._root is not None:
                return self._root.cosine_similarities(measure)[np.ix_(self._index, self._index)]
            u = self.row_directions(measure)
            return np.clip(u @ u.T, -1.0, 1.0)
        return self._cached("cosine", compute)

    def neighbours(self, k: int, measure: str) -> np.ndarray:
        """(n, k) indices of each row's k nearest other rows by cosine distance, nearest first
        (:func:`nearest_neighbours`: round-off ties merged, then broken by the lower index)."""
        return self._cached(("neighbours", k), lambda: nearest_neighbours(1.0 - self.cosine_similarities(measure), k))

    # ---------------------------------------------------------------- RBF kernels
    def squared_distances(self) -> torch.Tensor:
        """||x_i - x_j||^2 through the Gram identity (what the RBF kernel uses), (n, n) float64."""
        def compute():
            if self._root is not None:
                index = torch.from_numpy(self._index)
                return self._root.squared_distances()[index][:, index]
            return squared_distances(torch.from_numpy(self.xc))
        return self._cached("squared", compute)

    def _sorted_squared(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The root's n^2 squared distances sorted, with the row and column of each."""
        def compute():
            values, order = torch.sort(self.squared_distances().flatten())
            order = order.numpy()
            return values, order // self.n, order % self.n
        return self._cached("sorted_squared", compute)

    def median_squared_distance(self) -> torch.Tensor:
        """Median of all n^2 squared distances. A resample's are the root's, each pair (a, b) counted
        c_a c_b times (c: how often each root row was drawn): its median is read off the root's sorted
        values by those counts, without sorting again."""
        def compute():
            if self._root is None:
                return median(self.squared_distances())
            values, rows, cols = self._root._sorted_squared()
            drawn = np.bincount(self._index, minlength=self._root.n)
            cumulative = np.cumsum(drawn[rows] * drawn[cols])
            total = cumulative[-1]
            lo, hi = np.searchsorted(cumulative, [(total + 1) // 2, total // 2 + 1])
            return (values[lo] + values[hi]) / 2
        return self._cached("median_squared", compute)

    def rbf_kernel(self, sigma: float, debiased: bool, keep: bool = True) -> torch.Tensor:
        """The centred (or U-centred) RBF kernel, bandwidth ``sigma`` x the median distance; ``keep=False``
        leaves it out of the view's cache (a sweep over many bandwidths)."""
        def compute():
            k = rbf_from_squared(self.squared_distances(), sigma, self.median_squared_distance())
            return u_centre_gram(k) if debiased else centre_gram(k)
        return self._cached(("rbf", sigma, debiased), compute) if keep else compute()

    # ---------------------------------------------------------------- Grams with the inputs regressed out (dCKA)
    def gram(self) -> np.ndarray:
        """The linear Gram matrix K = X_c X_c^T, (n, n) float64."""
        return self._cached("gram", lambda: self.xc @ self.xc.T)

    def deconfounded_gram(self, inputs: "LayerView") -> np.ndarray:
        """This layer's Gram with the inputs' Gram regressed out, its positive semi-definite part,
        double-centred (Cui et al. 2022). ``inputs`` is the view of the inputs on the root's rows: a
        resample (:meth:`rows`, :meth:`permuted`) regresses on the same rows of the inputs, so every
        layer stays paired with its own inputs."""
        def compute():
            paired = inputs if self._index is None else inputs.rows(self._index, "inputs")
            if paired.n != self.n:
                raise RepresentationError(f"inputs have {paired.n} examples but the layer has {self.n}; the inputs "
                                          "must be the examples the layers were computed on, in the same order.")
            residual = psd_part(gram_residual(self.gram(), paired.gram()))
            return centre_gram(torch.from_numpy(residual)).numpy()
        stored = self._cache.get(("deconfounded", id(inputs)))
        if stored is None or stored[0] is not inputs:
            stored = self._cache[("deconfounded", id(inputs))] = (inputs, compute())
        return stored[1]

    # ---------------------------------------------------------------- resampling
    def rows(self, index: np.ndarray, name: str = "X") -> "LayerView":
        """The layer on rows ``index`` of this (root) view, with repeats: a bootstrap resample, centred again."""
        raw = self.xc[index]
        xc = raw - raw.mean(axis=0, keepdims=True)
        check_not_constant(torch.from_numpy(xc), torch.from_numpy(raw), name)
        return LayerView(xc, self.raw[index], root=self, index=np.asarray(index), name=self.name)

    def permuted(self, perm: np.ndarray) -> "LayerView":
        """This (root) view with its rows reordered: bases and kernels are reordered, not recomputed
        (each is equivariant to a permutation of the rows); ranks are read off the root's groups."""
        view = LayerView(self.xc[perm], self.raw[perm], root=self, index=np.asarray(perm), name=self.name)
        for key, value in self._cache.items():
            if key == ("spectrum",):
                view._cache[key] = (value[0][perm], value[1])
            elif isinstance(key, tuple) and key[0] == "rbf":
                index = torch.from_numpy(np.asarray(perm))
                view._cache[key] = value[index][:, index]
            elif key == "median_squared":
                view._cache[key] = value
            elif key == "rows_as_given":  # the layer as given, and its row-space coordinates (aligned cosine)
                view._cache[key] = tuple(rows[perm] for rows in value)
            elif isinstance(key, tuple) and key[0] == "deconfounded":
                view._cache[key] = (value[0], value[1][np.ix_(perm, perm)])
            elif key in ("magnitude", "concentricity", "unit_scale") or (isinstance(key, tuple)
                                                                         and key[0] == "uniformity"):
                view._cache[key] = value  # a statistic of the set of rows: a reordering leaves it
        return view


def views(X, Y, debiased: bool = False) -> tuple[LayerView, LayerView]:
    """Both sides of one comparison, checked: the same number of examples, enough of them."""
    x, y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_rows(x.shape[0], y.shape[0], debiased)
    return LayerView.of(x, "X"), LayerView.of(y.to(x.device), "Y")


def measure_views(X, Y, measure: str) -> tuple[LayerView, LayerView]:
    """:func:`views` for ``measure``, whose name the error for rows that do not match carries."""
    x, y = as_matrix(X, "X"), as_matrix(Y, "Y")
    if x.shape[0] != y.shape[0]:
        raise RepresentationError(f"{measure}: X has {x.shape[0]} examples but Y has {y.shape[0]}; it compares the "
                                  "same examples in two representations, one row per example in the same order.")
    for name, side in (("X", x.double()), ("Y", y.double())):
        try:
            check_not_constant(side - side.mean(dim=0, keepdim=True), side, name)
        except RepresentationError:
            raise RepresentationError(f"{measure}: {name} is the same for every example (a constant layer), so its "
                                      "examples have nothing to compare; drop this layer, or check that its hook "
                                      "captured real activations.") from None
    return views(x, y)


def tie_groups(ordered: np.ndarray, rel_tol: float = TIE_TOLERANCE, scale: float | None = None) -> np.ndarray:
    """Group index of each entry of a sorted array: neighbours that differ by at most ``rel_tol``
    times ``scale`` (by default the largest magnitude) share a group (values equal in exact
    arithmetic, apart by round-off)."""
    if scale is None:
        scale = float(np.abs(ordered).max()) if ordered.size else 0.0
    return np.concatenate([[0], np.cumsum(np.abs(np.diff(ordered)) > rel_tol * scale)]).astype(np.intp)


def correlation_distances(x: np.ndarray) -> np.ndarray:
    """1 - the Pearson correlation of every pair of rows across the features, condensed (i < j).
    A row whose features are all equal has no correlation: refused, naming the fix."""
    centred = scaled_to_unit(torch.from_numpy(x - x.mean(axis=1, keepdims=True))).numpy()
    norms = np.linalg.norm(centred, axis=1)
    flat = np.flatnonzero(norms <= 1e-12 * norms.max()) if norms.max() > 0 else np.arange(x.shape[0])
    if flat.size:
        raise RepresentationError(
            f"rsa_correlation: {flat.size} example(s) (example {int(flat[0])} first) have the same value in every "
            "feature, so their correlation with other examples is undefined; use rsa (Euclidean distances), or "
            "drop those examples" + (" (a layer one feature wide has only such rows)." if x.shape[1] == 1 else "."))
    return pdist(centred, "correlation")


def nearest_neighbours(distances: np.ndarray, k: int, rel_tol: float = TIE_TOLERANCE) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows (itself excluded by position, so a repeated
    row is a neighbour at distance 0), nearest first. Vectorised: the k-th smallest distance of each
    row by ``np.argpartition``, then, of the few candidates up to it, everything below it and, of the
    values tied with it, the lowest indices. Values within ``rel_tol`` of the largest distance are
    ties (equal in exact arithmetic, apart by round-off, as on 0/1 data after a rotation), broken by
    the lower index, so that a map the measure is invariant to does not reorder them."""
    n = distances.shape[0]
    d = distances.copy()
    np.fill_diagonal(d, np.inf)
    kth = np.take_along_axis(d, np.argpartition(d, k - 1, axis=1)[:, k - 1:k], axis=1)[:, 0]
    slack = rel_tol * max(float(np.abs(distances).max()), np.finfo(float).tiny)
    rows, cols = np.nonzero(d <= kth[:, None] + slack)   # row-major: each row's candidates by index
    values = d[rows, cols]
    below = values < kth[rows] - slack
    tied = ~below
    tied_before = np.cumsum(tied) - tied                  # tied candidates ahead, over all rows
    row_start = np.searchsorted(rows, np.arange(n))
    rank_in_row = tied_before - tied_before[row_start][rows] + 1
    room = k - np.bincount(rows[below], minlength=n)
    chosen = below | (tied & (rank_in_row <= room[rows]))
    index, values = cols[chosen].reshape(n, k), values[chosen].reshape(n, k)
    by_value = np.argsort(values, axis=1, kind="stable")
    index, values = np.take_along_axis(index, by_value, 1), np.take_along_axis(values, by_value, 1)
    group = np.cumsum(np.diff(values, axis=1, prepend=values[:, :1]) > slack, axis=1)
    return np.take_along_axis(index, np.argsort(group * n + index, axis=1), axis=1)


def gram_residual(k: np.ndarray, k0: np.ndarray) -> np.ndarray:
    """K - b0 - b1 K0 for the least-squares fit of the n^2 entries of K by an intercept and the
    entries of the inputs' Gram K0 (Cui et al. 2022, eq. 5; simple regression in closed form:
    b1 = cov(K, K0) / var(K0), b0 = mean(K) - b1 mean(K0))."""
    k0_centred = k0 - k0.mean()
    spread = float(np.sum(k0_centred ** 2))
    if spread <= np.finfo(float).eps * float(np.sum(k0 ** 2)):
        raise RepresentationError("inputs: every pair of examples has the same input similarity, so there is "
                                  "nothing to regress out; pass the inputs the layers were computed from.")
    slope = float(np.sum((k - k.mean()) * k0_centred)) / spread
    return (k - k.mean()) - slope * k0_centred


def psd_part(k: np.ndarray) -> np.ndarray:
    """The nearest positive semi-definite matrix to the symmetric ``k`` in Frobenius norm: its
    eigenvalues clipped at 0 (a regression residual is not a kernel; Cui et al. 2022 §3)."""
    values, vectors = np.linalg.eigh((k + k.T) / 2)
    return (vectors * np.clip(values, 0.0, None)) @ vectors.T
