"""Toy densities, GAN losses, the mode metric and the ring GAN, against torch references."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import setup
from course_lib.train import Trainer, TrainConfig
from course_lib.data import Batches
from course_lib.distributions import Mixture
from course_lib.models.gan import discriminator_loss, generator_loss
from course_lib.models.toy_gan import ToyGAN
from course_lib.recipes.toy_gan import BASELINE, REMEDY, mode_coverage, ring_metrics, train_ring_gan
from course_lib.models.toy_gan import ToyGANConfig as GANConfig

D = torch.distributions


def reference_mixture(m: Mixture) -> D.Distribution:
    comp = D.Independent(D.Normal(m.means, m.stds[:, None].expand_as(m.means)), 1)
    return D.MixtureSameFamily(D.Categorical(probs=m.weights), comp)


@pytest.mark.parametrize("mixture", [Mixture([0.3, 0.7], [-2.0, 1.0], [0.5, 0.8]), Mixture.gaussian(0.5, 2.0),
                                     Mixture.ring(8, 2.0, 0.05)])
def test_mixture_log_prob_matches_torch_distributions(mixture):
    x = reference_mixture(mixture).sample((500,))
    assert torch.allclose(mixture.log_prob(x), reference_mixture(mixture).log_prob(x), atol=1e-10)


def test_mixture_1d_accepts_flat_input_and_samples_match_moments():
    m = Mixture([0.3, 0.7], [-2.0, 1.0], [0.5, 0.8])
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    assert torch.equal(m.log_prob(x), m.log_prob(x[:, None]))
    s = m.sample(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert s.shape == (100_000, 1)
    assert abs(float(s.mean()) - float(m.mean()[0])) < 5 * math.sqrt(float(m.variance()[0]) / 1e5)
    assert abs(float(s.var()) - float(m.variance()[0])) < 0.03
    same = m.sample(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(same, m.sample(10, generator=torch.Generator().manual_seed(1)))


def test_losses_equal_bce_with_logits_and_are_stable():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, generator=g) * 3, torch.randn(30, generator=g) * 3
    want = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    assert torch.allclose(discriminator_loss(real, fake), want, atol=1e-6)
    assert torch.allclose(generator_loss(fake), F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)), atol=1e-6)
    assert torch.allclose(generator_loss(fake, saturating=True), torch.log(1 - torch.sigmoid(fake)).mean(), atol=1e-5)
    huge = torch.tensor([300.0, -300.0])
    assert torch.isfinite(discriminator_loss(huge, huge)) and torch.isfinite(generator_loss(huge, saturating=True))


def test_generator_loss_gradients_wrt_logits():
    a = torch.linspace(-6, 6, 25, requires_grad=True)
    (sat,) = torch.autograd.grad(generator_loss(a, saturating=True) * len(a), a)
    (ns,) = torch.autograd.grad(generator_loss(a) * len(a), a)
    d = torch.sigmoid(a).detach()
    assert torch.allclose(sat, -d, atol=1e-6) and torch.allclose(ns, -(1 - d), atol=1e-6)


def test_mode_coverage_by_hand():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    samples = torch.tensor([[0.1, 0.0], [0.0, 0.1], [9.9, 0.0], [5.0, 5.0], [0.0, 10.5]])
    # within 0.2: the first three; mode 0 has 2, mode 1 has 1, mode 2 none (0.5 away)
    assert mode_coverage(samples, centers, 0.2, 1) == (2, 0.6)
    assert mode_coverage(samples, centers, 0.2, 2) == (1, 0.6)
    assert mode_coverage(samples, centers, 1.0, 1) == (3, 0.8)


def test_ring_metrics_on_real_and_collapsed_samples():
    ring = Mixture.ring()
    real = ring.sample(20_000, generator=torch.Generator().manual_seed(0))
    m = ring_metrics(real, ring)
    p = 1 - math.exp(-4.5)  # P(distance <= 3 sigma) for a 2D Gaussian (Rayleigh)
    assert m["modes"] == 8 and abs(m["high_quality"] - p) < 5 * math.sqrt(p * (1 - p) / 20_000)
    one = Mixture([1.0], ring.means[:1], [0.05]).sample(1000, generator=torch.Generator().manual_seed(1))
    assert ring_metrics(one, ring)["modes"] == 1


def test_toy_gan_phases_train_and_leave_global_rng_alone():
    state = torch.get_rng_state()
    gan = ToyGAN(GANConfig(hidden=16, depth=2, r1=1.0, d_steps=2), seed=3)
    assert torch.equal(state, torch.get_rng_state()), "building the GAN must not reseed the global RNG"
    same = ToyGAN(GANConfig(hidden=16, depth=2), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(gan.G.parameters(), same.G.parameters()))
    data = Mixture.ring().sample(256, generator=torch.Generator().manual_seed(0))
    phases = gan.phases()
    assert [p.name for p in phases] == ["d_loss", "g_loss"] and phases[1].every == 2
    out = gan.discriminator_loss(data[:32])
    assert {"d_loss", "d_real", "d_fake", "r1"} <= set(out) and out["r1"] > 0
    hist = Trainer(gan, phases, train_config=TrainConfig(log_every=5, progress=False)).fit(Batches(data, 32, seed=0), steps=10)
    assert len(hist["d_loss"]) == 2 and all(math.isfinite(v) for v in hist["d_loss"] + hist["g_loss"])
    assert gan.sample(7).shape == (7, 2)


def test_custom_losses_are_used():
    calls = []

    def d_loss(r, f):
        calls.append("d")
        return discriminator_loss(r, f)
    gan = ToyGAN(GANConfig(hidden=8, depth=1), d_loss=d_loss, g_loss=lambda f: generator_loss(f))
    gan.discriminator_loss(torch.zeros(4, 2))
    assert calls == ["d"]


def test_train_ring_gan_short_run_and_configs():
    course = setup(profile="smoke", quiet=True)
    run = train_ring_gan(course, GANConfig(hidden=16, depth=2), steps=20, snapshots=2, progress=False)
    assert [s for s, _ in run.snapshots] == [0, 10, 20]
    assert run.snapshots[-1][1].shape == (2000, 2)
    assert set(run.metrics) >= {"modes", "high_quality"} and 0 <= run.metrics["modes"] <= 8
    assert BASELINE.loss == REMEDY.loss == "non-saturating" and BASELINE.d_steps == REMEDY.d_steps == 1
    assert BASELINE.lr_d > BASELINE.lr_g and REMEDY.lr_d == REMEDY.lr_g and BASELINE.pack == 1 and REMEDY.pack == 2


def test_ring_gan_bench_is_found():
    from course_lib.bench import find_benchmarks
    assert "ring-gan" in find_benchmarks()


def test_packed_discriminator_gives_each_group_one_logit():
    gan = ToyGAN(GANConfig(hidden=8, depth=1, pack=2), seed=0)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    logits = gan.logits(x)  # (6,): pairs (0, 1), (2, 3), (4, 5)
    by_hand = gan.D.net(x.reshape(3, 4))[:, 0]  # the MLP on each pair's 4 coordinates
    assert torch.equal(logits, by_hand.repeat_interleave(2))
    assert torch.allclose(discriminator_loss(logits, logits), discriminator_loss(by_hand, by_hand))
    with pytest.raises(ValueError, match="divisible"):
        gan.logits(x[:5])
