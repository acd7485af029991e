"""The process contract (course_lib.models) met by every family; the generic GAN; load-or-train."""
import dataclasses

import pytest
import torch
from torch import nn

from course_lib import CheckpointError, TrainConfig, Trainer, load_or_train, setup
from course_lib.checkpoint import atomic_write, config_diff, config_from_dict, config_to_dict
from course_lib.data import Batches
from course_lib.distributions import Mixture
from course_lib.models import GenerativeProcess, Process, seeded
from course_lib.models.cgan import CGAN, CGANConfig
from course_lib.models.classifier import Classifier, ClassifierConfig
from course_lib.models.dcgan import DCGAN, DCGANConfig
from course_lib.models.gan import GAN, LOSSES, WGAN_GP, GANConfig
from course_lib.models.pixelcnn import PixelCNN, PixelCNNConfig
from course_lib.models.toy_gan import ToyGAN, ToyGANConfig
from course_lib.models.vae import VAE, VAEConfig

QUIET = TrainConfig(log_every=2, progress=False)


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def ring(n=64):
    return Mixture.ring().sample(n, generator=torch.Generator().manual_seed(0))


class TinyG(nn.Module):
    """z (B, 4) -> images (B, 1, 8, 8); conditional on a label when n_classes is set."""

    def __init__(self, n_classes=None):
        super().__init__()
        self.embed = nn.Embedding(n_classes, 4) if n_classes else None
        self.net = nn.Sequential(nn.Linear(4, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64), nn.Unflatten(1, (1, 8, 8)))

    def forward(self, z, labels=None):
        return self.net(z if labels is None else z + self.embed(labels))


class TinyD(nn.Module):
    """images (B, 1, 8, 8) -> logits (B, 1, 1, 1), as a conv discriminator returns them."""

    def __init__(self, n_classes=None, outputs=1):
        super().__init__()
        self.embed = nn.Embedding(n_classes, 64) if n_classes else None
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, outputs), nn.Unflatten(1, (outputs, 1, 1)))

    def forward(self, x, labels=None):
        return self.net(x if labels is None else x + self.embed(labels).view(-1, 1, 8, 8))


