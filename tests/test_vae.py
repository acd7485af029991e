"""The VAE (models/vae.py): likelihoods and KL against torch.distributions, the bounds against an exact log p(x)."""
import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from course_lib import PROFILES, setup
from course_lib.models.likelihoods import Bernoulli, DiscretizedLogistic, Gaussian, binarize, to_levels
from course_lib.models.vae import LIKELIHOODS, VAE, VAEConfig, gaussian_kl
from course_lib.recipes.vae import evaluate_vae, train_vae, vae_config
from course_lib.train import TrainConfig

QUIET = TrainConfig(log_every=2, progress=False)


def small(likelihood="logistic256", size=8, **changes):
    return VAEConfig(**{"image_size": size, "width": 4, "z_dim": 4, "likelihood": likelihood, **changes})


def images(n=16, size=8, seed=0, levels=256):
    """Random images on the grid k / (levels - 1), as course_lib.data gives them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, 1, size, size), generator=g).float() / (levels - 1)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- likelihoods against trusted references ---------------------------------------------------------------------
def test_bernoulli_matches_torch_distributions():
    g = gen()
    logits, x = 4 * torch.randn(5, 1, 3, 3, generator=g), torch.randint(0, 2, (5, 1, 3, 3), generator=g).float()
    want = D.Bernoulli(logits=logits.double()).log_prob(x.double()).flatten(1).sum(1)
    assert torch.allclose(Bernoulli().log_prob(logits, x).double(), want, atol=1e-4)
    assert torch.isfinite(Bernoulli().log_prob(torch.full((1, 1, 2, 2), 80.0), torch.zeros(1, 1, 2, 2))).all()


@pytest.mark.parametrize("sigma", [0.3, None])
def test_gaussian_matches_torch_distributions_with_fixed_or_learned_sigma(sigma):
    g = gen()
    mu, x = torch.rand(4, 1, 3, 3, generator=g), torch.rand(4, 1, 3, 3, generator=g)
    lik = Gaussian(sigma=sigma)
    s = 0.3 if sigma is not None else 0.1  # a learned sigma starts at 0.1
    want = D.Normal(mu.double(), s).log_prob(x.double()).flatten(1).sum(1)
    assert torch.allclose(lik.log_prob(mu, x).double(), want, atol=1e-4)
    assert (lik.log_sigma is None) == (sigma is not None), "only a learned sigma is a parameter"
    if sigma is None:
        lik.log_prob(mu, x).sum().backward()
        assert lik.log_sigma.grad is not None and float(lik.log_sigma.grad) != 0.0


def logistic_reference(mu, log_s, k):
    """P(level k) = F(upper edge) - F(lower edge) of a logistic on [-1, 1], tails in the end bins; float64."""
    y = 2 * k / 255 - 1
    cdf = lambda t: torch.sigmoid((t - mu) / torch.exp(log_s))  # noqa: E731
    upper = torch.where(k == 255, torch.ones_like(y), cdf(y + 1 / 255))
    lower = torch.where(k == 0, torch.zeros_like(y), cdf(y - 1 / 255))
    return torch.log(upper - lower)


def test_discretized_logistic_matches_the_cdf_differences():
    g = gen()
    # scales where plain CDF differences are still accurate in float64; far tails: the normalisation test below
    mu, log_s = torch.rand(6, 1, 4, 4, generator=g) * 2 - 1, torch.rand(6, 1, 4, 4, generator=g) * 2 - 2.5
    x = images(6, 4)
    x[0, 0, 0] = torch.tensor([0.0, 1.0, 1 / 255, 254 / 255])  # both end bins and their neighbours
    params = torch.cat([mu, log_s], 1)  # (B, 2 C, H, W): the decoder's layout
    want = logistic_reference(mu.double(), log_s.double(), to_levels(x).double()).flatten(1).sum(1)
    assert torch.allclose(DiscretizedLogistic().log_prob(params, x).double(), want, rtol=1e-5)


@pytest.mark.parametrize("mu, log_s", [(0.0, -2.0), (0.93, -5.0), (-3.0, 0.5), (0.2, -7.0), (12.0, -6.0)])
def test_discretized_logistic_is_normalised_over_256_levels(mu, log_s):
    x = (torch.arange(256).float() / 255).reshape(256, 1, 1, 1)  # one pixel, at every level
    params = torch.tensor([mu, log_s]).reshape(1, 2, 1, 1).expand(256, 2, 1, 1)
    log_p = DiscretizedLogistic().log_prob(params, x)  # (256,)
    assert torch.isfinite(log_p).all(), "every level keeps a finite log-probability, far in the tails too"
    assert float(torch.logsumexp(log_p.double(), 0).exp()) == pytest.approx(1.0, abs=1e-5)


def test_discretized_logistic_samples_lie_on_the_grid_and_follow_the_masses():
    params = torch.tensor([0.1, -2.5]).reshape(1, 2, 1, 1).expand(20_000, 2, 1, 1)
    x = DiscretizedLogistic().sample(params, gen(1))
    k = to_levels(x)
    assert torch.allclose(x * 255, k.float(), atol=1e-4), "samples are levels k / 255"
    levels = torch.arange(256).double()
    p = logistic_reference(torch.tensor(0.1).double(), torch.tensor(-2.5).double(), levels).exp()
    assert float(k.double().mean()) == pytest.approx(float((p * levels).sum()), abs=0.5)


def test_gaussian_kl_matches_torch_distributions():
    g = gen()
    mu, logvar = torch.randn(5, 7, generator=g), 2 * torch.randn(5, 7, generator=g)
    want = D.kl_divergence(D.Normal(mu.double(), (0.5 * logvar.double()).exp()), D.Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl(mu, logvar).double(), want, atol=1e-5)
    assert float(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).abs().max()) == 0.0, "q = p: no KL"


# -- reductions ------------------------------------------------------------------------------------------------------
class Sharp(nn.Module):
    """An encoder whose posterior is a point (sigma = e^-20): the ELBO has no sampling noise left."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        mu, logvar = self.encoder(x)
        return mu, torch.full_like(logvar, -40.0)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_loss_sums_over_pixels_and_averages_over_the_batch(name):
    vae = VAE(small(name, binarize=False), seed=0)
    vae.encoder = Sharp(vae.encoder)
    x = binarize(images(8), gen(2)) if name == "bernoulli" else images(8)
    with torch.no_grad():
        one, two = vae.loss(x), vae.loss(torch.cat([x, x]))
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-5), "copies of the batch: the same loss"
    with torch.no_grad():
        terms = vae.elbo(x)
    assert float(one["loss"]) == pytest.approx(float(-(terms["reconstruction"] - terms["kl"]).mean()), rel=1e-5)
    # pixels are summed: an image twice as large (the same pixels twice) has twice the log-likelihood
    lik = vae.likelihood
    params = vae.decoder(vae.encode(x)[0]).detach()
    wide = lik.log_prob(torch.cat([params, params], 3), torch.cat([x, x], 3))
    assert torch.allclose(wide, 2 * lik.log_prob(params, x), rtol=1e-5)


