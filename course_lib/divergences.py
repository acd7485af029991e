"""Divergences between distributions, and the optimal GAN discriminator.

Everything here is a reference implementation for lecture 1, tested against torch.distributions,
scipy and numerical integration. Conventions: natural logarithms (nats), 0 log 0 = 0, and
KL(p || q) = inf where p > 0 but q = 0.

Three ways to get at a divergence, each used in the lecture:
  * discrete distributions: probability vectors p, q of shape (..., K)       -> kl_discrete, jsd_discrete
  * 1D densities tabulated on a grid x of shape (N,): p(x), q(x) of shape (N,) -> kl_integral, jsd_integral
  * closed form for Gaussians, and Monte Carlo from samples                    -> kl_gaussian, kl_monte_carlo
"""
from __future__ import annotations

import math

import torch
from torch.special import xlogy

__all__ = ["LOG2", "kl_discrete", "jsd_discrete", "kl_gaussian", "kl_monte_carlo", "integrate", "kl_integral",
           "jsd_integral", "kl_integral_log", "jsd_integral_log", "optimal_discriminator", "gan_value", "gaussian_mle", "fit_gaussian_kl"]

LOG2 = math.log(2.0)  # the largest value the JSD can take, in nats


def _as_tensors(*xs) -> list[torch.Tensor]:
    """Tensors of one float dtype: float64 if any input is float64 or none is a tensor (plain Python
    numbers deserve full precision), else the default float dtype."""
    given = [x for x in xs if isinstance(x, torch.Tensor)]
    wide = not given or any(t.dtype == torch.float64 for t in given)
    dtype = torch.float64 if wide else torch.get_default_dtype()
    return [torch.as_tensor(x).to(dtype) for x in xs]


# -- discrete distributions ---------------------------------------------------------------------
def kl_discrete(p, q, dim: int = -1) -> torch.Tensor:
    """KL(p || q) = sum_k p_k log(p_k / q_k) over `dim`; p, q (..., K) -> (...).

    xlogy(a, b) = a log b with xlogy(0, b) = 0, which is exactly the convention 0 log 0 = 0.
    """
    p, q = _as_tensors(p, q)
    return (xlogy(p, p) - xlogy(p, q)).sum(dim)  # sum_k p_k log p_k - p_k log q_k


def jsd_discrete(p, q, dim: int = -1) -> torch.Tensor:
    """JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2; (..., K) -> (...), in [0, log 2]."""
    p, q = _as_tensors(p, q)
    # Work with log m = logaddexp(log p, log q) - log 2: m = (p + q) / 2 itself underflows to 0 when
    # an entry is subnormal (5e-324 / 2 == 0), and KL(q || m) would become q log(q / 0) = inf.
    # Entries where a density is 0 contribute 0 (0 log 0 = 0) and are masked out, also in gradients.
    on_p, on_q = p > 0, q > 0
    log_p = torch.where(on_p, p, torch.ones_like(p)).log()  # (..., K); 0 where p = 0, masked below
    log_q = torch.where(on_q, q, torch.ones_like(q)).log()
    minus_inf = torch.full_like(p, -math.inf)
    log_m = torch.logaddexp(torch.where(on_p, log_p, minus_inf), torch.where(on_q, log_q, minus_inf)) - LOG2
    log_m = torch.where(on_p | on_q, log_m, torch.zeros_like(log_m))  # finite everywhere
    zero = torch.zeros_like(p)
    terms = torch.where(on_p, p * (log_p - log_m), zero) + torch.where(on_q, q * (log_q - log_m), zero)
    return 0.5 * terms.sum(dim)


