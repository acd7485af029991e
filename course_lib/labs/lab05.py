"""Lab 5 checks: the VAE's pieces, each against the library's own (course_lib.models.vae).

reparameterise is checked with its gradients: the lab's check cell reports z and dz/dmu, dz/dlogvar
(summed), so a draw that cuts the graph (torch.normal, .detach()) fails. The ELBO loss is checked on
cases where a per-pixel mean or a sum over the batch gives a different number. The IWAE cases put the
log-weights near -3000 nats, where exp() underflows to 0 and only a logsumexp survives. Every case is
drawn from a seeded generator, fresh on each call.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..exercises import Exercise, case_generator, case_seed, register, returned_samples, no_reference
from ..harness.lab05 import kl_to_prior  # also the reference the ELBO exercise builds on
from ..latent import lerp

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


# -- reparameterise ------------------------------------------------------------------------------------------
def reparameterize_and_gradients(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> tuple:
    """The reference, as the lab's check cell reports the student's: z, d(sum z)/d mu, d(sum z)/d logvar."""
    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = mu + torch.exp(0.5 * logvar) * eps
    d_mu, d_logvar = torch.autograd.grad(z.sum(), [mu, logvar])
    return z.detach(), d_mu, d_logvar


def reparameterize_cases() -> list[tuple]:
    g = _gen(500)
    return [(torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)),
            (torch.zeros(2, 5), torch.zeros(2, 5), torch.randn(2, 5, generator=g)),  # N(0, I): z = eps
            (torch.randn(3, 16, generator=g), torch.full((3, 16), -6.0), torch.randn(3, 16, generator=g)),  # tiny sigma
            (torch.randn(1, 2, generator=g), torch.tensor([[2.0, -2.0]]), torch.randn(1, 2, generator=g))]


# -- the Gaussian KL to the prior ----------------------------------------------------------------------------
def kl_cases() -> list[tuple]:
    g = _gen(501)
    return [(torch.randn(8, 4, generator=g, dtype=F64), torch.randn(8, 4, generator=g, dtype=F64)),
            (torch.zeros(3, 6, dtype=F64), torch.zeros(3, 6, dtype=F64)),  # q = p: 0
            (3 * torch.randn(5, 2, generator=g, dtype=F64), torch.full((5, 2), -5.0, dtype=F64)),  # sharp and far
            (torch.randn(2, 32, generator=g, dtype=F64), torch.full((2, 32), 2.0, dtype=F64))]  # too wide


# -- the ELBO loss ---------------------------------------------------------------------------------------------
def elbo_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0) -> torch.Tensor:
    """-(log p(x|z) summed over pixels - beta KL summed over latents), averaged over the batch (Bernoulli decoder)."""
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (B,)
    return -(log_px - beta * kl_to_prior(mu, logvar)).mean()


def elbo_cases() -> list[tuple]:
    g = _gen(502)
    out = []
    for b, size, z, beta in ((6, 8, 4, 1.0), (3, 28, 16, 1.0), (10, 8, 2, 4.0), (1, 4, 3, 0.5)):
        logits = 2 * torch.randn(b, 1, size, size, generator=g, dtype=F64)
        x = torch.bernoulli(torch.full((b, 1, size, size), 0.3, dtype=F64), generator=g)
        out.append((logits, x, torch.randn(b, z, generator=g, dtype=F64), torch.randn(b, z, generator=g, dtype=F64), beta))
    return out


# -- the IWAE bound --------------------------------------------------------------------------------------------
def iwae_bound(log_px_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """(k, B) log p(x|z_i), log p(z_i), log q(z_i|x) -> (B,) log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)."""
    k = log_px_z.shape[0]
    return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)


def iwae_cases() -> list[tuple]:
    g = _gen(503)
    out = []
    for k, b, scale in ((5, 4, 1.0), (1, 3, 1.0), (64, 2, 10.0)):
        out.append((scale * torch.randn(k, b, generator=g, dtype=F64) - 20, torch.randn(k, b, generator=g, dtype=F64),
                    torch.randn(k, b, generator=g, dtype=F64)))
    # an image's log p(x|z) is thousands of nats: exp() underflows to 0, a logsumexp does not
    out.append((-3000 + 5 * torch.randn(10, 3, generator=g, dtype=F64), -8 + torch.randn(10, 3, generator=g, dtype=F64),
                -6 + torch.randn(10, 3, generator=g, dtype=F64)))
    return out


# -- latent interpolation --------------------------------------------------------------------------------------
def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """(d,), (d,) -> (steps, d): the points (1 - t) z0 + t z1 for t = 0, 1/(steps - 1), ..., 1."""
    ts = torch.linspace(0, 1, steps, dtype=z0.dtype)
    return torch.stack([lerp(z0, z1, float(t)) for t in ts])


def interpolate_cases() -> list[tuple]:
    g = _gen(504)
    return [(torch.randn(2, generator=g, dtype=F64), torch.randn(2, generator=g, dtype=F64), 9),
            (torch.randn(16, generator=g, dtype=F64), torch.randn(16, generator=g, dtype=F64), 2),  # the endpoints only
            (torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64), 5),
            (torch.randn(8, generator=g, dtype=F64), torch.randn(8, generator=g, dtype=F64), 12)]


# -- build and train: the student's whole VAE, judged by its samples --------------------------------------------------
TRAIN_STEPS, TRAIN_Z, TRAIN_WIDTH, TRAIN_N = 150, 16, 16, 256  # 1.5-3 s on one CPU core
# The trained FD must be below this fraction of the untrained one, and the loss below LOSS_FACTOR x its first value.
# A right build went from FD 410-432 to 121-134 (ratio 0.29-0.33 over three seeds) and its loss from 520-547 to
# 270-273 nats; one that cannot learn (learning rate 0) stays at ratio 1.00 and its loss where it began.
TRAIN_FACTOR, LOSS_FACTOR = 0.6, 0.8


def build_vae_cases() -> list[tuple]:
    """(z_dim, width, seed, steps, noise_seed, n): one run, its seeds the grader's secret in a grading run."""
    return [(TRAIN_Z, TRAIN_WIDTH, case_seed(506) % 2**31, TRAIN_STEPS, case_seed(507) % 2**31, TRAIN_N)]



