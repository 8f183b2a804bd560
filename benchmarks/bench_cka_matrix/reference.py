"""The float64 reference the accuracy is measured against: an independent numpy implementation of
the debiased (Song et al. 2012) and biased (Kornblith et al. 2019) linear CKA, straight from the
formulas."""
from __future__ import annotations

import numpy as np
import torch


def reference_cka(layers, *, centre: bool = True) -> dict[str, np.ndarray]:
    """Independent float64 numpy reference, straight from the formulas, on float64 copies.

    Debiased (Song et al. 2012, eq. 5): with K~ the linear Gram with its diagonal set to 0,
        HSIC_1(K, L) = [ tr(K~ L~) + (1' K~ 1)(1' L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1' K~ L~ 1 ] / (n (n-3)),
    where tr(K~ L~) = sum(K~ * L~) (both symmetric) and 1' K~ L~ 1 = (K~ 1) . (L~ 1).
    Biased (Kornblith et al. 2019): HSIC_0(K, L) = sum(K_c * L_c) with K_c = H K H (the 1/(n-1)^2
    cancels in CKA). CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

    Both estimators are exactly invariant to translating the features (U-centring and
    double-centring remove the rank-2 change of K), so with ``centre=True`` the float64 features
    are column-centred first; this keeps the reference itself free of cancellation when the
    activations carry offsets of 1e4. ``centre=False`` uses the raw Grams (self-check).
    """
    xs = [np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in layers]
    n = xs[0].shape[0]
    size = len(xs)
    grams_u, row_u, tot_u, grams_c = [], [], [], []
    for x in xs:
        if centre:
            x = x - x.mean(axis=0)
        k = x @ x.T
        kc = k - k.mean(axis=0)[None, :] - k.mean(axis=1)[:, None] + k.mean()
        grams_c.append(kc)
        k = k.copy()
        np.fill_diagonal(k, 0.0)
        rows = k.sum(axis=1)
        grams_u.append(k)
        row_u.append(rows)
        tot_u.append(rows.sum())
    h1 = np.empty((size, size))
    h0 = np.empty((size, size))
    for i in range(size):
        for j in range(i, size):
            trace = float(np.vdot(grams_u[i], grams_u[j]))
            h1[i, j] = h1[j, i] = (
                trace + tot_u[i] * tot_u[j] / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(row_u[i] @ row_u[j])
            ) / (n * (n - 3))
            h0[i, j] = h0[j, i] = float(np.vdot(grams_c[i], grams_c[j]))
    out = {}
    for key, h in (("debiased", h1), ("biased", h0)):
        d = np.sqrt(np.diag(h))
        out[key] = h / np.outer(d, d)
    return out