def test_beta_weighs_the_kl_in_the_loss_but_not_in_the_elbo():
    x = images(8)
    a, b = VAE(small(), seed=0), VAE(small(beta=4.0), seed=0)
    a.encoder, b.encoder = Sharp(a.encoder), Sharp(b.encoder)
    with torch.no_grad():
        la, lb = a.loss(x), b.loss(x)
    assert float(la["elbo"]) == pytest.approx(float(lb["elbo"]), rel=1e-6)
    assert float(lb["loss"] - la["loss"]) == pytest.approx(3.0 * float(la["kl"]), rel=1e-4)


# -- the bounds ------------------------------------------------------------------------------------------------------
class LinearEncoder(nn.Module):
    """x -> (A (x - b), logvar), a linear map and a fixed diagonal variance."""

    def __init__(self, a, b, logvar):
        super().__init__()
        self.a, self.b, self.logvar = nn.Parameter(a), nn.Parameter(b), nn.Parameter(logvar)

    def forward(self, x):
        mu = (x.flatten(1) - self.b) @ self.a.T  # (B, z_dim)
        return mu, self.logvar.expand_as(mu)


def linear_gaussian(sigma=0.5, seed=0):
    """x = W z + b + sigma eps, z ~ N(0, I_2), x in R^16 (4x4 images). W has orthogonal columns, so the exact
    posterior N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I, is diagonal: an encoder can be exact."""
    g = gen(seed)
    q, _ = torch.linalg.qr(torch.randn(16, 2, generator=g))
    w, b = q * torch.tensor([2.0, 1.0]), 0.5 + 0.1 * torch.randn(16, generator=g)  # (16, 2), (16,)
    m = w.T @ w + sigma ** 2 * torch.eye(2)  # diagonal
    decoder = nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)))
    with torch.no_grad():
        decoder[0].weight.copy_(w), decoder[0].bias.copy_(b)
    exact = LinearEncoder(torch.linalg.solve(m, w.T), b, torch.log(sigma ** 2 / torch.diagonal(m)))
    vae = VAE(VAEConfig(image_size=4, z_dim=2, likelihood="gaussian", sigma=sigma), encoder=exact, decoder=decoder)
    marginal = D.MultivariateNormal(b.double(), w.double() @ w.double().T + sigma ** 2 * torch.eye(16).double())
    x = b + torch.randn(32, 2, generator=g) @ w.T + sigma * torch.randn(32, 16, generator=g)  # 32 draws of the model
    return vae, x.reshape(32, 1, 4, 4), marginal.log_prob(x.double())