def train_compare(got, want, args) -> None:
    """It trains: a finite loss that falls, prior samples in range, and an FD on Fashion-MNIST below TRAIN_FACTOR x
    the untrained one, without copies of training images. The FDs are computed here, from the samples."""
    from ..metrics import evaluate

    where = f"lab05.build_vae, {args[3]} steps with z_dim {args[0]} and width {args[1]}"
    n = int(args[5])
    returned_samples(got, ("before", "after", "loss"), where, "lab05:train_and_sample", n,
                     "Does your decoder turn (B, z_dim) into logits (B, 1, 28, 28)?")
    loss = got["loss"].flatten()
    if len(loss) < 2 or not bool(torch.isfinite(loss).all()):
        raise AssertionError(f"{where}: the training loss is not finite ({loss[:5].tolist()} ...): look for an exp of "
                             f"a large logvar, or a log of 0 (use the logits, not sigmoid then log).")
    first, last = float(loss[0]), float(loss[-3:].mean())
    if not last < LOSS_FACTOR * first:
        raise AssertionError(f"{where}: the loss does not fall: {first:.1f} at the start, {last:.1f} at the end (mean of "
                             f"the last three logged), expected below {LOSS_FACTOR:g} x the first. Check that your VAE's "
                             f"loss(batch) returns {{'loss': ...}} from your elbo_loss, and the learning rate.")
    fd = {k: evaluate(got[k], "fashion-mnist", profile="smoke", n=n) for k in ("before", "after")}
    if fd["after"]["memorised"] > 0.5:
        raise AssertionError(f"{where}: {fd['after']['memorised']:.0%} of the samples are copies of training images.")
    if not fd["after"]["fd"] < TRAIN_FACTOR * fd["before"]["fd"]:
        raise AssertionError(f"{where}: its samples do not improve: FD {fd['before']['fd']:.1f} untrained -> "
                             f"{fd['after']['fd']:.1f} after training, expected below {TRAIN_FACTOR:g} x the untrained "
                             f"FD. Does sample() decode draws from N(0, I), and does the decoder see z?")


