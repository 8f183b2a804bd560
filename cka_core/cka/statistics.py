"""The two exact forms of the statistics behind linear CKA: sums over examples in feature space
(:class:`FeatureStatistics`) and stacked Gram vectors (:class:`GramStatistics`); docs/theory.md §1.3.
"""
from __future__ import annotations
from dataclasses import dataclass, field
import torch


@dataclass
class FeatureStatistics:
    """Sums over the examples seen, of rows a_i of each layer k minus ``shift[k]`` (full-data mode).

    With q_ik = ||a_i^k||^2 the squared row norms: ``column_sums[k]`` = sum_i a_i^k,
    ``cross[(l, m)]`` = sum_i a_i^l (a_i^m)^T for every needed pair l <= m,
    ``norm_moments[k]`` = sum_i a_i^k q_i^T (d_k x L), ``norm_products`` = sum_i q_i q_i^T (L x L),
    ``norm_sums`` = sum_i q_i. Biased and debiased HSIC follow from them exactly (docs/theory.md §2.4).
    """

    shift: list[torch.Tensor]
    column_sums: list[torch.Tensor]
    norm_moments: list[torch.Tensor]
    cross: dict[tuple[int, int], torch.Tensor]
    norm_products: torch.Tensor
    norm_sums: torch.Tensor

    @classmethod
    def zeros(cls, structure: "LayerLayout", device: torch.device) -> "FeatureStatistics":
        """The statistics of no rows (shift zero)."""
        zeros = dict(dtype=torch.float64, device=device)
        widths, size = structure.widths, len(structure.widths)
        return cls(
            shift=[torch.zeros(d, **zeros) for d in widths],
            column_sums=[torch.zeros(d, **zeros) for d in widths],
            norm_moments=[torch.zeros(d, size, **zeros) for d in widths],
            cross={(l, m): torch.zeros(widths[l], widths[m], **zeros) for (l, m) in structure.pairs()},
            norm_products=torch.zeros(size, size, **zeros),
            norm_sums=torch.zeros(size, **zeros),
        )

    @classmethod
    def empty(cls, unique: list[torch.Tensor], structure: "LayerLayout") -> "FeatureStatistics":
        stats = cls.zeros(structure, unique[0].device)
        # Shift by the first batch's mean: later products are of nearly centred numbers.
        stats.shift = [t.to(torch.float64).mean(dim=0) for t in unique]
        return stats

    @property
    def device(self) -> torch.device:
        return self.norm_products.device

    def summed(self) -> list[torch.Tensor]:
        """Every statistic that adds up over examples, in a fixed order (the shift is not one)."""
        return [*self.column_sums, *self.norm_moments, *(self.cross[pair] for pair in sorted(self.cross)),
                self.norm_products, self.norm_sums]

    def add_(self, other: "FeatureStatistics") -> None:
        """Add statistics expressed in the same shift, in place."""
        for mine, theirs in zip(self.summed(), other.summed()):
            mine += theirs

    def map(self, function) -> "FeatureStatistics":
        """A copy with ``function`` applied to every tensor (clone, move to a device)."""
        return FeatureStatistics([function(t) for t in self.shift], [function(t) for t in self.column_sums],
                                 [function(t) for t in self.norm_moments],
                                 {pair: function(t) for pair, t in self.cross.items()},
                                 function(self.norm_products), function(self.norm_sums))

    def shifted(self, new_shift: list[torch.Tensor], structure: "LayerLayout", n: int) -> "FeatureStatistics":
        """The same statistics of rows a_i - delta, delta = new - old shift (exact).

        Every statistic is a polynomial sum over rows, so the shifted sums follow from the old
        ones exactly (expand ||a - delta||^2 = q - 2 a.delta + ||delta||^2 and collect terms).
        """
        delta = [new - old for new, old in zip(new_shift, self.shift)]
        s, c, r, p, qsum = self.column_sums, self.cross, self.norm_moments, self.norm_products, self.norm_sums
        size = len(delta)
        u1 = torch.stack([s[k] @ delta[k] for k in range(size)])  # sum_i a_i^k . delta_k
        e = torch.stack([delta[k] @ delta[k] for k in range(size)])  # ||delta_k||^2

        def c_block(l: int, m: int) -> torch.Tensor:
            return c[(l, m)] if l <= m else c[(m, l)].T

        new_r = [block.clone() for block in r]
        new_p = p.clone()
        for (l, m) in structure.pairs():
            for (i, j) in {(l, m), (m, l)}:
                # R_i[:, j] = sum_t a_t^i q_tj
                a_u = c_block(i, j) @ delta[j]  # sum_t a_t^i u_tj
                new_r[i][:, j] = (r[i][:, j] - 2.0 * a_u + s[i] * e[j] - delta[i] * qsum[j] + 2.0 * delta[i] * u1[j]
                                  - n * delta[i] * e[j])
            w_lm = delta[m] @ r[m][:, l]  # sum_t q_tl u_tm
            w_ml = delta[l] @ r[l][:, m]  # sum_t q_tm u_tl
            v_lm = delta[l] @ c[(l, m)] @ delta[m]  # sum_t u_tl u_tm
            value = (p[l, m] - 2.0 * w_lm - 2.0 * w_ml + 4.0 * v_lm + qsum[l] * e[m] + e[l] * qsum[m]
                     - 2.0 * (u1[l] * e[m] + e[l] * u1[m]) + n * e[l] * e[m])
            new_p[l, m] = new_p[m, l] = value
        new_c = {(l, m): block - torch.outer(delta[l], s[m]) - torch.outer(s[l], delta[m])
                 + n * torch.outer(delta[l], delta[m]) for (l, m), block in c.items()}
        return FeatureStatistics(list(new_shift), [s[k] - n * delta[k] for k in range(size)], new_r, new_c, new_p,
                                 qsum - 2.0 * u1 + n * e)

    def hsic(self, structure: "LayerLayout", n: int, debiased: bool) -> torch.Tensor:
        """HSIC (up to a common factor) for every needed pair of layers."""
        s, c, r, p, qsum = self.column_sums, self.cross, self.norm_moments, self.norm_products, self.norm_sums
        size = len(structure.widths)
        hsic = torch.zeros(size, size, dtype=torch.float64, device=p.device)
        for (l, m) in structure.pairs():
            block = c[(l, m)]
            if debiased:
                trace = (block * block).sum() - p[l, m]
                ones_k = s[l] @ s[l] - qsum[l]
                ones_l = s[m] @ s[m] - qsum[m]
                ones_kl = s[l] @ block @ s[m] - s[l] @ r[l][:, m] - s[m] @ r[m][:, l] + p[l, m]
                value = trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 * ones_kl / (n - 2)
            else:
                centred = block - torch.outer(s[l], s[m]) / n
                value = (centred * centred).sum()
            hsic[l, m] = hsic[m, l] = value
        return hsic


@dataclass
class GramStatistics:
    """The minibatch estimator's state: HSIC of every pair of layers, summed over the batches."""

    hsic_sums: torch.Tensor = field(repr=False)

    @classmethod
    def zeros(cls, structure: "LayerLayout", device: torch.device) -> "GramStatistics":
        size = len(structure.widths)
        return cls(torch.zeros(size, size, dtype=torch.float64, device=device))

    @property
    def device(self) -> torch.device:
        return self.hsic_sums.device

    def summed(self) -> list[torch.Tensor]:
        return [self.hsic_sums]

    def add_(self, other: "GramStatistics") -> None:
        self.hsic_sums += other.hsic_sums

    def map(self, function) -> "GramStatistics":
        return GramStatistics(function(self.hsic_sums))
