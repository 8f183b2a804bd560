"""Independent float64 reference for the cka_core tests.

Written straight from the formulas in docs/theory.md (§1, §2), deliberately slow and literal:
explicit centring matrix H, traces of matrix products, Song et al.'s unbiased HSIC written term by
term, Kornblith et al.'s RBF bandwidth convention, Nguyen et al.'s minibatch estimator (HSIC summed
over batches, ratio at the end). Nothing here imports cka_core; no test functions live here.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg, optimize, stats

__all__ = [
    "as_f64", "centring_matrix", "linear_gram", "rbf_gram", "hsic0", "hsic1", "cka_from_grams",
    "linear_cka", "rbf_cka", "minibatch_cka", "cka_matrix", "translated", "translation_cka",
    "translation_limit", "deconfounded_gram", "deconfounded_cka", "procrustes_angle", "shape_distance", "rsa", "linear_regression_r2", "canonical_correlations",
    "mean_cca", "random_orthogonal", "whitened_pair", "cosine", "knn_cosine", "jaccard_knn", "rank_similarity",
    "second_order_cosine", "rsm_norm_difference", "rsa_correlation", "distance_correlation", "magnitude_difference",
    "concentricity_difference", "uniformity_difference", "jsd", "disagreement", "accuracy_difference",
    "orthogonal_procrustes", "procrustes_size_and_shape", "permutation_procrustes", "aligned_cosine",
    "neuron_correlations", "hard_correlation_match", "soft_correlation_match", "eigenspace_overlap", "gulp",
]


def as_f64(X) -> np.ndarray:
    """(n, ...) array or tensor -> (n, d) float64 numpy array (flattened per example)."""
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(X.shape[0], -1)


def centring_matrix(n: int) -> np.ndarray:
    """H = I - 11^T / n."""
    return np.eye(n) - np.ones((n, n)) / n


def linear_gram(X) -> np.ndarray:
    """K = (H X)(H X)^T: the linear Gram of the centred features. For the biased estimator
    H K H is unchanged by centring X first; Song et al.'s unbiased HSIC is translation invariant
    too, and centring first keeps the float64 reference accurate for inputs with large offsets."""
    X = as_f64(X)
    Xc = centring_matrix(X.shape[0]) @ X
    return Xc @ Xc.T


def squared_distances(X) -> np.ndarray:
    """D_ij = ||x_i - x_j||^2, computed from explicit differences (no dot-product cancellation)."""
    X = as_f64(X)
    diff = X[:, None, :] - X[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def rbf_gram(X, sigma: float = 1.0) -> np.ndarray:
    """Kornblith et al.'s gram_rbf(x, threshold=sigma):
    k_ij = exp(-||x_i - x_j||^2 / (2 sigma^2 median(D))), median over all n^2 entries of D
    (the zero diagonal included)."""
    D = squared_distances(X)
    return np.exp(-D / (2.0 * sigma**2 * np.median(D)))


def hsic0(K: np.ndarray, L: np.ndarray) -> float:
    """Biased HSIC (Gretton et al.): tr(K H L H) / (n - 1)^2."""
    n = K.shape[0]
    H = centring_matrix(n)
    return float(np.trace(K @ H @ L @ H) / (n - 1) ** 2)


def hsic1(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012), written literally:
    [tr(K~L~) + (1^T K~ 1)(1^T L~ 1)/((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3)),
    with K~, L~ the Gram matrices with zeroed diagonals."""
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    Lt = L - np.diag(np.diag(L))
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return float((term1 + term2 - term3) / (n * (n - 3)))


def cka_from_grams(K: np.ndarray, L: np.ndarray, debiased: bool = False) -> float:
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    h = hsic1 if debiased else hsic0
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def linear_cka(X, Y, debiased: bool = False) -> float:
    return cka_from_grams(linear_gram(X), linear_gram(Y), debiased)


def rbf_cka(X, Y, sigma: float = 1.0, debiased: bool = False) -> float:
    return cka_from_grams(rbf_gram(X, sigma), rbf_gram(Y, sigma), debiased)