def levels(n=16, size=8, seed=0):
    """Random 8-bit images k / 255, as course_lib.data gives them (the 256-level likelihoods need the grid)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g).float() / 255


def tiny_gan(seed, n_classes=None, **config):
    with seeded(seed):  # your own networks: build them from the seed too
        g, d = TinyG(n_classes), TinyD(n_classes)
    return GAN(g, d, GANConfig(z_dim=4, **config), seed=seed)


def caption_gan(seed=0):
    gan = CGAN(CGANConfig(image_size=8, width=4, z_dim=8, embed_dim=6, dataset="digits", condition="caption"), seed=seed)
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    gan.captioner.fit(x, torch.arange(40) % 10)  # thresholds from data with every class, as train_cgan does
    return gan


# Every family of course_lib.models, small, with a batch it trains on and the condition it samples with:
# name -> (build(seed) -> model, batch, cond for sample() or None).
FAMILIES = {
    "classifier": (lambda s: Classifier(ClassifierConfig(width=4, feature_dim=8), seed=s), images(), None),
    "toy-gan": (lambda s: ToyGAN(ToyGANConfig(hidden=8, depth=1, pack=2), seed=s), ring(), None),
    "gan": (lambda s: tiny_gan(s, None, r1=1.0, ema=0.9), images(), None),
    "gan-conditional": (lambda s: tiny_gan(s, 10, conditional=True), images(), torch.arange(5)),
    "dcgan": (lambda s: DCGAN(DCGANConfig(image_size=8, width=4, z_dim=8, spectral_norm=True, ema=0.9), seed=s),
              levels(), None),
    "dcgan-wgan-gp": (lambda s: DCGAN(DCGANConfig(image_size=8, width=4, z_dim=8, **WGAN_GP, d_norm="layer"), seed=s),
                      levels(), None),
    "cgan-label": (lambda s: CGAN(CGANConfig(image_size=8, width=4, z_dim=8, embed_dim=6, dataset="digits",
                                             d_kind="concat"), seed=s), images(), torch.arange(5) % 10),
    "cgan-caption": (caption_gan, images(), "dark small narrow three"),
    "vae": (lambda s: VAE(VAEConfig(image_size=8, width=4, z_dim=4), seed=s), levels(), None),
    "vae-bernoulli": (lambda s: VAE(VAEConfig(image_size=8, width=4, z_dim=4, likelihood="bernoulli"), seed=s),
                      levels(), None),
    "vae-gaussian": (lambda s: VAE(VAEConfig(image_size=8, width=4, z_dim=4, likelihood="gaussian"), seed=s),
                     levels(), None),
    "pixelcnn-plain": (lambda s: PixelCNN(PixelCNNConfig(image_size=8, variant="plain", levels=16, channels=8,
                                                         n_layers=2, first_kernel=3), seed=s), levels(4), None),
    "pixelcnn-gated": (lambda s: PixelCNN(PixelCNNConfig(image_size=8, levels=16, channels=8, n_layers=2,
                                                         first_kernel=3, n_classes=10), seed=s), images(4), 3),
}
GENERATIVE = [name for name in FAMILIES if name != "classifier"]


def family(name, seed=0):
    build, batch, cond = FAMILIES[name]
    return build(seed), batch, cond


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- the contract ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_meets_the_process_contract(name):
    model, batch, _ = family(name)
    assert isinstance(model, Process) and dataclasses.is_dataclass(model.config)
    assert all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(model.config)), "every config field needs a default"
    assert model.device == torch.device("cpu") and model.seed == 0
    phases = model.phases()
    assert phases and len({p.name for p in phases}) == len(phases)
    for phase in phases:
        out = phase.loss_fn(batch)
        assert phase.name in out and all(v.ndim == 0 and v.dtype == torch.float32 for v in out.values()), \
            {k: (tuple(v.shape), v.dtype) for k, v in out.items()}


@pytest.mark.parametrize("name", GENERATIVE)
def test_every_generative_family_samples_with_one_signature(name):
    """sample(n, generator=None, cond=None): a seeded draw repeats and leaves the global random state alone;
    a conditional model needs cond, an unconditional one refuses it."""
    model, _, cond = family(name)
    assert isinstance(model, GenerativeProcess)
    model.eval()
    state = torch.get_rng_state()
    a = model.sample(5, generator=torch.Generator().manual_seed(1), cond=cond)
    assert torch.equal(state, torch.get_rng_state()), "a seeded draw must leave the global random state alone"
    assert torch.equal(a, model.sample(5, torch.Generator().manual_seed(1), cond)), "a seeded draw must repeat"
    assert len(a) == 5 and torch.isfinite(a).all()
    if cond is None:
        with pytest.raises(ValueError, match="unconditional"):
            model.sample(2, cond=torch.arange(2))
    else:
        with pytest.raises(ValueError, match="cond"):
            model.sample(2)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_initial_weights_come_from_the_seed_only(name):
    build = FAMILIES[name][0]
    state = torch.get_rng_state()
    a = build(3)
    assert torch.equal(state, torch.get_rng_state()), "building a model must not touch the global random state"
    torch.manual_seed(123)  # whatever ran before
    b, c = build(3), build(4)
    assert same_weights(a, b), "the same seed must give the same initial weights"
    assert not same_weights(a, c), "another seed must give other initial weights"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_losses_are_float32_under_bf16_autocast(name):
    """The networks run in bf16 (at least one layer's output is bf16), the losses stay float32, the loop accepts them."""
    model, batch, _ = family(name)
    trainer = Trainer(model, train_config=TrainConfig(amp=True, progress=False, log_every=1))
    dtypes = []
    hooks = [m.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype) if torch.is_tensor(o) else None)
             for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for phase in trainer.phases:
            out = phase.loss_fn(batch)
            assert all(v.dtype == torch.float32 for v in out.values()), {k: v.dtype for k, v in out.items()}
    for h in hooks:
        h.remove()
    assert torch.bfloat16 in dtypes, f"{name}: no layer ran in bf16 under autocast"
    trainer.fit([batch], steps=2)  # and the loop accepts them
    assert trainer.status == "done"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_rebuilds_itself_from_a_checkpoint(tmp_path, name):
    if name.startswith("gan"):
        pytest.skip("a GAN of your own networks cannot rebuild them: test_generic_gan_cannot_rebuild_its_networks")
    model, batch, cond = family(name, seed=5)
    trainer = Trainer(model, train_config=QUIET)
    trainer.fit([batch], steps=2)
    path = trainer.save(tmp_path / "run.pt")
    again = type(model).from_checkpoint(path)
    assert type(again) is type(model) and again.config == model.config and again.seed == 5
    assert same_weights(model, again)
    if name != "classifier":
        model.eval(), again.eval()
        g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
        cond = cond[:3] if torch.is_tensor(cond) else cond
        assert torch.equal(model.sample(3, g(), cond), again.sample(3, g(), cond)), "the rebuilt model draws the same"


