"""Divergences against trusted references (scipy, torch.distributions, quadrature) and properties (hypothesis)."""
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.spatial.distance
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import divergences as dv
from course_lib.exercises import get_exercise, verify, collect
from course_lib.distributions import Mixture

F64 = torch.float64


def simplex(seed, shape, zeros=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=F64) + 0.01
    if zeros:
        x = x * (torch.rand(shape, generator=g, dtype=F64) > zeros)
        x[..., 0] += 0.1
    return x / x.sum(-1, keepdim=True)


def test_kl_discrete_matches_scipy_including_zeros():
    p, q = simplex(0, (50, 7), zeros=0.3), simplex(1, (50, 7))
    want = scipy.stats.entropy(p.numpy(), q.numpy(), axis=1)
    assert np.allclose(dv.kl_discrete(p, q).numpy(), want, rtol=1e-12, atol=1e-14)


def test_kl_discrete_is_infinite_where_q_misses_mass_of_p():
    assert math.isinf(dv.kl_discrete(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])))
    assert dv.kl_discrete(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])) == pytest.approx(math.log(2))


def test_jsd_discrete_matches_scipy_and_disjoint_is_log2():
    p, q = simplex(2, (50, 5), zeros=0.3), simplex(3, (50, 5), zeros=0.3)
    want = scipy.spatial.distance.jensenshannon(p.numpy(), q.numpy(), axis=1) ** 2
    assert np.allclose(dv.jsd_discrete(p, q).numpy(), want, atol=1e-12)
    a, b = torch.tensor([0.3, 0.7, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    assert float(dv.jsd_discrete(a, b)) == pytest.approx(math.log(2), abs=1e-6)


def test_kl_gaussian_matches_torch_distributions():
    g = torch.Generator().manual_seed(4)
    mp, mq = torch.randn(100, generator=g, dtype=F64), torch.randn(100, generator=g, dtype=F64)
    sp, sq = torch.rand(100, generator=g, dtype=F64) + 0.1, torch.rand(100, generator=g, dtype=F64) + 0.1
    N = torch.distributions.Normal
    want = torch.distributions.kl_divergence(N(mp, sp), N(mq, sq))
    assert torch.allclose(dv.kl_gaussian(mp, sp, mq, sq), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(AssertionError, match="positive"):
        dv.kl_gaussian(0.0, -1.0, 0.0, 1.0)


def test_grid_integrals_match_closed_form_and_each_other():
    x = torch.linspace(-15, 15, 30_001, dtype=F64)
    p, q = Mixture.gaussian(0.3, 0.8), Mixture.gaussian(-1.0, 1.7)
    closed = float(dv.kl_gaussian(0.3, 0.8, -1.0, 1.7))
    assert float(dv.kl_integral(p.pdf(x), q.pdf(x), x)) == pytest.approx(closed, abs=1e-9)
    assert float(dv.kl_integral_log(p.log_prob(x), q.log_prob(x), x)) == pytest.approx(closed, abs=1e-9)
    assert float(dv.jsd_integral_log(p.log_prob(x), q.log_prob(x), x)) == pytest.approx(
        float(dv.jsd_integral(p.pdf(x), q.pdf(x), x)), abs=1e-12)


def test_kl_monte_carlo_within_standard_errors():
    g = torch.Generator().manual_seed(5)
    xs = 0.5 + 0.8 * torch.randn(50_000, generator=g, dtype=F64)
    N = torch.distributions.Normal
    est, se = dv.kl_monte_carlo(N(0.5, 0.8).log_prob(xs), N(-1.0, 1.5).log_prob(xs))
    assert abs(est - float(dv.kl_gaussian(0.5, 0.8, -1.0, 1.5))) < 5 * se


def test_optimal_discriminator_and_gan_value_equal_minus_log4_plus_2jsd():
    assert dv.optimal_discriminator(torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 3.0, 2.0])).tolist() == [0.5, 0.25, 0.0]
    pd, pg = Mixture([0.4, 0.6], [-1.0, 2.0], [0.5, 0.7]), Mixture.gaussian(0.0, 1.2)
    x = torch.linspace(-12, 12, 48_001, dtype=F64)
    v = float(dv.gan_value(dv.optimal_discriminator(pd.pdf(x), pg.pdf(x)), pd.pdf(x), pg.pdf(x), x))

    def integrand(t):
        a, b = float(pd.pdf(torch.tensor([t], dtype=F64))), float(pg.pdf(torch.tensor([t], dtype=F64)))
        m = (a + b) / 2
        return 0.5 * (a * math.log(a / m) + b * math.log(b / m))
    jsd = scipy.integrate.quad(integrand, -12, 12, limit=200, epsabs=1e-13)[0]
    assert v == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-7)