def test_with_the_exact_posterior_iwae_equals_log_p_x_and_the_elbo_does_on_average():
    vae, x, log_px = linear_gaussian()
    with torch.no_grad():
        iwae = vae.iwae_bound(x, 3, gen(2))
        elbo = torch.stack([vae.elbo(x, gen(s))["elbo"] for s in range(200)]).double()  # (200, 32)
    # q = p(z|x): the weight p(x, z) / q(z|x) is p(x) for every z, so every IWAE bound is exact
    assert torch.allclose(iwae.double(), log_px, atol=1e-4)
    # the ELBO's closed-form KL makes it exact only in expectation over z; one draw is off by about 1 nat
    assert float(elbo.mean() - log_px.mean()) == pytest.approx(0.0, abs=0.05)


def test_elbo_below_iwae_which_climbs_with_k_towards_log_p_x():
    vae, x, log_px = linear_gaussian()
    with torch.no_grad():
        vae.encoder.a.mul_(0.6)  # a sloppy posterior: means shrunk towards 0 ...
        vae.encoder.logvar.add_(1.0)  # ... and too wide
        elbo = torch.stack([vae.elbo(x, gen(s))["elbo"] for s in range(50)]).double().mean()
        iwae_1 = torch.stack([vae.iwae_bound(x, 1, gen(100 + s)) for s in range(50)]).double().mean()
        bounds = {k: vae.iwae_bound(x, k, gen(k), chunk=16).double().mean() for k in (1, 3, 10, 300)}
    gap = float(log_px.mean() - elbo)
    assert gap > 1.0, f"a sloppy posterior leaves a gap, got {gap:.3f} nats"
    assert float(iwae_1) == pytest.approx(float(elbo), abs=0.1 * gap), "IWAE_1 is the ELBO, with a sampled KL"
    assert float(bounds[1]) < float(bounds[3]) < float(bounds[10]) < float(bounds[300]) <= float(log_px.mean()) + 0.02
    assert float(log_px.mean() - bounds[300]) < 0.05 * gap, "k = 300 closes the gap"


def test_iwae_is_above_the_elbo_and_grows_with_k_on_a_conv_vae():
    vae = VAE(small(), seed=0)
    x = images(32, levels=17)
    with torch.no_grad():
        elbo = float(torch.stack([vae.elbo(x, gen(s))["elbo"] for s in range(10)]).mean())
        bounds = [float(vae.iwae_bound(x, k, gen(k)).mean()) for k in (1, 8, 64)]
    assert elbo <= bounds[1] < bounds[2], f"ELBO {elbo:.2f}, IWAE_1, 8, 64: {bounds}"
    with pytest.raises(ValueError, match="k is the number of importance samples"):
        vae.iwae_bound(x, 0)