register(Exercise("lab05.reparameterize", reparameterize_cases, reparameterize_and_gradients, rtol=1e-5, atol=1e-6,
                  describe="z = mu + sigma eps, and gradients reach mu and logvar"))
def _elbo_pixel_mean(logits, x, mu, logvar, beta=1.0):
    """The classic mistake: F.binary_cross_entropy_with_logits's default, a mean over pixels (and batch)."""
    return F.binary_cross_entropy_with_logits(logits, x) + beta * kl_to_prior(mu, logvar).mean()


register(Exercise("lab05.kl_to_prior", kl_cases, kl_to_prior, rtol=1e-6, atol=1e-8,
                  describe="closed form, one value per example; 0 when q is the prior",
                  mistakes=(("a KL with its sign flipped: KL is never negative", lambda mu, lv: -kl_to_prior(mu, lv)),
                            ("a mean over the latent dimensions instead of a sum",
                             lambda mu, lv: 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).mean(1)))))
register(Exercise("lab05.elbo_loss", elbo_cases, elbo_loss, rtol=1e-6, atol=1e-6,
                  describe="summed over pixels and latents, averaged over the batch, beta on the KL",
                  mistakes=(("a per-pixel mean of the reconstruction term (binary_cross_entropy_with_logits' default "
                             "reduction): it is divided by the number of pixels, 784 on Fashion-MNIST, so the KL "
                             "weighs 784 times too much; sum over the pixels of each image",
                             _elbo_pixel_mean),
                            ("a sum over the batch instead of a mean",
                             lambda lo, x, mu, lv, beta=1.0: elbo_loss(lo, x, mu, lv, beta) * len(x)),
                            ("the KL added with the wrong sign: the loss is reconstruction error PLUS beta KL",
                             lambda lo, x, mu, lv, beta=1.0: elbo_loss(lo, x, mu, lv, -beta)))))
register(Exercise("lab05.iwae_bound", iwae_cases, iwae_bound, rtol=1e-7, atol=1e-6,
                  describe="k = 1 and 64, and log-weights near -3000 nats where exp() underflows",
                  mistakes=(("logsumexp without the - log k: the log of the sum of the weights, not of their mean",
                             lambda a, b, c: torch.logsumexp(a + b - c, dim=0)),
                            ("the mean of the log-weights: that is the ELBO, not the importance-weighted bound",
                             lambda a, b, c: (a + b - c).mean(0)))))
register(Exercise("lab05.build_vae", build_vae_cases, no_reference, compare=train_compare, judged=True,
                  describe=f"trained {TRAIN_STEPS} steps on Fashion-MNIST, its FD below {TRAIN_FACTOR:g} x the untrained one"))
register(Exercise("lab05.interpolate", interpolate_cases, interpolate, rtol=1e-7, atol=1e-9,
                  describe="endpoints included, evenly spaced",
                  mistakes=(("t in float32 (torch.linspace's default dtype) against float64 codes: pass "
                             "dtype=z0.dtype",
                             lambda z0, z1, n: (1 - torch.linspace(0, 1, n)[:, None]) * z0
                             + torch.linspace(0, 1, n)[:, None] * z1),
                            ("t = i / steps: the last point stops short of z1; t = i / (steps - 1)",
                             lambda z0, z1, n: torch.stack([lerp(z0, z1, i / n) for i in range(n)])))))