def batch_slices(n: int, b: int, debiased: bool) -> list[slice]:
    """Consecutive batches [0:b], [b:2b], ...; a trailing batch with fewer than 4 (debiased) /
    2 (biased) rows is dropped."""
    min_rows = 4 if debiased else 2
    out = []
    for start in range(0, n, b):
        stop = min(start + b, n)
        if stop - start >= min_rows:
            out.append(slice(start, stop))
    return out


def minibatch_cka(X, Y, batch_size: int, debiased: bool = False) -> float:
    """Nguyen et al. 2021: sum HSIC(K_b, L_b), HSIC(K_b, K_b), HSIC(L_b, L_b) over batches
    separately, then take the ratio (not the mean of per-batch CKA)."""
    X, Y = as_f64(X), as_f64(Y)
    h = hsic1 if debiased else hsic0
    kl = kk = ll = 0.0
    for s in batch_slices(X.shape[0], batch_size, debiased):
        K, L = linear_gram(X[s]), linear_gram(Y[s])
        kl += h(K, L)
        kk += h(K, K)
        ll += h(L, L)
    return kl / np.sqrt(kk * ll)


def _layer_list(layers):
    if hasattr(layers, "keys"):
        return [as_f64(v) for v in layers.values()]
    return [as_f64(v) for v in layers]


class _LayerStats:
    """Per-layer pieces of the same two formulas, cached so that the reference matrix is not
    O(L^2 n^3): HKH for HSIC0 (tr(KHLH) = sum(HKH o HLH), both symmetric), and K~, 1^T K~ 1,
    K~ 1 for HSIC1 (tr(K~L~) = sum(K~ o L~), 1^T K~ L~ 1 = (K~1)^T (L~1))."""

    def __init__(self, X):
        K = linear_gram(X)
        n = K.shape[0]
        H = centring_matrix(n)
        self.n = n
        self.HKH = H @ K @ H
        self.Kt = K - np.diag(np.diag(K))
        self.Kt1 = self.Kt @ np.ones(n)
        self.sumKt = float(self.Kt1.sum())

    def hsic0(self, other: "_LayerStats") -> float:
        return float(np.sum(self.HKH * other.HKH) / (self.n - 1) ** 2)

    def hsic1(self, other: "_LayerStats") -> float:
        n = self.n
        value = (np.sum(self.Kt * other.Kt) + self.sumKt * other.sumKt / ((n - 1) * (n - 2))
                 - 2.0 / (n - 2) * (self.Kt1 @ other.Kt1))
        return float(value / (n * (n - 3)))


def cka_matrix(layers_a, layers_b=None, debiased: bool = False, batch_size: int | None = None):
    """(La, Lb) matrix of reference linear CKA values."""
    A = _layer_list(layers_a)
    B = A if layers_b is None else _layer_list(layers_b)
    out = np.empty((len(A), len(B)))
    if batch_size is None:
        SA = [_LayerStats(x) for x in A]
        SB = SA if layers_b is None else [_LayerStats(y) for y in B]
        h = (lambda s, t: s.hsic1(t)) if debiased else (lambda s, t: s.hsic0(t))
        for i, s in enumerate(SA):
            for j, t in enumerate(SB):
                out[i, j] = h(s, t) / np.sqrt(h(s, s) * h(t, t))
    else:
        for i, x in enumerate(A):
            for j, y in enumerate(B):
                out[i, j] = minibatch_cka(x, y, batch_size, debiased)
    return out


# ---------------------------------------------------------------- translation (Davari et al.)

def translated(X, moved, direction, c: float) -> np.ndarray:
    """X with the rows in `moved` translated by c * direction / ||direction||."""
    X = as_f64(X)
    v = np.asarray(direction, dtype=np.float64)
    v = v / np.linalg.norm(v)
    return X + c * np.outer(np.asarray(moved, dtype=np.float64), v)


def translation_cka(X, moved, direction, c: float) -> float:
    """Brute force: biased linear CKA(X, translated X)."""
    return linear_cka(X, translated(X, moved, direction, c))


def translation_limit(X, moved) -> float:
    """rho (1 - rho) ||mu_moved - mu_rest||^2 / ||Sigma||_F, Sigma = X_c^T X_c / n."""
    X = as_f64(X)
    moved = np.asarray(moved, dtype=bool)
    n = X.shape[0]
    rho = moved.mean()
    delta = X[moved].mean(0) - X[~moved].mean(0)
    Xc = centring_matrix(n) @ X
    sigma = Xc.T @ Xc / n
    return float(rho * (1 - rho) * (delta @ delta) / np.linalg.norm(sigma, "fro"))


