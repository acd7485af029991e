"""DCGAN (models/dcgan.py) and the GAN loss family (models/gan.py), against hand computations and autograd."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_lib import PROFILES, setup
from course_lib.latent import lerp, slerp
from course_lib.models.dcgan import DCGAN, DCGANConfig, Discriminator, Generator
from course_lib.recipes.dcgan import dcgan_config, loss_config, train_dcgan
from course_lib.models.gan import GAN, LOSSES, WGAN_GP, GANConfig
from course_lib.train import TrainConfig

QUIET = TrainConfig(log_every=2, progress=False)
ALL_LOSSES = sorted(LOSSES)


def small(loss="non-saturating", size=8, **changes):
    return DCGANConfig(**loss_config(loss, **{"image_size": size, "width": 4, "z_dim": 8, **changes}))


def digits_like(n=32, size=8, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


# -- the networks --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [28, 8])
@pytest.mark.parametrize("changes", [{}, {"g_batchnorm": False, "d_pool": True}, {"d_norm": "layer"}, {"d_norm": "none"}])
def test_shapes_for_28_and_8(size, changes):
    c = DCGANConfig(image_size=size, width=4, z_dim=8, **changes)
    g, d = Generator(c), Discriminator(c)
    with torch.no_grad():
        x = g(torch.randn(5, 8))
    assert x.shape == (5, 1, size, size) and float(x.abs().max()) <= 1.0, "G: (B, z_dim) -> (B, 1, S, S) in [-1, 1]"
    assert d(x).shape == (5, 1, 1, 1) and d(torch.zeros(3, 1, size, size)).shape == (3, 1, 1, 1)


def test_radford_guidelines_hold_in_the_default_networks():
    c = DCGANConfig(width=4)
    g, d = Generator(c), Discriminator(c)
    kinds = lambda net: {type(m) for m in net.modules()}  # noqa: E731
    assert nn.Linear not in kinds(g) | kinds(d), "no fully connected hidden layers"
    assert not any(issubclass(k, (nn.MaxPool2d, nn.AvgPool2d)) for k in kinds(d)), "strided convs, no pooling"
    assert nn.ConvTranspose2d in kinds(g) and nn.BatchNorm2d in kinds(g) and nn.ReLU in kinds(g)
    assert isinstance(g.net[-1], nn.Tanh) and nn.LeakyReLU in kinds(d) and nn.ReLU not in kinds(d)
    assert not isinstance(d.net[1], nn.BatchNorm2d), "no batchnorm on D's input layer"
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert all(abs(float(m.weight.std()) - 0.02) < 0.005 for m in convs), "weights ~ N(0, 0.02)"
    assert nn.MaxPool2d in kinds(Discriminator(DCGANConfig(width=4, d_pool=True))), "the pooling ablation pools"


def test_width_and_size_come_from_the_course():
    course = setup(profile="smoke", quiet=True)
    c = dcgan_config(course, "digits", loss="hinge")
    assert (c.image_size, c.width, c.loss) == (8, course.profile.width, "hinge")
    assert dcgan_config(course).image_size == 28


def test_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="gp=10.0"):
        GANConfig(loss="wgan-gp")
    with pytest.raises(ValueError, match="d_norm='layer'"):
        DCGANConfig(gp=10.0)
    with pytest.raises(ValueError, match="multiple of 4"):
        DCGANConfig(image_size=30)
    with pytest.raises(ValueError, match="Choose one of"):
        loss_config("wasserstein")
    assert GANConfig(**WGAN_GP).d_steps == 5 and DCGANConfig(**loss_config("wgan-gp")).d_norm == "layer"


# -- the loss family against hand computations -------------------------------------------------------------
REAL, FAKE = [2.0, -1.0, 0.5], [-3.0, 0.0, 1.5]


def mean(xs):
    return sum(xs) / len(xs)


def sigmoid(a):
    return 1 / (1 + math.exp(-a))


BCE_D = mean([-math.log(sigmoid(a)) for a in REAL]) + mean([-math.log(1 - sigmoid(a)) for a in FAKE])
HAND = {  # (discriminator loss, generator loss) on REAL, FAKE, computed with plain floats
    "non-saturating": (BCE_D, mean([-math.log(sigmoid(a)) for a in FAKE])),
    "saturating": (BCE_D, mean([math.log(1 - sigmoid(a)) for a in FAKE])),
    "hinge": ((0 + 2 + 0.5) / 3 + (0 + 1 + 2.5) / 3, 0.5),  # relu(1 - r), relu(1 + f); -mean f
    "least-squares": (0.5 * (1 + 4 + 0.25) / 3 + 0.5 * (9 + 0 + 2.25) / 3, 0.5 * (16 + 1 + 0.25) / 3),
    "wgan-gp": (mean(FAKE) - mean(REAL), -mean(FAKE)),  # -1.0 and 0.5
}


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_every_loss_against_a_hand_computed_reference(loss):
    assert set(HAND) == set(LOSSES), "a new loss needs its hand-computed reference here"
    d_loss, g_loss = LOSSES[loss]
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    assert float(d_loss(real, fake)) == pytest.approx(HAND[loss][0], abs=1e-6)
    assert float(g_loss(fake)) == pytest.approx(HAND[loss][1], abs=1e-6)


class QuadraticCritic(nn.Module):
    """D(x) = <w, x> + c ||x||^2 on flattened x: its input gradient is w + 2 c x, known by hand."""

    def __init__(self, dim):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, dim))
        self.c = 0.3

    def forward(self, x):
        flat = x.reshape(len(x), -1)
        return flat @ self.w + self.c * flat.pow(2).sum(1)


def test_gradient_penalty_against_the_hand_gradient_and_its_own_autograd():
    critic = QuadraticCritic(16)
    gan = GAN(nn.Identity(), critic, GANConfig(**WGAN_GP))
    g = torch.Generator().manual_seed(0)
    real, fake, eps = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g), torch.rand(6, generator=g)
    penalty, norms = gan.gradient_penalty(real, fake, eps=eps)
    xhat = (eps[:, None] * real.reshape(6, -1) + (1 - eps[:, None]) * fake.reshape(6, -1)).detach()
    grad = critic.w.detach() + 2 * critic.c * xhat  # (6, 16), the gradient of D at each interpolate
    want_norms = grad.norm(dim=1)
    assert torch.allclose(norms, want_norms, atol=1e-5)
    assert float(penalty) == pytest.approx(10.0 * float((want_norms - 1).pow(2).mean()), rel=1e-5)
    # create_graph: the penalty's gradient reaches the critic's weights, d/dw = gp mean 2 (n - 1) grad / n
    (dw,) = torch.autograd.grad(penalty, critic.w)
    want_dw = 10.0 * (2 * (want_norms - 1)[:, None] * grad / want_norms[:, None]).mean(0)
    assert torch.allclose(dw, want_dw, atol=1e-5)


def test_wgan_gp_discriminator_loss_adds_the_penalty_and_logs_the_estimate():
    gan = DCGAN(small("wgan-gp"), seed=1)
    out = gan.discriminator_loss(digits_like())
    assert {"d_loss", "gp", "grad_norm", "wasserstein", "score_real", "score_fake"} <= set(out)
    assert "d_real" not in out, "a critic's score is not a probability: no sigmoid is logged"
    assert float(out["wasserstein"]) == pytest.approx(float(out["score_real"] - out["score_fake"]), abs=1e-6)
    assert float(out["d_loss"]) == pytest.approx(float(-out["wasserstein"] + out["gp"]), abs=1e-5)
    assert [p.every for p in gan.phases()] == [1, 5], "5 critic steps per generator step"


def test_spectral_norm_bounds_the_largest_singular_value():
    gan = DCGAN(small("hinge", size=28, spectral_norm=True, d_norm="none"), seed=0)
    layers = [m for m in gan.D.modules() if isinstance(m, nn.Conv2d)]
    assert len(layers) == 3 and all(hasattr(m, "parametrizations") for m in layers)
    with torch.no_grad():
        for m in layers:
            m.parametrizations.weight.original.mul_(100.0)  # raw weights far from norm 1
    gan.D.train()
    x = torch.randn(4, 1, 28, 28)
    for _ in range(30):  # one power iteration per forward pass
        gan.D(x)
    gan.D.eval()
    for m in layers:
        w = m.weight.detach().reshape(m.out_channels, -1)  # W / sigma(W), as the layer uses it
        raw = m.parametrizations.weight.original.detach().reshape(m.out_channels, -1)
        assert float(torch.linalg.matrix_norm(raw, ord=2)) > 5.0
        assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, abs=0.02)
    assert not hasattr(DCGAN(small(), seed=0).D.net[0], "parametrizations")


# -- the process ------------------------------------------------------------------------------------------
def test_dcgan_maps_the_data_range():
    """(The process contract, seeding and bf16 are tested for every family in test_models.py.)"""
    gan = DCGAN(small(spectral_norm=True), seed=3)
    a = gan.sample(5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 1, 8, 8) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0, "sample() is in the data's [0, 1]"
    x = digits_like(4)
    assert torch.allclose(gan.to_data(gan.from_data(x)), x) and float(gan.from_data(x).min()) < 0


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_a_few_steps_on_digits_keep_every_loss_finite(loss):
    course = setup(profile="smoke", quiet=True)
    data = course.load_data("digits", "train", size=256)
    gan = DCGAN(small(loss), seed=0)
    # windows of 5 steps: each holds a generator step, also with WGAN-GP's 5 critic steps per generator step
    run = train_dcgan(course, gan, data, steps=10, snapshots=0, train_config=TrainConfig(log_every=5, progress=False))
    assert run.trainer.step == 10 and len(run.history["g_loss"]) == 2
    assert all(math.isfinite(v) for k in ("d_loss", "g_loss") for v in run.history[k])


def test_training_on_digits_halves_the_frechet_distance():
    from course_lib.metrics import evaluate

    course = setup(profile="smoke", quiet=True)
    data = course.load_data("digits", "train")
    gan = DCGAN(dcgan_config(course, "digits"), seed=0)
    n = course.profile.eval_size

    def fd():
        gan.eval()
        return evaluate(gan.sample(n, generator=course.generator(3)), "digits", profile=course.profile, n=n)["fd"]

    untrained = fd()
    run = train_dcgan(course, gan, data, steps=240, snapshots=3, train_config=TrainConfig(log_every=20, progress=False))
    trained = fd()
    first, last = run.history["d_loss"][0], run.history["d_loss"][-1]
    assert last < first, f"D's loss must fall from its start near log 4 ({first:.3f} -> {last:.3f})"
    assert trained < 0.5 * untrained, f"FD {trained:.1f} is not under half the untrained generator's {untrained:.1f}"
    assert [s for s, _ in run.snapshots] == [0, 80, 160, 240]
    assert run.snapshots[-1][1].shape == (course.profile.n_show, 1, 8, 8)


def test_from_checkpoint_and_load_or_train_round_trip(tmp_path):
    course = setup(profile="smoke", quiet=True)
    data = course.load_data("digits", "train", size=128)
    config = small("hinge", ema=0.9, spectral_norm=True)
    path = tmp_path / "runs" / "dcgan.pt"
    first = train_dcgan(course, DCGAN(config, seed=2), data, steps=4, checkpoint=path, snapshots=2, train_config=QUIET)
    again = DCGAN.from_checkpoint(path)
    assert type(again) is DCGAN and again.config == config and again.seed == 2
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.state_dict().values()))
    again.eval()
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(first.model.sample(6, generator=g()), again.sample(6, generator=g()))
    loaded = train_dcgan(course, DCGAN(config, seed=2), data, steps=4, checkpoint=path, snapshots=2, train_config=QUIET)
    assert loaded.trainer.status == "loaded" and [s for s, _ in loaded.snapshots] == [0, 4]
    assert torch.equal(loaded.snapshots[-1][1], first.snapshots[-1][1])


def test_dcgan_benches_are_found_and_report_the_figures():
    from course_lib.bench import find_benchmarks
    from course_lib.recipes.dcgan import bench_dcgan_digits

    assert {"dcgan", "dcgan-digits"} <= set(find_benchmarks())
    # smoke, shortened: 60 steps and 128 images to measure (smoke's 150 and 256 take several times longer)
    out = bench_dcgan_digits(setup(profile=PROFILES["smoke"].scaled(min_steps=60, eval_size=128), quiet=True))
    for key in ("loss", "train_seconds", "images_per_second", "steps", "fd", "fd_floor", "fd_untrained", "kid",
                "precision", "recall", "coverage", "inception_score", "memorised", "eval_n"):
        assert key in out, key
    assert out["eval_n"] == 128 and out["steps"] == 60
    # The same noise before and after: 60 steps took the FD from about 640 to 350 (halving takes 240 steps,
    # tested above); the floor is real images against real images.
    assert out["fd_floor"] < out["fd"] < 0.8 * out["fd_untrained"], out


def test_smoke_bench_halves_the_untrained_fd(real_data):
    """The smoke target: the trained generator's FD under half the untrained one's, on the real Fashion-MNIST."""
    from course_lib.recipes.dcgan import bench_dcgan

    out = bench_dcgan(setup(profile="smoke", quiet=True))
    assert out["fd"] < out["fd_untrained"] / 2, f"FD {out['fd']} after {out['steps']} steps, untrained {out['fd_untrained']}"


def test_ring_gan_still_uses_the_probability_losses():
    """The toy GAN (lecture 01) logs D's probabilities as before; nothing new switches on by default."""
    from course_lib.models.toy_gan import ToyGAN, ToyGANConfig

    gan = ToyGAN(ToyGANConfig(hidden=8, depth=1))
    out = gan.discriminator_loss(torch.randn(8, 2))
    assert set(out) == {"d_loss", "d_real", "d_fake"} and not gan.config.spectral_norm and gan.config.gp == 0