def test_seeded_rejects_bad_seeds_and_wrong_config_types():
    with pytest.raises(ValueError, match="non-negative int"):
        with seeded(-1):
            pass
    with pytest.raises(TypeError, match="takes a ClassifierConfig"):
        Classifier(ToyGANConfig())


# -- the generic GAN ------------------------------------------------------------------------------------
def test_gan_config_is_validated():
    with pytest.raises(ValueError, match="Choose one of"):
        GANConfig(loss="hinge-ish")
    for bad in (dict(d_steps=0), dict(ema=1.0), dict(r1=-1.0)):
        with pytest.raises(ValueError):
            GANConfig(**bad)
    assert {"non-saturating", "saturating"} <= set(LOSSES)


def test_gan_phases_give_k_discriminator_steps_per_generator_step():
    gan = GAN(TinyG(), TinyD(), GANConfig(z_dim=4, d_steps=3))
    calls = []
    trainer = Trainer(gan, train_config=QUIET)
    for p in trainer.phases:
        fn = p.loss_fn
        p.loss_fn = lambda b, fn=fn, name=p.name: calls.append(name) or fn(b)
    trainer.fit([images()], steps=6)
    assert calls.count("d_loss") == 6 and calls.count("g_loss") == 2


def test_unconditional_gan_ignores_labels_and_accepts_conv_shaped_logits():
    def build():
        with seeded(0):
            return GAN(TinyG(), TinyD(), GANConfig(z_dim=4))
    x, y = images()
    assert build().logits(x).shape == (16,)
    with_labels, without = build().discriminator_loss((x, y))["d_loss"], build().discriminator_loss(x)["d_loss"]
    assert torch.equal(with_labels, without), "an unconditional GAN must ignore the labels in a batch"
    with pytest.raises(ValueError, match="one logit per example"):
        GAN(TinyG(), TinyD(outputs=2), GANConfig(z_dim=4)).logits(x)


def test_conditional_gan_needs_conditions():
    gan = GAN(TinyG(10), TinyD(10), GANConfig(z_dim=4, conditional=True))
    x, y = images()
    assert set(gan.discriminator_loss((x, y))) >= {"d_loss", "d_real", "d_fake"}
    with pytest.raises(ValueError, match="batches must be"):
        gan.discriminator_loss(x)
    with pytest.raises(ValueError, match="pass cond="):
        gan.sample(4)
    assert gan.sample(4, cond=torch.tensor([0, 1, 2, 3])).shape == (4, 1, 8, 8)