# ---------------------------------------------------------------- other measures

def deconfounded_gram(Z, inputs) -> np.ndarray:
    """Cui et al. (2022): regress vec(K) on [1, vec(K0)] by least squares (numpy's lstsq on the
    n^2 x 2 design) and clip the residual's negative eigenvalues. K, K0: linear Grams of the
    centred layer and inputs."""
    K0, K = linear_gram(inputs), linear_gram(Z)
    design = np.column_stack([np.ones(K0.size), K0.ravel()])
    coefficients = np.linalg.lstsq(design, K.ravel(), rcond=None)[0]
    R = (K.ravel() - design @ coefficients).reshape(K.shape)
    w, V = np.linalg.eigh((R + R.T) / 2)
    return V @ np.diag(np.maximum(w, 0.0)) @ V.T


def deconfounded_cka(X, Y, inputs) -> float:
    """Biased CKA (explicit H) of the two deconfounded Grams."""
    return cka_from_grams(deconfounded_gram(X, inputs), deconfounded_gram(Y, inputs))


def _centred(X) -> np.ndarray:
    X = as_f64(X)
    return centring_matrix(X.shape[0]) @ X


def _orth_basis(Xc: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of Xc (rank-revealing SVD)."""
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    rank = int(np.sum(s > s[0] * max(Xc.shape) * np.finfo(float).eps))
    return U[:, :rank]


def procrustes_angle(X, Y) -> float:
    """Angular Procrustes distance arccos(||X~^T Y~||_*), X~, Y~ centred, unit Frobenius norm."""
    Xt, Yt = _centred(X), _centred(Y)
    Xt /= np.linalg.norm(Xt)
    Yt /= np.linalg.norm(Yt)
    nuc = np.linalg.svd(Xt.T @ Yt, compute_uv=False).sum()
    return float(np.arccos(np.clip(nuc, -1.0, 1.0)))


def shape_distance(X, Y, alpha: float = 0.5) -> float:
    """Williams et al.'s generalized shape metric from its definition: centre, scale so that
    tr(X^T X) is the rank (singular values of root mean square 1), partially whiten with the
    covariance's eigendecomposition (inverse square root on its non-zero eigenvalues), pad the
    narrower side with zero columns, solve the orthogonal Procrustes problem for Q explicitly and
    take the angle between phi(X) and phi(Y) Q."""
    def whiten(Z):
        Zt = _centred(Z)
        lam, V = np.linalg.eigh(Zt.T @ Zt)
        keep = lam > lam.max() * max(Zt.shape) ** 2 * np.finfo(float).eps
        Zt /= np.sqrt(lam[keep].mean())
        lam = lam / lam[keep].mean()
        inv_sqrt = (V[:, keep] / np.sqrt(lam[keep])) @ V[:, keep].T
        return Zt @ (alpha * np.eye(Zt.shape[1]) + (1 - alpha) * inv_sqrt)
    a, b = whiten(X), whiten(Y)
    width = max(a.shape[1], b.shape[1])
    a = np.pad(a, ((0, 0), (0, width - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, width - b.shape[1])))
    U, _, Vt = np.linalg.svd(b.T @ a)
    Q = U @ Vt                                    # argmin ||a - b Q||_F over orthogonal Q
    cos = np.sum(a * (b @ Q)) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def rdm(X) -> np.ndarray:
    """Euclidean distances between rows (examples), by explicit differences."""
    X = as_f64(X)
    return np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1))


def rsa(X, Y) -> float:
    """Spearman correlation of the upper triangles (k=1) of the two RDMs."""
    n = as_f64(X).shape[0]
    iu = np.triu_indices(n, k=1)
    return float(stats.spearmanr(rdm(X)[iu], rdm(Y)[iu])[0])


def linear_regression_r2(X, Y) -> float:
    """Kornblith's R^2_LR = ||Q_X^T Y_c||_F^2 / ||Y_c||_F^2."""
    Q = _orth_basis(_centred(X))
    Yc = _centred(Y)
    return float(np.linalg.norm(Q.T @ Yc) ** 2 / np.linalg.norm(Yc) ** 2)


def canonical_correlations(X, Y) -> np.ndarray:
    """Singular values of Q_X^T Q_Y (Q orthonormal bases of the centred column spaces)."""
    s = np.linalg.svd(_orth_basis(_centred(X)).T @ _orth_basis(_centred(Y)), compute_uv=False)
    return np.clip(s, 0.0, 1.0)


def mean_cca(X, Y) -> float:
    return float(canonical_correlations(X, Y).mean())


# ---------------------------------------------------------------- ReSi's neighbourhood, RSM, statistic, output measures

def cosine(u, v) -> float:
    """cos(u, v) = u.v / (|u| |v|)."""
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def knn_cosine(X, k: int) -> list[list[int]]:
    """Each row's k nearest other rows by cosine distance 1 - cos, nearest first, ties by lower index;
    by brute force: every pair's cosine, one sort per row."""
    X = as_f64(X)
    n = X.shape[0]
    return [sorted((j for j in range(n) if j != i), key=lambda j: (1 - cosine(X[i], X[j]), j))[:k] for i in range(n)]


def jaccard_knn(X, Y, k: int = 10) -> float:
    """Mean over i of |N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)|."""
    nx, ny = knn_cosine(X, k), knn_cosine(Y, k)
    return float(np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(nx, ny)]))


