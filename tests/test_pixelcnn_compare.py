"""Lecture 06's closing table compares every model at one n: `bench zoo` samples the PixelCNN too, even on a
CPU (`measure(..., samples=True)`), and reports the same sample figures, floor included, as for a GAN."""
import torch

from course_lib import setup
from course_lib.models.pixelcnn import PixelCNN, PixelCNNConfig
from course_lib.recipes import zoo as zoo_recipe

NAME = "pixelcnn-fashion-mnist-gated"


def tiny_pixelcnn() -> PixelCNN:
    """An untrained PixelCNN of the entry's image size, small enough to sample in a second on a CPU."""
    return PixelCNN(PixelCNNConfig(image_size=28, channels=8, n_layers=2), seed=0)


def test_measure_samples_the_pixelcnn_when_asked(real_data):
    course = setup(profile="smoke", device="cpu", quiet=True)
    plain = zoo_recipe.measure(NAME, tiny_pixelcnn(), course, n=20)
    assert "fd" not in plain and plain["bpd_n"] == 20, "on a CPU the PixelCNN is not sampled by default"
    out = zoo_recipe.measure(NAME, tiny_pixelcnn(), course, n=20, samples=True)
    for key in ("test_bpd", "fd", "fd_floor", "precision", "recall", "coverage", "sample_seconds_per_image"):
        assert key in out, f"measure(samples=True) should report {key}"
    assert out["fd_n"] == 20 and out["eval_n"] == 20 and out["sample_seconds_per_image"] > 0
    assert out["test_bpd"] == plain["test_bpd"], "sampling does not change the likelihood figure"
    assert out["fd"] > out["fd_floor"] > 0, "an untrained model's samples are far from the data"


def test_bench_zoo_asks_for_the_samples(monkeypatch):
    seen = {}

    def fake_measure(name, model, course, n=None, samples=None):
        seen.update(name=name, samples=samples)
        return {"entry": name}

    monkeypatch.setattr(zoo_recipe, "measure", fake_measure)
    monkeypatch.setattr(zoo_recipe, "load_pretrained", lambda name, device: torch.nn.Identity())
    course = setup(profile="smoke", device="cpu", quiet=True)
    line = zoo_recipe.bench_zoo(course, NAME)
    assert seen == {"name": NAME, "samples": True}, "bench zoo measures every family's samples, the PixelCNN's too"
    assert line["entry"] == NAME and "sha256" in line
