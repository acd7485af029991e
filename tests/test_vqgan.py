"""VQGAN in miniature (models/vqgan.py, recipes/vqgan.py): the patch discriminator's shapes and locality, the frozen
encoder and codebook, lambda logged, the control equal to plain reconstruction training, sharpness, clear errors."""
import copy
import math

import pytest
import torch

from course_lib import setup
from course_lib.models.vqgan import VQGAN, PatchDiscriminator, VQGANConfig, last_layer_weight
from course_lib.models.vqvae import VQVAE, VQVAEConfig
from course_lib.recipes.common import quiet
from course_lib.recipes.vqgan import evaluate_sharpening, reconstructions, sharpness, train_vqgan, vqgan_config
from course_lib.train import TrainConfig, Trainer
from test_vqvae_recipe import blobs  # easy images: one Gaussian blob each


@pytest.fixture
def course():
    return setup(profile="smoke", device="cpu", quiet=True)


@pytest.fixture(scope="module")
def vq():
    """A VQ-VAE trained briefly on blobs (the fine-tuning only needs a decoder that has started to learn)."""
    model = VQVAE(VQVAEConfig(width=8, codebook_size=16, restart_dead=True), seed=0)
    Trainer(model, train_config=quiet()).fit(blobs(256).batches(64, seed=0, labels=False), steps=30)
    return model.eval()


def test_shapes(vq):
    x = blobs(5).images
    D = PatchDiscriminator(1, 8)
    assert D(2 * x - 1).shape == (5, 1, 7, 7), "one score per patch on the 7x7 grid"
    vqgan = VQGAN(vq, VQGANConfig(disc_width=8), seed=0)
    codes = vqgan.to_codes(x)
    assert codes.shape == (5, 7, 7) and codes.dtype == torch.long
    for out in (vqgan.reconstruct(x), vqgan.decode(codes)):
        assert out.shape == (5, 1, 28, 28) and 0 <= out.min() <= out.max() <= 1
    assert vqgan.scores(x).shape == (5, 1, 7, 7)
    assert torch.equal(vqgan.reconstruct(x), vq.reconstruct(x)), "before training it is the VQ-VAE's decoder"
    assert last_layer_weight(vqgan.vq.decoder) is vqgan.vq.decoder.net[-1].weight


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_the_discriminator_is_patch_level(norm):
    """A change in the top-left corner moves the scores of the patches that see it, not those of the far corner."""
    D = PatchDiscriminator(1, 8, norm).eval()  # eval: batchnorm with running statistics, no mixing of images
    with torch.no_grad():
        for p in D.parameters():  # visible effects
            p.normal_(0, 0.3)
        x = torch.rand(1, 1, 28, 28) * 2 - 1
        y = x.clone()
        y[..., :4, :4] = -y[..., :4, :4]
        change = (D(x) - D(y)).abs()[0, 0]  # (7, 7)
    assert change[0, 0] > 0, "the patch over the changed corner must see it"
    assert change[3:, :].max() == 0 and change[:, 3:].max() == 0, "patches 18 pixels wide cannot see the far corner"


def test_the_encoder_and_codebook_stay_frozen_and_vq_is_left_alone(course, vq):
    data = blobs(256)
    x = data.images[:32]
    before = copy.deepcopy(vq.state_dict())
    vqgan = VQGAN(vq, vqgan_config(course), seed=0)
    codes = vqgan.to_codes(x)
    Trainer(vqgan, train_config=quiet()).fit(data.batches(64, seed=0, labels=False), steps=10)
    assert torch.equal(vqgan.to_codes(x), codes), "the codes of a batch must not change"
    for name in ("encoder", "codebook"):
        for (k, a), b in zip(getattr(vqgan.vq, name).state_dict().items(), getattr(vq, name).state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k} changed"
    assert not torch.equal(vqgan.vq.decoder.net[-1].weight, vq.decoder.net[-1].weight), "the decoder must train"
    assert all(torch.equal(v, before[k]) for k, v in vq.state_dict().items()), "the VQ-VAE given must be left unchanged"


def test_lambda_is_logged_finite_and_off_before_disc_start(course, vq):
    vqgan = VQGAN(vq, vqgan_config(course, disc_start=3), seed=0)
    trainer = Trainer(vqgan, train_config=TrainConfig(log_every=1, progress=False))
    history = trainer.fit(blobs(128).batches(32, seed=0, labels=False), steps=6)
    lam = history["lambda"]
    assert {"loss", "d_loss", "reconstruction", "gan", "lambda"} <= set(history)
    assert all(math.isfinite(v) for v in lam) and lam[:3] == [0.0, 0.0, 0.0] and min(lam[3:]) > 0, lam
    assert int(vqgan.steps) == 6