def test_ema_generator_trails_the_generator():
    gan = GAN(TinyG(), TinyD(), GANConfig(z_dim=4, ema=0.5, lr_g=1e-2))
    before = [p.clone() for p in gan.G_ema.parameters()]
    assert not any(p.requires_grad for p in gan.G_ema.parameters())
    Trainer(gan, train_config=QUIET).fit([images()], steps=1)
    for e, old, g in zip(gan.G_ema.parameters(), before, gan.G.parameters()):
        assert torch.allclose(e, 0.5 * old + 0.5 * g)  # one update: halfway to G
    for e, g in zip(gan.G_ema.buffers(), gan.G.buffers()):
        assert torch.equal(e, g)  # batchnorm statistics are copied
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    gan.eval()
    assert torch.equal(gan.sample(3, generator=gen), gan.G_ema(z)), "sample() must use the EMA generator"
    assert GAN(TinyG(), TinyD(), GANConfig(z_dim=4)).G_ema is None


def test_r1_penalty_on_images():
    gan = GAN(TinyG(), TinyD(), GANConfig(z_dim=4, r1=2.0))
    out = gan.discriminator_loss(images())
    assert out["r1"] > 0 and out["d_loss"] > out["r1"]


def test_generic_gan_cannot_rebuild_its_networks(tmp_path):
    gan = GAN(TinyG(), TinyD(), GANConfig(z_dim=4))
    trainer = Trainer(gan, train_config=QUIET)
    path = trainer.save(tmp_path / "gan.pt")
    with pytest.raises(TypeError, match="load_checkpoint"):
        GAN.from_checkpoint(path)


# -- checkpoints carry the config ---------------------------------------------------------------------
def test_config_dict_roundtrip_and_diff():
    c = ToyGANConfig(hidden=7, betas=(0.1, 0.2))
    d = config_to_dict(c)
    assert d["betas"] == [0.1, 0.2] and config_from_dict(ToyGANConfig, d) == c
    assert config_diff(d, config_to_dict(ToyGANConfig(hidden=9, betas=(0.1, 0.2)))) == ["hidden: checkpoint 7, this model 9"]
    with pytest.raises(CheckpointError, match="does not have"):
        config_from_dict(ToyGANConfig, {**d, "widht": 3})


@pytest.mark.parametrize("cls, config", [(Classifier, ClassifierConfig(width=4, feature_dim=8)),
                                         (ToyGAN, ToyGANConfig(hidden=8, depth=1, r1=0.5))])
def test_from_checkpoint_refuses_another_class(tmp_path, cls, config):
    trainer = Trainer(cls(config, seed=5), train_config=QUIET)
    trainer.fit([images() if cls is Classifier else ring()], steps=1)
    path = trainer.save(tmp_path / "run.pt")
    other = ToyGAN if cls is Classifier else Classifier
    with pytest.raises(CheckpointError, match=f"not a .*{other.__name__}"):
        other.from_checkpoint(path)


def test_architecture_error_shows_the_config_difference(tmp_path):
    from course_lib import load_checkpoint

    path = Trainer(Classifier(ClassifierConfig(width=4)), train_config=QUIET).save(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="config differences: width: checkpoint 4, this model 8"):
        load_checkpoint(path, Classifier(ClassifierConfig(width=8)))


# -- load or train -----------------------------------------------------------------------------------------
def counting_classifier(width=4, seed=0):
    model = Classifier(ClassifierConfig(width=width, feature_dim=8), seed=seed)
    model.calls = 0
    loss = model.loss

    def counted(batch):
        model.calls += 1
        return loss(batch)
    model.loss = counted
    return model