def test_gaussian_mle_matches_scipy_fit():
    xs = torch.randn(200, generator=torch.Generator().manual_seed(6), dtype=F64) * 2 + 1
    mu, var = dv.gaussian_mle(xs)
    loc, scale = scipy.stats.norm.fit(xs.numpy())
    assert float(mu) == pytest.approx(loc, rel=1e-10) and float(var) == pytest.approx(scale**2, rel=1e-8)


def test_fit_gaussian_kl_forward_matches_moments_reverse_finds_a_mode():
    m = Mixture([0.5, 0.5], [-2.0, 2.0], [0.6, 0.6])
    x = torch.linspace(-10, 10, 8001, dtype=F64)
    mu, sd = dv.fit_gaussian_kl(m.log_prob(x), x, "forward", mu0=0.3)
    assert mu == pytest.approx(0.0, abs=1e-5) and sd == pytest.approx(float(m.variance()[0].sqrt()), abs=1e-5)
    mu, sd = dv.fit_gaussian_kl(m.log_prob(x), x, "reverse", mu0=-1.0)
    assert mu == pytest.approx(-2.0, abs=0.05) and sd == pytest.approx(0.6, abs=0.05)
    with pytest.raises(ValueError, match="forward"):
        dv.fit_gaussian_kl(m.log_prob(x), x, "sideways")


probs = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=8).filter(lambda v: sum(v) > 1e-3)


def normalise(v):
    t = torch.tensor(v, dtype=F64)
    return t / t.sum()


@settings(max_examples=200, deadline=None)
@given(probs, st.integers(0, 10_000))
def test_kl_nonnegative_and_zero_at_equality(v, seed):
    p = normalise(v)
    q = simplex(seed, (len(v),))  # strictly positive, so KL is finite
    assert float(dv.kl_discrete(p, q)) >= -1e-12
    assert abs(float(dv.kl_discrete(p, p))) < 1e-12


@settings(max_examples=200, deadline=None)
@given(probs, probs)
def test_jsd_symmetric_bounded(v, w):
    n = min(len(v), len(w))
    p, q = normalise(v[:n] if sum(v[:n]) > 1e-3 else [1.0] * n), normalise(w[:n] if sum(w[:n]) > 1e-3 else [1.0] * n)
    j = float(dv.jsd_discrete(p, q))
    assert j == pytest.approx(float(dv.jsd_discrete(q, p)), abs=1e-12)
    assert -1e-12 <= j <= math.log(2) + 1e-12


TINY = 5e-324  # the smallest subnormal double: TINY / 2 == 0