# -- Gaussians and Monte Carlo ----------------------------------------------------------------------
def kl_gaussian(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    """KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)) in closed form; broadcasts over its arguments.

    KL = log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2
    """
    mu_p, sigma_p, mu_q, sigma_q = _as_tensors(mu_p, sigma_p, mu_q, sigma_q)
    assert bool((sigma_p > 0).all() and (sigma_q > 0).all()), "standard deviations must be positive (pass sigma, not log sigma)"
    return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5


def kl_monte_carlo(log_p_of_x: torch.Tensor, log_q_of_x: torch.Tensor) -> tuple[float, float]:
    """Estimate KL(p || q) = E_{x~p}[log p(x) - log q(x)] from log-densities at samples x ~ p.

    Returns (estimate, standard error); a check should allow a few standard errors.
    """
    r = (log_p_of_x - log_q_of_x).double()  # (N,) log-ratios, one per sample
    return float(r.mean()), float(r.std() / math.sqrt(len(r)))


# -- densities on a grid ------------------------------------------------------------------------------
def integrate(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoidal rule: integral of f over the grid x (N,); f (..., N) -> (...)."""
    return torch.trapezoid(f, x, dim=-1)


def kl_integral(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = integral p(x) log(p(x) / q(x)) dx for densities tabulated on the grid x."""
    p, q, x = _as_tensors(p, q, x)
    return integrate(xlogy(p, p) - xlogy(p, q), x)


def jsd_integral(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """JSD(p || q) for densities tabulated on the grid x."""
    p, q, x = _as_tensors(p, q, x)
    m = 0.5 * (p + q)
    return 0.5 * kl_integral(p, m, x) + 0.5 * kl_integral(q, m, x)


def kl_integral_log(log_p: torch.Tensor, log_q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """KL(p || q) from log-densities on the grid x: stays finite where q(x) underflows to 0."""
    log_p, log_q, x = _as_tensors(log_p, log_q, x)
    return integrate(log_p.exp() * (log_p - log_q), x)


def jsd_integral_log(log_p: torch.Tensor, log_q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """JSD(p || q) from log-densities on the grid x; log m = logaddexp(log p, log q) - log 2."""
    log_p, log_q, x = _as_tensors(log_p, log_q, x)
    log_m = torch.logaddexp(log_p, log_q) - LOG2
    return 0.5 * kl_integral_log(log_p, log_m, x) + 0.5 * kl_integral_log(log_q, log_m, x)


# -- the GAN game ------------------------------------------------------------------------------------
def optimal_discriminator(p_data, p_g) -> torch.Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), from density values of the same shape.

    Where both densities are 0 every D is optimal (x is never seen); we return 1/2 there.
    """
    p_data, p_g = _as_tensors(p_data, p_g)
    total = p_data + p_g
    safe = torch.where(total > 0, total, torch.ones_like(total))  # avoids 0/0 without touching other points
    return torch.where(total > 0, p_data / safe, torch.full_like(total, 0.5))


def gan_value(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """V(D, G) = E_{p_data}[log D] + E_{p_g}[log(1 - D)] = integral p_data log D + p_g log(1 - D) dx.

    d, p_data, p_g are tabulated on the grid x (N,). xlogy gives 0 where a density is 0.
    """
    d, p_data, p_g, x = _as_tensors(d, p_data, p_g, x)
    return integrate(xlogy(p_data, d) + xlogy(p_g, 1 - d), x)


# -- fitting a Gaussian -----------------------------------------------------------------------------
def gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood N(mu, sigma^2) for samples x (N,): the mean and the biased (1/N) variance."""
    mu = x.mean()
    return mu, ((x - mu) ** 2).mean()  # divide by N, not N - 1: that is what maximises the likelihood


def fit_gaussian_kl(log_p: torch.Tensor, x: torch.Tensor, direction: str = "forward", mu0: float = 0.0,
                    sigma0: float = 1.0, steps: int = 200) -> tuple[float, float]:
    """Fit q = N(mu, sigma^2) to a density p tabulated as log p on the grid x by minimising a KL.

    direction: "forward" minimises KL(p || q) (mode covering), "reverse" KL(q || p) (mode seeking).
    Uses L-BFGS on the grid integral; returns (mu, sigma). The reverse fit depends on mu0.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' (KL(p||q)) or 'reverse' (KL(q||p)), got {direction!r}.")
    log_p, x = _as_tensors(log_p, x)
    log_p, x = log_p.double(), x.double()
    mu = torch.tensor(float(mu0), dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([mu, log_sigma], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)

    def objective() -> torch.Tensor:
        opt.zero_grad()
        log_q = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(x)  # (N,)
        if direction == "forward":
            loss = integrate(log_p.exp() * (log_p - log_q), x)  # KL(p || q)
        else:
            loss = integrate(log_q.exp() * (log_q - log_p), x)  # KL(q || p)
        loss.backward()
        return loss

    opt.step(objective)
    return float(mu.detach()), float(log_sigma.detach().exp())