def test_a_fixed_lambda_is_gan_weight(course, vq):
    vqgan = VQGAN(vq, vqgan_config(course, adaptive=False, gan_weight=0.3), seed=0)
    out = vqgan.decoder_loss(blobs(16).images)
    assert float(out["lambda"]) == pytest.approx(0.3)
    assert float(out["loss"].detach()) == pytest.approx(float(out["reconstruction"] + 0.3 * out["gan"]), rel=1e-5)


def test_the_control_equals_plain_reconstruction_training(course, vq):
    """gan=False: the same decoder, Adam and batches as a hand-written MSE loop, so the same weights."""
    data = blobs(256)
    run = train_vqgan(course, vq, data, steps=8, gan=False, snapshots=0, train_config=quiet())
    assert list(run.trainer.optimizers) == ["loss"] and "lambda" not in run.history
    c = run.model.config
    decoder = copy.deepcopy(vq.decoder)
    opt = torch.optim.Adam(decoder.parameters(), lr=c.lr, betas=c.betas)
    batches = data.batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=False)
    for (x,) in [batch for _ in range(2) for batch in batches]:  # 8 steps: two passes of 4 batches
        with torch.no_grad():
            z_q = vq.codebook.lookup(vq.quantize(vq.encode(x)))
        loss = (torch.sigmoid(decoder(z_q)) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (k, a), b in zip(run.model.vq.decoder.state_dict().items(), decoder.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"decoder.{k} differs from plain reconstruction training")


def test_a_smoke_run_is_fast_and_snapshots_reconstructions(course, vq):
    run = train_vqgan(course, vq, blobs(512), snapshots=2, train_config=quiet())  # the profile's length
    assert run.trainer.step == course.profile.min_steps and run.trainer.status == "done"
    assert run.trainer.seconds < 10, f"{run.trainer.seconds:.1f} s for a smoke run"
    assert run.snapshots[-1][1].shape == (course.profile.n_show, 1, 28, 28)
    assert list(run.trainer.optimizers) == ["d_loss", "loss"]


def test_sharpness():
    flat = torch.full((2, 1, 8, 8), 0.5)
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0  # a vertical edge: one jump of 1 per row among 7 horizontal differences
    assert sharpness(flat) == 0.0
    assert sharpness(step) == pytest.approx(1 / 7)
    x = blobs(8, seed=1).images
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert sharpness(blurred) < sharpness(x)


def test_evaluate_sharpening_reports_every_model_and_the_real_images(course, vq, real_data):
    from course_lib.metrics import held_out_images

    train = course.load_data("fashion-mnist")
    test = held_out_images("fashion-mnist", course.profile.eval_size)[:300]
    vqgan = VQGAN(vq, vqgan_config(course), seed=0)
    out = evaluate_sharpening(course, {"vq-vae": vq, "vqgan": vqgan}, test, train)
    assert set(out) == {"vq-vae", "vqgan", "real"}
    assert out["real"]["mse"] == 0 and out["real"]["sharpness_ratio"] == 1
    assert out["vqgan"]["mse"] == pytest.approx(out["vq-vae"]["mse"]), "untrained, the VQGAN is the VQ-VAE"
    assert out["vqgan"]["mse"] == pytest.approx(float((reconstructions(vq, test) - test).pow(2).mean()), rel=1e-5)
    assert all(math.isfinite(f["fd"]) and f["n"] == min(course.profile.eval_size, 300) for f in out.values())


def test_clear_errors(course, vq):
    with pytest.raises(TypeError, match="trained course VQVAE"):
        VQGAN(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hinge"):
        VQGANConfig(loss="wgan-gp")
    with pytest.raises(ValueError, match="not be local"):
        VQGANConfig(disc_norm="layer")
    with pytest.raises(ValueError, match="disc_start"):
        VQGANConfig(disc_start=-1)
    vqgan = VQGAN(vq, seed=0)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        vqgan.decoder_loss(torch.rand(4, 28, 28))
    with pytest.raises(TypeError, match="load_checkpoint"):
        VQGAN.from_checkpoint("nowhere.pt")
    with pytest.raises(ValueError, match="unsqueeze"):
        sharpness(torch.rand(4, 28, 28))
    run = train_vqgan(course, vq, blobs(64), steps=1, gan=False, snapshots=0, train_config=quiet())
    with pytest.raises(TypeError, match="run.model"):
        evaluate_sharpening(course, {"control": run}, blobs(8).images, None)
    with pytest.raises(ValueError, match="models is empty"):
        evaluate_sharpening(course, {}, blobs(8).images, None)
    with pytest.raises(TypeError, match="ImageData"):
        train_vqgan(course, vq, blobs(64).images)
