"""How much memory each form of the CKA statistics needs, and which form fits this machine.
"""
from __future__ import annotations
import torch
from ..errors import RepresentationError
from .layers import LayerLayout


def memory_budget_bytes(device: torch.device) -> int:
    """Half of the memory the device has free now: what one call may allocate."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 * 1024**3


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:.1f} GiB"


def _feature_bytes(structure: LayerLayout) -> int:
    w = structure.widths
    return BYTES * (sum(w[l] * w[m] for (l, m) in structure.pairs()) + sum(w) * (len(w) + 2))


def _gram_bytes(structure: LayerLayout, rows: int) -> int:
    """One n x n triangle per layer plus two for row sums and products, and the centring workspace."""
    return BYTES * ((len(structure.widths) + 2) * rows * rows + rows * max(structure.widths))


def check_feature_memory(structure: LayerLayout, device: torch.device) -> None:
    need, budget = _feature_bytes(structure), memory_budget_bytes(device)
    if need > budget:
        raise RepresentationError(
            f"the exact full-data statistics of these layers (total width {sum(structure.widths)}) need "
            f"{_gib(need)}, more than the {_gib(budget)} this machine can spare; pass batch_size= for the "
            "minibatch estimator (memory L*b^2), or compare fewer or narrower layers."
        )


def choose_form(structure: LayerLayout, n: int, device: torch.device) -> str:
    """'features' or 'grams': the cheaper exact form that fits in memory (docs/theory.md §1.3).

    Feature space costs about n * (needed d_l * d_m blocks); Gram vectors cost n^2 * D / 2 to
    build plus n^2 per needed pair, and are memory-bound, hence the 1.5 weight measured on CPU.
    """
    w = structure.widths
    feature_cost = n * sum(w[l] * w[m] for (l, m) in structure.pairs())
    gram_cost = 1.5 * (n * n * sum(w) / 2 + n * n * len(structure.pairs()))
    budget = memory_budget_bytes(device)
    fits = {
        "features": _feature_bytes(structure) <= budget,
        "grams": _gram_bytes(structure, n) <= budget,
    }
    ranked = sorted([("features", feature_cost), ("grams", gram_cost)], key=lambda item: item[1])
    for form, _ in ranked:
        if fits[form]:
            return form
    raise RepresentationError(
        f"exact CKA of {n} examples over layers of total width {sum(w)} needs "
        f"{_gib(min(_feature_bytes(structure), _gram_bytes(structure, n)))}, more than the {_gib(budget)} "
        "this machine can spare; pass batch_size= (e.g. 256) for the minibatch estimator of Nguyen et al., "
        "or compare fewer layers."
    )


BYTES = 8  # float64 statistics