def rank_similarity(X, Y, k: int = 10) -> float:
    """Wang et al. 2020 as ReSi: per example, sum over common neighbours j of 2 / ((1 + |r_X - r_Y|)(r_X + r_Y)),
    ranks from 1, over sum_{l=1}^{|J|} 1/l; 0 for no common neighbour; mean over examples."""
    scores = []
    for a, b in zip(knn_cosine(X, k), knn_cosine(Y, k)):
        common = set(a) & set(b)
        if not common:
            scores.append(0.0)
            continue
        total = sum(2.0 / ((1 + abs(a.index(j) - b.index(j))) * (a.index(j) + 1 + b.index(j) + 1)) for j in common)
        scores.append(total / sum(1.0 / l for l in range(1, len(common) + 1)))
    return float(np.mean(scores))


def second_order_cosine(X, Y, k: int = 10) -> float:
    """Hamilton et al. 2016: per example, the cosine of its cosine similarities to the union of its k nearest
    neighbours in X and in Y, computed in X and in Y; mean over examples."""
    X, Y = as_f64(X), as_f64(Y)
    values = []
    for i, (a, b) in enumerate(zip(knn_cosine(X, k), knn_cosine(Y, k))):
        union = sorted(set(a) | set(b))
        values.append(cosine([cosine(X[i], X[j]) for j in union], [cosine(Y[i], Y[j]) for j in union]))
    return float(np.mean(values))


def rsm_norm_difference(X, Y) -> float:
    """sqrt(sum_ij (||x_i - x_j|| - ||y_i - y_j||)^2)."""
    return float(np.sqrt(np.sum((rdm(X) - rdm(Y)) ** 2)))


def rsa_correlation(X, Y) -> float:
    """Spearman correlation of the upper triangles of 1 - corrcoef(rows)."""
    n = as_f64(X).shape[0]
    iu = np.triu_indices(n, k=1)
    return float(stats.spearmanr((1 - np.corrcoef(as_f64(X)))[iu], (1 - np.corrcoef(as_f64(Y)))[iu])[0])


def distance_correlation(X, Y) -> float:
    """Székely et al. 2007: A_kl = a_kl - a_k. - a_.l + a_.., dCov^2 = (1/n^2) sum A_kl B_kl,
    dCor^2 = dCov^2(X, Y) / sqrt(dCov^2(X, X) dCov^2(Y, Y)), written term by term."""
    def centred(a):
        n = a.shape[0]
        out = np.empty_like(a)
        for k in range(n):
            for l in range(n):
                out[k, l] = a[k, l] - a[k, :].mean() - a[:, l].mean() + a.mean()
        return out
    A, B = centred(rdm(X)), centred(rdm(Y))
    dcov = lambda P, Q: float((P * Q).sum()) / P.size  # noqa: E731
    return float(np.sqrt(max(dcov(A, B), 0.0) / np.sqrt(dcov(A, A) * dcov(B, B))))