# -- the process -------------------------------------------------------------------------------------------------------
def test_the_vae_api_has_the_shapes_and_ranges_it_promises():
    """(The process contract, seeding and bf16 are tested for every family in test_models.py.)"""
    vae = VAE(small(), seed=3)
    a = vae.sample(5, generator=gen(1))
    assert a.shape == (5, 1, 8, 8) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0, "sample() is in [0, 1]"
    drawn = vae.sample(5, generator=gen(1), mean=False)
    assert torch.allclose(drawn * 255, torch.round(drawn * 255), atol=1e-4), "a draw from p(x|z) is on the levels"
    mu, logvar = vae.encode(images(3))
    assert mu.shape == logvar.shape == (3, 4) and mu.dtype == torch.float32
    assert vae.decode(mu).shape == (3, 1, 8, 8) and vae.reconstruct(images(3)).shape == (3, 1, 8, 8)
    terms = vae.elbo(images(3))
    assert terms["kl_per_dim"].shape == (3, 4) and all(terms[k].shape == (3,) for k in ("elbo", "reconstruction", "kl"))
    assert torch.allclose(terms["elbo"], terms["reconstruction"] - terms["kl"])
    assert vae.bits_per_dim(images(3), gen(0)).shape == (3,)
    for size, z_dim in ((28, 2), (8, 2)):  # the 2D latent of the decoded-manifold plot, at both sizes
        v = VAE(small(size=size, z_dim=z_dim), seed=0)
        assert v.sample(2, generator=gen()).shape == (2, 1, size, size) and v.encode(images(2, size))[0].shape == (2, 2)


def test_dynamic_binarisation_draws_afresh_each_batch():
    vae = VAE(small("bernoulli"), seed=0)
    assert vae.config.binarize and not VAEConfig().binarize, "binarize defaults to on exactly for bernoulli"
    x = torch.full((64, 1, 8, 8), 0.3)
    a, b = vae.prepare(x), vae.prepare((x, torch.zeros(64)))
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)
    assert float(torch.cat([a, b]).mean()) == pytest.approx(0.3, abs=0.03)
    assert torch.equal(VAE(small(), seed=0).prepare(x), x), "no binarisation for the 256-level likelihood"


def test_errors_say_how_to_fix():
    with pytest.raises(ValueError, match=r"Choose one of \['bernoulli', 'gaussian', 'logistic256'\]"):
        VAEConfig(likelihood="laplace")
    with pytest.raises(ValueError, match="multiple of 4"):
        VAEConfig(image_size=10)
    with pytest.raises(ValueError, match="Leave it None"):
        VAEConfig(sigma=0.1)
    vae = VAE(small(), seed=0)
    with pytest.raises(ValueError, match=r"expects images in \[0, 1\].*divide by 255"):
        vae.elbo(images(2) * 255)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        vae.loss(images(2) * 2 - 1)
    with pytest.raises(ValueError, match="binarize=True"):
        VAE(small("bernoulli", binarize=False), seed=0).elbo(images(2))
    with pytest.raises(ValueError, match="likelihood='logistic256'"):
        VAE(small("gaussian"), seed=0).bits_per_dim(images(2))


def test_vae_config_takes_size_and_width_from_the_course():
    course = setup(profile="smoke", quiet=True)
    c = vae_config(course, "digits", likelihood="bernoulli", beta=2.0)
    assert (c.image_size, c.width, c.likelihood, c.beta, c.binarize) == (8, course.profile.width, "bernoulli", 2.0, True)
    assert vae_config(course).image_size == 28


@pytest.mark.parametrize("name", ["logistic256", "bernoulli"])
def test_a_short_run_on_digits_lowers_the_loss(name):
    course = setup(profile="smoke", quiet=True)
    data = course.load_data("digits", "train")
    vae = VAE(vae_config(course, "digits", likelihood=name), seed=0)
    run = train_vae(course, vae, data, steps=150, snapshots=3, train_config=TrainConfig(log_every=10, progress=False))
    first, last = run.history["loss"][0], run.history["loss"][-1]
    assert last < 0.9 * first, f"the loss must fall ({first:.1f} -> {last:.1f})"
    assert [s for s, _, _ in run.snapshots] == [0, 50, 100, 150]
    assert run.snapshots[-1][1].shape == run.snapshots[-1][2].shape == (course.profile.n_show, 1, 8, 8)
    test = course.load_data("digits", "test").images
    test = binarize(test, gen(5)) if vae.config.binarize else test
    figures = evaluate_vae(vae, test, k=8)
    assert figures["elbo"] <= figures["iwae"] and figures["n"] == len(test) and figures["k"] == 8
    assert ("bpd" in figures) == (name == "logistic256")


