"""The thin SVD every per-layer quantity starts from, with a fallback when LAPACK's fast driver
fails: numpy's ``gesdd`` (divide and conquer) can report "SVD did not converge" on a finite matrix
(seen on a 359 x 1024 conv layer with most principal components deleted), where the slower QR
iteration of ``gesvd`` succeeds."""
from __future__ import annotations

import numpy as np
import scipy.linalg


def thin_svd(a: np.ndarray, compute_uv: bool = True):
    """np.linalg.svd(a, full_matrices=False): (U, s, V^T), or s alone without ``compute_uv``;
    retried with LAPACK's gesvd driver if gesdd does not converge."""
    try:
        return np.linalg.svd(a, full_matrices=False, compute_uv=compute_uv)
    except np.linalg.LinAlgError:
        return scipy.linalg.svd(a, full_matrices=False, compute_uv=compute_uv, lapack_driver="gesvd")