def magnitude_difference(X, Y) -> float:
    """| ||mean row of X|| - ||mean row of Y|| |."""
    return float(abs(np.linalg.norm(as_f64(X).mean(axis=0)) - np.linalg.norm(as_f64(Y).mean(axis=0))))


def concentricity_difference(X, Y) -> float:
    """| mean_i cos(x_i, x_bar) - mean_i cos(y_i, y_bar) |."""
    def concentricity(Z):
        Z = as_f64(Z)
        return np.mean([cosine(z, Z.mean(axis=0)) for z in Z])
    return float(abs(concentricity(X) - concentricity(Y)))


def uniformity_difference(X, Y, t: float = 2.0) -> float:
    """| log (1/n^2) sum_ij exp(-t ||x_i - x_j||^2) - the same for Y |, all n^2 pairs."""
    def uniformity(Z):
        D = rdm(Z)
        return np.log(np.sum(np.exp(-t * D ** 2)) / D.size)
    return float(abs(uniformity(X) - uniformity(Y)))


def jsd(X, Y) -> float:
    """Mean over examples of scipy's Jensen-Shannon distance (base 2) squared, on the softmax outputs."""
    from scipy.spatial.distance import jensenshannon
    from scipy.special import softmax
    P, Q = softmax(as_f64(X), axis=1), softmax(as_f64(Y), axis=1)
    return float(np.mean([jensenshannon(p, q, base=2) ** 2 for p, q in zip(P, Q)]))


def disagreement(X, Y) -> float:
    """Fraction of rows whose argmax differs."""
    return float(np.mean([int(np.argmax(x) != np.argmax(y)) for x, y in zip(as_f64(X), as_f64(Y))]))


def accuracy_difference(X, Y, labels) -> float:
    """| fraction of argmax(x_i) == label_i - the same for Y |."""
    acc = lambda Z: np.mean([int(np.argmax(z) == c) for z, c in zip(as_f64(Z), labels)])  # noqa: E731
    return float(abs(acc(X) - acc(Y)))


# ---------------------------------------------------------------- ReSi's alignment and spectral measures

def _padded(A: np.ndarray, width: int) -> np.ndarray:
    """A with zero columns appended up to ``width`` (ReSi: the narrower layer is zero-padded)."""
    return np.hstack([A, np.zeros((A.shape[0], width - A.shape[1]))])


def _procrustes_residual(A: np.ndarray, B: np.ndarray) -> float:
    """min_Q ||A - B Q||_F with Q orthogonal, solved explicitly: Q = U V^T from B^T A = U S V^T (both
    zero-padded to one width)."""
    width = max(A.shape[1], B.shape[1])
    A, B = _padded(A, width), _padded(B, width)
    U, _, Vt = np.linalg.svd(B.T @ A)
    return float(np.linalg.norm(A - B @ (U @ Vt)))


def orthogonal_procrustes(X, Y) -> float:
    """||A - B Q*||_F for A, B the centred layers at unit Frobenius norm."""
    A, B = _centred(X), _centred(Y)
    return _procrustes_residual(A / np.linalg.norm(A), B / np.linalg.norm(B))


def procrustes_size_and_shape(X, Y) -> float:
    """||A - B Q*||_F for A, B the centred layers, not rescaled."""
    return _procrustes_residual(_centred(X), _centred(Y))


def permutation_procrustes(X, Y) -> float:
    """min over permutations of the padded columns of ||A - B P||_F, on the layers as given: the
    assignment of columns that minimises the summed squared column distances ||a_i - b_j||^2."""
    A, B = as_f64(X), as_f64(Y)
    width = max(A.shape[1], B.shape[1])
    A, B = _padded(A, width), _padded(B, width)
    cost = np.array([[np.sum((A[:, i] - B[:, j]) ** 2) for j in range(width)] for i in range(width)])
    rows, cols = optimize.linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].sum()))


