"""Geadah et al.'s activation gamma(x; n, s): formula, special cases, safety, gradients."""
import math

import numpy as np
import pytest
import torch

from sample_models import Gamma, gamma


def _reference(x, n, s):
    """gamma in float64 numpy: (1 - s) log(1 + e^{nx}) / n + s / (1 + e^{-nx})."""
    z = n * x
    return (1 - s) * np.logaddexp(0.0, z) / n + s * 0.5 * (1 + np.tanh(z / 2))


def test_gamma_matches_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=2000)
    n = rng.uniform(0.01, 30, size=2000)
    s = rng.uniform(0, 1, size=2000)
    got = gamma(torch.tensor(x), torch.tensor(n), torch.tensor(s)).numpy()
    np.testing.assert_allclose(got, _reference(x, n, s), rtol=1e-12, atol=1e-12)


def test_gamma_special_cases():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    n = 2.5
    torch.testing.assert_close(gamma(x, n, 0.0), torch.nn.functional.softplus(n * x) / n)
    torch.testing.assert_close(gamma(x, n, 1.0), torch.sigmoid(n * x))
    for n, s in [(0.5, 0.0), (5.0, 0.3), (7.0, 1.0), (1e-3, 0.9)]:
        expected = (1 - s) * math.log(2) / n + s / 2
        assert gamma(torch.tensor(0.0, dtype=torch.float64), n, s).item() == pytest.approx(expected, rel=1e-12)


def test_gamma_large_inputs_do_not_overflow():
    n = torch.tensor(100.0, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([100.0, -100.0], dtype=torch.float64, requires_grad=True)  # n*x = +-1e4
    y = gamma(x, n, s)
    assert torch.isfinite(y).all()
    # linear branch: (1 - s) x + s for n x -> +inf, 0 for n x -> -inf
    torch.testing.assert_close(y, torch.tensor([0.75 * 100 + 0.25, 0.0], dtype=torch.float64))
    y.sum().backward()
    for g in (x.grad, n.grad, s.grad):
        assert torch.isfinite(g).all()
    torch.testing.assert_close(x.grad, torch.tensor([0.75, 0.0], dtype=torch.float64))
    # float32 as well
    y32 = gamma(torch.tensor([1e4, -1e4]), 1.0, 0.5)
    assert torch.isfinite(y32).all()


def test_gamma_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(12, dtype=torch.float64).mul(1.5).requires_grad_()
    n = torch.rand(12, dtype=torch.float64).mul(6).add(0.5).requires_grad_()
    s = torch.rand(12, dtype=torch.float64).requires_grad_()
    assert (n * x).abs().max() < 39  # away from softplus' switch to its linear branch at 40
    assert torch.autograd.gradcheck(gamma, (x, n, s), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradgradcheck(gamma, (x, n, s), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gamma_gradients_match_closed_forms():
    # docs/theory.md §10.1
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(0, 1, 50), requires_grad=True)
    n = torch.tensor(rng.uniform(0.5, 8, 50), requires_grad=True)
    s = torch.tensor(rng.uniform(0, 1, 50), requires_grad=True)
    gamma(x, n, s).sum().backward()
    xd, nd, sd = x.detach(), n.detach(), s.detach()
    sig = torch.sigmoid(nd * xd)
    sp = torch.nn.functional.softplus(nd * xd) / nd
    torch.testing.assert_close(x.grad, (1 - sd) * sig + sd * nd * sig * (1 - sig))
    torch.testing.assert_close(n.grad, (1 - sd) * (xd * sig - sp) / nd + sd * xd * sig * (1 - sig))
    torch.testing.assert_close(s.grad, sig - sp)


def test_gamma_module_modes_and_parameters():
    torch.manual_seed(0)
    het = Gamma(7, mode="heterogeneous")
    hom = Gamma(7, mode="homogeneous")
    assert het.n.shape == (7,) and het.s.shape == (7,)
    assert hom.n.shape == (1,) and hom.s.shape == (1,)
    assert ((het.n >= 5) & (het.n <= 7)).all()  # the authors' 5 + 2 U(0, 1)
    assert het.n.unique().numel() == 7
    x = torch.randn(4, 7)
    torch.testing.assert_close(het(x), gamma(x, het.n, het.s))
    # neuron i uses its own (n_i, s_i)
    with torch.no_grad():
        het.n.copy_(torch.arange(1.0, 8.0))
        het.s.copy_(torch.linspace(0, 1, 7))
    y = het(x)
    for i in range(7):
        torch.testing.assert_close(y[:, i], gamma(x[:, i], float(i + 1), het.s[i].item()))
    with pytest.raises(ValueError, match="mode"):
        Gamma(3, mode="per-layer")


def test_gamma_module_clamps():
    g = Gamma(3, mode="heterogeneous")
    with torch.no_grad():
        g.n.copy_(torch.tensor([-2.0, 0.0, 4.0]))
        g.s.copy_(torch.tensor([-0.5, 1.7, 0.4]))
    n, s = g.effective()
    torch.testing.assert_close(n, torch.tensor([1e-3, 1e-3, 4.0]))
    torch.testing.assert_close(s, torch.tensor([0.0, 1.0, 0.4]))
    x = torch.tensor([[0.3, -0.2, 1e4]])
    y = g(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, gamma(x, n, s))