def test_load_or_train_trains_once_then_loads(tmp_path, capsys):
    path = tmp_path / "runs" / "c.pt"
    data = Batches(images(32), 8, seed=0)
    first_model = counting_classifier()
    first = load_or_train(first_model, data, path, steps=6, train_config=QUIET)
    assert first.status == "done" and first.step == 6 and first_model.calls == 6 and path.is_file()
    second_model = counting_classifier()
    second = load_or_train(second_model, data, path, steps=6, train_config=QUIET)
    assert second.status == "loaded" and second_model.calls == 0 and "Loaded" in capsys.readouterr().out
    assert second.history == first.history
    assert all(torch.equal(a, b) for a, b in zip(first_model.state_dict().values(), second_model.state_dict().values()))
    # a longer run continues from the saved one; retrain=True starts again
    longer = load_or_train(counting_classifier(), data, path, epochs=2, train_config=QUIET)
    assert longer.step == 8 and longer.model.calls == 2
    fresh = load_or_train(counting_classifier(), data, path, steps=4, train_config=QUIET, retrain=True)
    assert fresh.step == 4 and fresh.model.calls == 4


def test_load_or_train_refuses_another_config_and_says_what_differs(tmp_path):
    path = tmp_path / "c.pt"
    data = Batches(images(32), 8, seed=0)
    load_or_train(counting_classifier(width=4), data, path, steps=2, train_config=QUIET)
    with pytest.raises(CheckpointError, match=r"(?s)width: checkpoint 4, this model 8.*retrain=True"):
        load_or_train(counting_classifier(width=8), data, path, steps=2, train_config=QUIET)
    with pytest.raises(CheckpointError, match="seed: checkpoint 0, this model 1"):
        load_or_train(counting_classifier(seed=1), data, path, steps=2, train_config=QUIET)
    with pytest.raises(CheckpointError, match="model: checkpoint"):
        load_or_train(ToyGAN(ToyGANConfig(hidden=8)), Batches(ring(), 8), path, steps=2, train_config=QUIET)


def test_load_or_train_resumes_an_interrupted_run(tmp_path):
    path = tmp_path / "c.pt"
    data = Batches(images(32), 8, seed=0)
    model = counting_classifier()
    loss = model.loss

    def stop_at_4(batch):
        if model.calls == 3:
            model.loss = loss
            raise KeyboardInterrupt
        return loss(batch)
    model.loss = stop_at_4
    first = load_or_train(model, data, path, steps=8, train_config=QUIET)
    assert first.status == "interrupted" and first.step == 3 and path.is_file()
    again = load_or_train(counting_classifier(), data, path, steps=8, train_config=QUIET)
    assert again.status == "done" and again.step == 8 and again.model.calls == 5


# -- the rest of the core that the families lean on ------------------------------------------------------
def test_course_load_data_takes_sizes_seed_and_device_from_the_course():
    course = setup(profile="smoke", quiet=True, seed=2)
    train, test = course.load_data("digits", "train"), course.load_data("digits", "test")
    assert len(train) == min(course.profile.train_size, 1497) and len(test) == min(course.profile.eval_size, 300)
    assert train.images.device.type == course.device.type
    assert len(course.load_data("digits", "train", size=None)) == 1497
    assert len(course.load_data("digits", "train", size=10)) == 10
    from course_lib.data import load_data
    want = load_data("digits", "train", size=course.profile.train_size, seed=2)
    assert torch.equal(train.labels.cpu(), want.labels)
    with pytest.raises(TypeError, match="size must be"):
        course.load_data("digits", "train", size="all")


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write("new, half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("new")
    assert path.read_text() == "new"


def test_a_checkpoint_is_read_once_when_checked_then_loaded(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    data = Batches(images(32), 8, seed=0)
    load_or_train(counting_classifier(), data, path, steps=2, train_config=QUIET)
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(1) or real_load(*a, **k))
    assert load_or_train(counting_classifier(), data, path, steps=2, train_config=QUIET).status == "loaded"
    assert len(reads) == 1, "load_or_train should read the file once: identity check and loading share it"
    Classifier.from_checkpoint(path)
    assert len(reads) == 2, "from_checkpoint should read the file once"