# -- latent space --------------------------------------------------------------------------------------------
def test_slerp_rotates_by_a_fraction_of_the_angle():
    angles = torch.tensor([0.3, 1.2, 2.5], dtype=torch.float64)
    z0 = torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64)
    z1 = torch.stack([torch.cos(angles), torch.sin(angles)], 1)  # unit vectors at those angles
    for t in (0.0, 0.25, 0.5, 1.0):
        want = torch.stack([torch.cos(t * angles), torch.sin(t * angles)], 1)  # rotated by t times the angle
        assert torch.allclose(slerp(z0, z1, t), want, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 64, generator=g, dtype=torch.float64), torch.randn(5, 64, generator=g, dtype=torch.float64)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)  # equal norms: slerp keeps them
    assert torch.allclose(slerp(a, b, 0.37).norm(dim=1), a.norm(dim=1), rtol=1e-10)
    assert torch.equal(slerp(a, a.clone(), 0.4), lerp(a, a, 0.4)), "identical rows fall back to lerp, no 0 / 0"
    assert torch.isfinite(slerp(a.float(), a.float() * 2, 0.5)).all()


# -- lab 3: the checks pass the references and fail what they should --------------------------------------
def test_lab03_checks_accept_the_course_networks_and_reject_other_designs():
    from course_lib import check
    from course_lib.harness.lab03 import facts

    def course_g(z_dim, width, size, z):
        return facts(Generator(DCGANConfig(z_dim=z_dim, width=width, image_size=size)), z)
    check("lab03.generator", course_g)
    check("lab03.discriminator", lambda w, s, x: facts(Discriminator(DCGANConfig(width=w, image_size=s)), x))

    class MLPGenerator(nn.Module):  # fully connected with a sigmoid output: never negative
        def __init__(self, z_dim, size):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(z_dim, size * size), nn.Sigmoid(), nn.Unflatten(1, (1, size, size)))

        def forward(self, z):
            return self.net(z)
    with pytest.raises(AssertionError, match=r"a tanh output spans \[-1, 1\]"):
        check("lab03.generator", lambda z_dim, width, size, z: facts(MLPGenerator(z_dim, size), z))
    with pytest.raises(AssertionError, match="downsample with strided convolutions"):
        check("lab03.discriminator",
              lambda w, s, x: facts(Discriminator(DCGANConfig(width=w, image_size=s, d_pool=True)), x))
    with pytest.raises(AssertionError, match="6 scores, one per image"):
        check("lab03.discriminator", lambda w, s, x: facts(nn.Conv2d(1, 1, 3, padding=1), x))


