"""The VQ-VAE's recipe (recipes/vqvae.py), bench and zoo entry: configs per profile, both training stages, the
prior attached and causal, every figure the bench reports, and the registry's entry that trains both."""
import math

import pytest
import torch

from course_lib import setup
from course_lib.data import ImageData
from course_lib.models.pixelcnn import PixelCNN, causality_violations
from course_lib.models.vqvae import VQVAE
from course_lib.recipes.common import quiet
from course_lib.recipes.vqvae import (PRIOR_MAX_LAYERS, evaluate_vqvae, fit_prior, prior_config, train_vqvae,
                                      vqvae_config)

NAME = "vqvae-fashion-mnist"


def blobs(n=256, size=28, seed=0):
    """Easy images (n, 1, size, size) in [0, 1]: one Gaussian blob each, at a random place and width."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g) * (size * 0.6) + size * 0.2  # (n, 2)
    width = torch.rand(n, 1, 1, generator=g) * 3 + 2  # (n, 1, 1)
    r = torch.arange(size).float()
    d2 = (r[None, :, None] - centre[:, 0, None, None]) ** 2 + (r[None, None, :] - centre[:, 1, None, None]) ** 2
    images = torch.exp(-d2 / (2 * width ** 2))[:, None]
    return ImageData("blobs", "train", images, torch.zeros(n, dtype=torch.long), ("blob",))


@pytest.fixture
def course():
    return setup(profile="smoke", device="cpu", quiet=True)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_the_configs_follow_the_profile(profile):
    course = setup(profile=profile, device="cpu", quiet=True)
    p = course.profile
    c = vqvae_config(course)
    assert (c.image_size, c.width, c.restart_dead) == (28, p.width, True)
    assert vqvae_config(course, "digits").image_size == 8 and vqvae_config(course, codebook_size=16).codebook_size == 16
    prior = prior_config(course, VQVAE(c))
    assert (prior.image_size, prior.levels) == (7, c.codebook_size), "the prior models the 7x7 grid of K codes"
    assert (prior.channels, prior.lr) == (p.pixelcnn_channels, p.pixelcnn_lr)
    assert prior.n_layers == min(p.pixelcnn_layers, PRIOR_MAX_LAYERS)


def test_a_few_training_steps_run_with_snapshots_of_reconstructions(course):
    vq = VQVAE(vqvae_config(course), seed=0)
    run = train_vqvae(course, vq, blobs(128), steps=6, snapshots=2, train_config=quiet())
    assert run.trainer.step == 6 and run.trainer.status == "done" and not vq.training
    assert [s[0] for s in run.snapshots] == [0, 3, 6]
    assert all(s[1].shape == (course.profile.n_show, 1, 28, 28) and 0 <= s[1].min() <= s[1].max() <= 1
               for s in run.snapshots)
    assert {"loss", "reconstruction", "perplexity"} <= set(run.history)


def test_fit_prior_attaches_a_causal_prior_that_learns_the_codes(course):
    data = blobs(256)
    vq = VQVAE(vqvae_config(course), seed=0)
    train_vqvae(course, vq, data, steps=40, snapshots=0, train_config=quiet())
    with pytest.raises(RuntimeError, match="no prior"):
        vq.sample(1)
    run = fit_prior(course, vq, data, steps=40, snapshots=1, train_config=quiet())
    assert run.model is vq.prior and isinstance(vq.prior, PixelCNN) and run.trainer.step == 40
    assert causality_violations(vq.prior.net, (1, 7, 7)) == []
    assert run.snapshots[-1][1].shape == (course.profile.n_show, 1, 28, 28), "snapshots: decoded prior samples"
    f = evaluate_vqvae(vq, data.images)
    K = vq.config.codebook_size
    assert f["bits_per_code"] < 0.5 * math.log2(K), f"{f['bits_per_code']} bits/code against log2 K = {math.log2(K)}"
    assert f["bits_per_image"] == pytest.approx(49 * f["bits_per_code"]) and f["uniform_bits_per_image"] == 49 * 6
    assert 1 <= f["perplexity"] <= K - f["dead_codes"] and 0 <= f["mse"] < 0.1
    x = vq.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 28, 28)


def test_the_bench_reports_every_figure(course, real_data):
    from course_lib.bench import find_benchmarks
    from course_lib.recipes.vqvae import bench_vqvae

    assert find_benchmarks()["vqvae"] is bench_vqvae, "python -m course_lib.bench vqvae finds it"
    line = bench_vqvae(course, steps=3)
    for key in ("test_mse", "bits_per_image", "uniform_bits_per_image", "perplexity", "dead_codes", "bits_per_code",
                "fd", "fd_floor", "precision", "recall", "eval_n", "sample_seconds_per_image", "images_per_second",
                "train_seconds", "prior_train_seconds", "prior_images_per_second", "steps", "prior_steps"):
        assert key in line, key
    assert line["steps"] == line["prior_steps"] == 3 and line["eval_n"] == 256
    assert line["uniform_bits_per_image"] == round(49 * math.log2(line["codebook_size"]), 2)
    assert line["bits_per_image"] == pytest.approx(49 * line["bits_per_code"], abs=0.01)


def test_the_zoo_registry_has_the_entry_that_trains_both_stages():
    from course_lib.recipes.zoo import TARGETS, build
    from course_lib.zoo import RUNS, manifest
    from course_lib.zoo.registry import FAMILIES, made_by

    run = RUNS[NAME]
    assert run.family == "vqvae" in FAMILIES and run.saves == (NAME, f"{NAME}-prior") and "07" in run.lectures
    assert made_by(f"{NAME}-prior") is run and made_by(NAME) is run and RUNS["vae-fashion-mnist-2d"].saves == (
        "vae-fashion-mnist-2d",)
    assert run.epochs_on("cuda") >= 1 and run.prior_epochs_on("cuda") >= 1
    assert set(run.targets) == {"perplexity", "fd_vs_vae", "speed_vs_pixelcnn"} <= set(TARGETS)
    course = setup(profile=run.profile, device="cpu", quiet=True)
    vq = build(run, course)
    assert isinstance(vq, VQVAE) and vq.config.width == course.profile.width
    prior = PixelCNN(prior_config(course, vq))
    size = 2 * sum(v.numel() for m in (vq, prior) for v in m.state_dict().values())  # half precision
    shipped = sum(e["bytes"] for name, e in manifest().items() if name not in run.saves)
    assert shipped + size < 40e6, f"the two entries ({size / 1e6:.1f} MB) would take the zoo over 40 MB"


def test_zoo_train_saves_both_entries_measures_them_and_records_the_targets(tmp_path, real_data, monkeypatch,
                                                                           capsys):
    from course_lib.recipes import zoo as zoo_recipe
    from course_lib.zoo import install, load_pretrained, manifest

    monkeypatch.setattr(zoo_recipe, "SPEED_N_CPU", 2)  # the pixel PixelCNN takes about a second a sample here
    entry = zoo_recipe.train_entry(NAME, device="cpu", out=tmp_path / "out", profile="smoke", steps=4)
    prior = manifest(tmp_path / "out")[f"{NAME}-prior"]
    assert entry["steps"] == prior["steps"] == 4 and entry["train_status"] == prior["train_status"] == "done"
    command = f"python -m course_lib.zoo train {NAME} --device cpu --profile smoke --steps 4"
    assert prior["command"] == entry["command"] == command, "the prior's entry is made again by its VQ-VAE's run"
    assert prior["model_class"] == "course_lib.models.pixelcnn.PixelCNN" and prior["config"]["levels"] == 64
    assert {"test_mse", "perplexity", "dead_codes", "bits_per_code", "fd", "fd_n", "sample_seconds_per_image",
            "speedup_vs_pixelcnn"} <= set(entry["figures"])
    assert prior["figures"]["bits_per_code"] == entry["figures"]["bits_per_code"]
    assert set(entry["targets"]) == {"perplexity", "fd_vs_vae", "speed_vs_pixelcnn"}
    assert entry["targets"]["perplexity"]["bound"] == 32 and entry["targets"]["fd_vs_vae"]["met"] is None  # n=256
    assert "target perplexity" in capsys.readouterr().out, "an unmet target is printed"
    vq = zoo_recipe.load_entry(f"{NAME}-prior", folder=tmp_path / "out")
    assert isinstance(vq, VQVAE) and isinstance(vq.prior, PixelCNN) and vq.sample(2).shape == (2, 1, 28, 28)
    again = zoo_recipe.quick_check(f"{NAME}-prior", load_pretrained(f"{NAME}-prior", folder=tmp_path / "out"),
                                   vqvae=load_pretrained(NAME, folder=tmp_path / "out"))
    assert not zoo_recipe.close_enough(f"{NAME}-prior", again, prior["check"]), (again, prior["check"])
    assert sorted(install(tmp_path / "out", folder=tmp_path / "zoo")) == [NAME, f"{NAME}-prior"]

    # the lecture's path: both recipes load the two entries by name (here from the test's folder, not the zoo's)
    from functools import partial

    import course_lib.zoo as zoo_package
    from course_lib.recipes import vqvae as vqvae_recipe

    monkeypatch.setattr(zoo_package, "load_weights", partial(zoo_package.load_weights, folder=tmp_path / "out"))
    monkeypatch.setattr(vqvae_recipe, "entry_config", partial(vqvae_recipe.entry_config, folder=tmp_path / "out"))
    course = setup(profile="smoke", device="cpu", quiet=True)
    data = course.load_data("fashion-mnist")
    live = VQVAE(vqvae_recipe.entry_config(NAME))
    assert train_vqvae(course, live, data, zoo=NAME).trainer.status == "loaded"
    run = fit_prior(course, live, data, zoo=f"{NAME}-prior")
    assert run.trainer.status == "loaded" and run.trainer.step == 4 and live.prior is run.model
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(live.sample(2, generator=g()), vq.sample(2, generator=g())), "the shipped pair, loaded by name"