@pytest.mark.parametrize("p, q, want", [
    ([0.0, 1.0], [TINY, 1.0], 0.5 * TINY * math.log(2)),  # the case hypothesis found: (p + q) / 2 underflows to 0
    ([TINY, 1.0], [0.0, 1.0], 0.5 * TINY * math.log(2)),
    ([TINY, 1.0 - TINY], [1.0, 0.0], math.log(2)),  # disjoint but for a subnormal entry
    ([0.0, 0.5, 0.5], [TINY, 0.0, 1.0], None),
    ([1e-310, 1e-300, 1.0], [1e-320, 0.0, 1.0], None),
])
def test_jsd_finite_and_correct_with_subnormal_entries(p, q, want):
    j = float(dv.jsd_discrete(p, q))
    assert math.isfinite(j) and j == pytest.approx(float(dv.jsd_discrete(q, p)), abs=1e-15)
    assert -1e-15 <= j <= math.log(2) + 1e-15
    if want is not None:
        assert j == pytest.approx(want, abs=1e-15)
    # against exact arithmetic: mpmath-free, with Python's fractions on the normalised inputs
    from fractions import Fraction
    P, Q = [Fraction(x) for x in p], [Fraction(x) for x in q]
    exact = 0.0
    for a, b in zip(P, Q):
        m = (a + b) / 2
        for x in (a, b):
            if x > 0:
                exact += 0.5 * float(x) * (math.log(x.numerator) - math.log(x.denominator) -
                                           math.log(m.numerator) + math.log(m.denominator))
    assert j == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_jsd_gradient_has_no_nan_where_both_are_zero():
    p = torch.tensor([0.2, 0.8, 0.0], dtype=F64, requires_grad=True)
    dv.jsd_discrete(p, torch.tensor([0.5, 0.5, 0.0], dtype=F64)).backward()
    assert torch.isfinite(p.grad).all() and p.grad[2] == 0


@settings(max_examples=200, deadline=None)
@given(st.floats(-5, 5), st.floats(0.05, 5), st.floats(-5, 5), st.floats(0.05, 5))
def test_kl_gaussian_nonnegative(mp, sp, mq, sq):
    assert float(dv.kl_gaussian(mp, sp, mq, sq)) >= -1e-12
    assert abs(float(dv.kl_gaussian(mp, sp, mp, sp))) < 1e-12


# -- the lab's checks: the reference passes, stubs and typical mistakes fail ----------------------------
IDS = ["kl_discrete", "kl_gaussian", "jsd", "optimal_discriminator", "discriminator_loss", "generator_loss", "mode_coverage"]


@pytest.mark.parametrize("name", IDS)
def test_lab01_reference_passes_and_stub_fails(name):
    ex = get_exercise(f"lab01.{name}")
    assert verify(ex, collect(ex, ex.reference)) == len(ex.cases())

    def stub(*args):
        raise NotImplementedError
    with pytest.raises(NotImplementedError):
        collect(ex, stub)


def naive_kl(p, q):
    return (p * (p / q).log()).sum(-1)  # nan at p = 0


def swapped_d_loss(real, fake):
    return torch.nn.functional.softplus(real).mean() + torch.nn.functional.softplus(-fake).mean()


def concat_bce(real, fake):  # one mean over both batches: wrong when their sizes differ
    logits = torch.cat([real, fake])
    labels = torch.cat([torch.ones_like(real), torch.zeros_like(fake)])
    return 2 * torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def naive_g_loss(fake):
    return -torch.log(torch.sigmoid(fake)).mean()


def saturating(fake):
    return torch.log(1 - torch.sigmoid(fake)).mean()


def jsd_without_half(p, q):
    m = p + q
    return 0.5 * (dv.kl_discrete(p, m) + dv.kl_discrete(q, m))


@pytest.mark.parametrize("name,wrong", [("kl_discrete", naive_kl), ("discriminator_loss", swapped_d_loss),
                                        ("discriminator_loss", concat_bce), ("generator_loss", naive_g_loss),
                                        ("generator_loss", saturating), ("jsd", jsd_without_half),
                                        ("optimal_discriminator", lambda a, b: a / (a + b))])
def test_lab01_typical_mistakes_fail(name, wrong):
    ex = get_exercise(f"lab01.{name}")
    with pytest.raises(AssertionError):
        verify(ex, collect(ex, wrong))
