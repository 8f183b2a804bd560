"""One layer as the measures beside linear CKA see it, with its per-layer work done once.

Every such measure starts the same way on each side: centre the features (float64), check the
layer varies, bring it to unit magnitude by a power of two. Then each needs one per-layer quantity:
an orthonormal basis of its column space (CCA, SVCCA, PWCCA, regression), its pairwise distances
and their ranks (RSA), its RBF kernel (RBF CKA). A :class:`LayerView` computes each on first use and
keeps it, so that

* a matrix of L_a x L_b values prepares L_a + L_b views, not 2 L_a L_b;
* a bootstrap resample prepares one view per layer (:meth:`LayerView.rows`), taking its distances
  from the full-data ones by indexing instead of recomputing them;
* a permutation of the rows (:meth:`LayerView.permuted`) recomputes nothing: the rows of a basis,
  of a distance or rank matrix, of a kernel are simply reordered (each is equivariant to it).

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
    def _distance_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(for every pair i, j of the root: the tie group of ||x_i - x_j||, groups numbered in
        increasing distance; the index of the group holding 0, the distance of a repeated row).
        Distances come from row differences (accurate for near pairs); values within round-off of
        each other (relative to the largest) share a group."""
        def compute():
            condensed = pdist(self.xc)
            values = np.concatenate([[0.0], condensed])  # 0: a row against its own repeat (bootstrap)
            order = np.argsort(values, kind="stable")
            group = np.empty(values.size, dtype=np.intp)
            group[order] = tie_groups(values[order])
            return squareform(group[1:].astype(np.float64)).astype(np.intp), group[0]
        return self._cached("groups", compute)

    def distance_ranks(self) -> np.ndarray:
        """Average ranks of the upper-triangle distances (row-major, i < j), ties merged at round-off
        (Spearman's convention): a group of k values starting after s smaller ones has rank s + (k+1)/2."""
        def compute():
            root = self._root or self
            groups, zero = root._distance_groups()
            if self._index is not None:
                groups = groups[np.ix_(self._index, self._index)]
                repeated = self._index[:, None] == self._index[None, :]
                groups = np.where(repeated, zero, groups)
            g = groups[np.triu_indices(self.n, k=1)]
            counts = np.bincount(g, minlength=int(groups.max()) + 1)
            before = np.cumsum(counts) - counts
            return before[g] + (counts[g] + 1) / 2
        return self._cached("ranks", compute)

    def centred_ranks(self) -> np.ndarray:
        """The distance ranks minus their mean, at unit norm (a Pearson correlation is then a dot product)."""
        def compute():
            ranks = self.distance_ranks()
            if np.ptp(ranks) == 0:
                raise RepresentationError("RSA is undefined here: all pairwise distances of one side are equal.")
            centred = ranks - ranks.mean()
            return centred / np.linalg.norm(centred)
        return self._cached("centred_ranks", compute)

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

    def rbf_kernel(self, sigma: float, debiased: bool) -> torch.Tensor:
        """The centred (or U-centred) RBF kernel, bandwidth ``sigma`` x the median distance."""
        def compute():
            k = rbf_from_squared(self.squared_distances(), sigma, self.median_squared_distance())
            return u_centre_gram(k) if debiased else centre_gram(k)
        return self._cached(("rbf", sigma, debiased), compute)

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
            elif isinstance(key, tuple) and key[0] == "deconfounded":
                view._cache[key] = (value[0], value[1][np.ix_(perm, perm)])
        return view


def views(X, Y, debiased: bool = False) -> tuple[LayerView, LayerView]:
    """Both sides of one comparison, checked: the same number of examples, enough of them."""
    x, y = as_matrix(X, "X"), as_matrix(Y, "Y")
    check_rows(x.shape[0], y.shape[0], debiased)
    return LayerView.of(x, "X"), LayerView.of(y.to(x.device), "Y")


def tie_groups(ordered: np.ndarray, rel_tol: float = TIE_TOLERANCE) -> np.ndarray:
    """Group index of each entry of a sorted array: neighbours that differ by at most ``rel_tol``
    times the largest magnitude share a group (values equal in exact arithmetic, apart by round-off)."""
    scale = float(np.abs(ordered).max()) if ordered.size else 0.0
    return np.concatenate([[0], np.cumsum(np.abs(np.diff(ordered)) > rel_tol * scale)]).astype(np.intp)


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