class FunctionalD(nn.Module):
    """A DCGAN discriminator written with torch.nn.functional; `pool`, `squash` and `stride` make the
    designs the guidelines rule out, which a check reading module names could not see ([17] finding 3)."""

    def __init__(self, width: int, size: int, pool: bool = False, squash: str = "", stride: int = 2):
        super().__init__()
        self.pool, self.squash, self.stride = pool, squash, stride
        self.c1 = nn.Conv2d(1, width, 4, 1 if pool else stride, 1 if stride == 2 or pool else 0)
        self.c2 = nn.Conv2d(width, 2 * width, 4, 1 if pool else stride, 1 if stride == 2 or pool else 0)
        self.bn = nn.BatchNorm2d(2 * width)
        self.out = nn.LazyConv2d(1, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x if not self.pool else F.pad(x, (1, 2, 1, 2))), 0.2)  # (B, w, S, S)
        h = F.max_pool2d(h, 2) if self.pool else h  # (B, w, S/2, S/2)
        h = F.leaky_relu(self.bn(self.c2(h if not self.pool else F.pad(h, (1, 2, 1, 2)))), 0.2)
        h = F.max_pool2d(h, 2) if self.pool else h
        score = self.out(h).mean((1, 2, 3))  # (B,)
        if self.squash == "sigmoid":
            return torch.sigmoid(score)
        if self.squash == "by hand":  # a sigmoid no function name gives away
            return 1 / (1 + (-score).exp())
        return score