def aligned_cosine(X, Y) -> float:
    """Mean over examples of cos(a_i Q, b_i), Q = argmin ||A Q - B||_F (scipy's orthogonal_procrustes),
    on the layers as given and zero-padded; examples that are zero on either side are skipped."""
    A, B = as_f64(X), as_f64(Y)
    width = max(A.shape[1], B.shape[1])
    A, B = _padded(A, width), _padded(B, width)
    Q, _ = linalg.orthogonal_procrustes(A, B)
    cosines = [cosine(a, b) for a, b in zip(A @ Q, B) if np.any(a) and np.any(b)]
    return float(np.mean(cosines))


def neuron_correlations(X, Y) -> np.ndarray:
    """Pearson correlation (np.corrcoef) of each non-constant column of X with each non-constant column
    of Y; constant columns have none and are dropped."""
    A, B = as_f64(X), as_f64(Y)
    A, B = A[:, np.ptp(A, axis=0) > 0], B[:, np.ptp(B, axis=0) > 0]
    out = np.zeros((A.shape[1], B.shape[1]))
    for i in range(A.shape[1]):
        for j in range(B.shape[1]):
            out[i, j] = np.corrcoef(A[:, i], B[:, j])[0, 1]
    return out


def hard_correlation_match(X, Y) -> float:
    """Mean correlation over the one-to-one matching of as many neurons as the narrower side has (constant
    ones dropped), of largest summed correlation."""
    C = neuron_correlations(X, Y)
    rows, cols = optimize.linear_sum_assignment(-C)
    return float(C[rows, cols].mean())


def soft_correlation_match(X, Y) -> float:
    """Mean of (mean over X's neurons of the best correlation in Y) and the same from Y's side."""
    C = neuron_correlations(X, Y)
    return float((np.mean([max(row) for row in C]) + np.mean([max(col) for col in C.T])) / 2)


def eigenspace_overlap(X, Y) -> float:
    """||U_A^T U_B||_F^2 / max(rank_A, rank_B), U the left singular vectors of the centred layers (numpy's
    matrix_rank for the ranks)."""
    A, B = _centred(X), _centred(Y)
    ra, rb = np.linalg.matrix_rank(A), np.linalg.matrix_rank(B)
    Ua, Ub = np.linalg.svd(A)[0][:, :ra], np.linalg.svd(B)[0][:, :rb]
    return float(np.linalg.norm(Ua.T @ Ub) ** 2 / max(ra, rb))


def gulp(X, Y, lam: float = 0.0) -> float:
    """GULP in Boix-Adsera et al.'s (d, n) notation: each layer centred and scaled so that the covariance
    S = R R^T / n has unit trace; with S_lam^-1 = (S + lam I)^-1 (the pseudo-inverse at lam = 0),
    d^2 = tr(S_A S_A^-1 S_A S_A^-1) + tr(S_B S_B^-1 S_B S_B^-1) - 2 tr(S_A^-1 S_AB S_B^-1 S_BA); returns d."""
    def prepared(Z):
        R = _centred(Z).T
        n = R.shape[1]
        R = np.sqrt(n) * R / np.linalg.norm(R)
        S = R @ R.T / n
        inverse = np.linalg.pinv(S, rtol=1e-10, hermitian=True) if lam == 0 else np.linalg.inv(S + lam * np.eye(len(S)))
        return R, S, inverse
    (Ra, Sa, Ia), (Rb, Sb, Ib) = prepared(X), prepared(Y)
    n = Ra.shape[1]
    Sab = Ra @ Rb.T / n
    squared = (np.trace(Sa @ Ia @ Sa @ Ia) + np.trace(Sb @ Ib @ Sb @ Ib) - 2 * np.trace(Ia @ Sab @ Ib @ Sab.T))
    return float(np.sqrt(max(squared, 0.0)))


# ---------------------------------------------------------------- data helpers

def random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed orthogonal matrix (QR of a Gaussian with sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def whitened_pair(n: int, d: int, rho: float, rng: np.random.Generator):
    """X, Y (n, d), centred, with X^T X = Y^T Y = I and X^T Y = rho I exactly: every canonical
    correlation equals rho, linear CKA = R^2_LR = rho^2, Procrustes angle = arccos(rho)."""
    Z = rng.standard_normal((n, 2 * d))
    Z -= Z.mean(0)
    Q, _ = np.linalg.qr(Z)
    Z1, Z2 = Q[:, :d], Q[:, d:]
    return Z1, rho * Z1 + np.sqrt(1 - rho**2) * Z2