def test_from_checkpoint_and_load_or_train_round_trip(tmp_path):
    course = setup(profile="smoke", quiet=True)
    data = course.load_data("digits", "train", size=128)
    config = small("gaussian")  # a learned sigma: the likelihood's own parameter is saved too
    path = tmp_path / "runs" / "vae.pt"
    first = train_vae(course, VAE(config, seed=2), data, steps=4, checkpoint=path, snapshots=2, train_config=QUIET)
    assert float(first.model.likelihood.log_sigma.detach()) != math.log(0.1), "sigma was trained"
    again = VAE.from_checkpoint(path)
    assert type(again) is VAE and again.config == config and again.seed == 2
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.state_dict().values()))
    assert torch.equal(first.model.sample(6, generator=gen(5)), again.sample(6, generator=gen(5)))
    loaded = train_vae(course, VAE(config, seed=2), data, steps=4, checkpoint=path, snapshots=2, train_config=QUIET)
    assert loaded.trainer.status == "loaded" and [s for s, _, _ in loaded.snapshots] == [0, 4]
    assert torch.equal(loaded.snapshots[-1][1], first.snapshots[-1][1])


def test_vae_benches_are_found_and_report_the_figures():
    from course_lib.bench import find_benchmarks
    from course_lib.recipes.vae import bench_vae_digits

    assert {"vae", "vae-digits"} <= set(find_benchmarks())
    # smoke, shortened: 60 steps and 128 images to measure (smoke's 150 and 256 take several times longer)
    course = setup(profile=PROFILES["smoke"].scaled(min_steps=60, eval_size=128), quiet=True)
    out = bench_vae_digits(course)
    for key in ("test_elbo_nats", "test_bpd", "iwae_nats", "iwae_k", "binarised_elbo_nats", "fd", "precision",
                "recall", "train_seconds", "images_per_second", "eval_n"):
        assert key in out, key
    assert out["steps"] == course.profile.min_steps == 60, "8 batches of 64, raised to the profile's min_steps"
    assert out["iwae_nats"] >= out["test_elbo_nats"] - 1.0 and out["test_kl_nats"] > 0
    assert out["test_bpd"] == pytest.approx(-out["test_elbo_nats"] / (64 * math.log(2)), rel=1e-3)
    # The figures say it learned: the held-out ELBO of the same network untrained (about -217 nats; -197 after
    # 60 steps), and on binarised digits a fair coin per pixel, 64 ln 2 = 44.4 nats (-33 after 60 steps).
    test = course.load_data("digits", "test")
    untrained = evaluate_vae(VAE(vae_config(course, "digits"), seed=course.seed), test.images, k=1,
                             generator=gen(4))["elbo"]
    assert out["test_elbo_nats"] > untrained + 10, f"ELBO {out['test_elbo_nats']} vs {untrained:.1f} untrained"
    assert out["binarised_elbo_nats"] > -64 * math.log(2) + 5, f"binarised ELBO {out['binarised_elbo_nats']}"
    assert out["eval_n"] == 128


def test_match_prior_scale_moves_only_the_kl_and_never_lowers_the_elbo():
    """z -> c z with the decoder taking z / c: the same reconstruction with the same noise, a KL no larger, and
    codes whose second moment is the prior's, E[mu^2 + sigma^2] = 1 in every dimension."""
    vae = VAE(VAEConfig(image_size=8, z_dim=3, width=4), seed=0)
    with torch.no_grad():
        vae.encoder.net[-1].weight[:3] *= 4.0  # codes spread wider than the prior, as after training
        vae.encoder.net[-1].bias[3:] -= 3.0
    x = torch.rand(64, 1, 8, 8)
    before = vae.elbo(x, torch.Generator().manual_seed(0))
    c = vae.match_prior_scale(x)
    after = vae.elbo(x, torch.Generator().manual_seed(0))
    assert torch.allclose(after["reconstruction"], before["reconstruction"], atol=1e-3)
    assert after["kl"].mean() < before["kl"].mean() - 1 and (c - 1).abs().max() > 0.1
    mu, logvar = vae.encode(x)
    assert torch.allclose(mu.pow(2).mean(0) + logvar.exp().mean(0), torch.ones(3), atol=1e-4)
    vae.match_prior_scale(x)  # a second time changes nothing
    assert torch.allclose(vae.elbo(x, torch.Generator().manual_seed(0))["kl"], after["kl"], atol=1e-4)