def test_lab03_discriminator_check_reads_behaviour_not_module_names():
    from course_lib import check
    from course_lib.harness.lab03 import facts

    def d(**kw):
        return lambda w, s, x: facts(FunctionalD(w, s, **kw), x)
    check("lab03.discriminator", d())  # functional LeakyReLU and strided convs: the guidelines, honestly met
    with pytest.raises(AssertionError, match=r"it pools \(max_pool2d\)"):
        check("lab03.discriminator", d(pool=True))
    with pytest.raises(AssertionError, match="it calls sigmoid, so its scores are squashed"):
        check("lab03.discriminator", d(squash="sigmoid"))
    with pytest.raises(AssertionError, match="stay within \\[-1, 1\\] even with every weight ten times larger"):
        check("lab03.discriminator", d(squash="by hand"))
    with pytest.raises(AssertionError, match="no convolution has a stride above 1"):
        check("lab03.discriminator", d(stride=1))


def test_lab03_gradient_penalty_and_slerp_checks():
    from course_lib import check
    from course_lib.labs.lab03 import penalty_and_weight_gradient

    def penalty(critic, real, fake, eps):
        e = eps.reshape(-1, *[1] * (real.ndim - 1))
        x = (e * real + (1 - e) * fake).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return (grad.reshape(len(x), -1).norm(dim=1) - 1).pow(2).mean()

    def reported(fn):  # as the lab's check cell reports a penalty
        def both(critic, real, fake, eps):
            value = fn(critic, real, fake, eps)
            grads = torch.autograd.grad(value, list(critic.parameters()))
            return value.detach(), torch.cat([g.flatten() for g in grads])
        return both
    check("lab03.gradient_penalty", reported(penalty))
    check("lab03.gradient_penalty", penalty_and_weight_gradient)
    with pytest.raises(AssertionError, match="differ"):  # the weight of 10 belongs to the config, not here
        check("lab03.gradient_penalty", reported(lambda *a: 10 * penalty(*a)))
    check("lab03.slerp", slerp)
    with pytest.raises(AssertionError, match="differ"):
        check("lab03.slerp", lerp)
