"""DCGAN's recipe (lecture 03): the course's config per dataset and profile, the loss family's settings,
the training driver and the bench.

    gan = DCGAN(dcgan_config(course, "fashion-mnist", **loss_config("hinge")), seed=course.seed)
    run = train_dcgan(course, gan, course.load_data("fashion-mnist"), checkpoint="runs/dcgan.pt")
    evaluate(gan.sample(2000), "fashion-mnist", train=course)
"""
from __future__ import annotations

from pathlib import Path

from ..bench import latest_by_seed
from ..data import DATASETS, ImageData
from ..metrics import evaluate
from ..models.dcgan import DCGAN, DCGANConfig
from ..models.gan import LOSSES, WGAN_GP
from ..train import TrainConfig
from .common import Run, eval_size, keep_trained, quiet, sample_figures, train_with_snapshots, training_figures

__all__ = ["dcgan_config", "loss_config", "train_dcgan", "measure_samples", "ablation_config", "top_class",
           "ablation_runs", "LOSS_FAMILY", "ABLATIONS", "BENCHMARKS"]

LOSS_FAMILY = ("non-saturating", "hinge", "least-squares", "wgan-gp")  # the lecture's table; `bench --loss all`


def dcgan_config(course, dataset: str = "fashion-mnist", **changes) -> DCGANConfig:
    """The course's DCGANConfig for a dataset: the image size from the dataset, the width from the profile."""
    return DCGANConfig(**{"image_size": DATASETS[dataset].image_size, "width": course.profile.width, **changes})


def loss_config(loss: str, **changes) -> dict:
    """The settings that go with a loss, for DCGANConfig(**loss_config(...)): WGAN-GP's whole recipe
    (Gulrajani et al.: 5 critic steps, gp 10, Adam(1e-4, (0, 0.9)), no batchnorm in the critic); the others as is."""
    if loss not in LOSSES:
        raise ValueError(f"Unknown GAN loss {loss!r}. Choose one of {sorted(LOSSES)}.")
    base = {**WGAN_GP, "d_norm": "layer"} if loss == "wgan-gp" else {"loss": loss}
    return {**base, **changes}


def train_dcgan(course, gan: DCGAN, data: ImageData, steps: int | None = None, epochs: int | None = None,
                checkpoint: str | Path | None = None, snapshots: int = 4, n_show: int | None = None,
                train_config: TrainConfig | None = None, callback=None, retrain: bool = False,
                zoo: str | None = None) -> Run:
    """Train `gan` on `data` in the shared loop; keep a grid of fixed-noise samples `snapshots` times.

    epochs: default the profile's (when steps is not given), and at least the profile's `min_steps`
    steps; batch size: the profile's. With a `checkpoint`, `load_or_train` loads a finished run
    instead of training, and with `zoo=NAME` the course's converged model (gan built with `entry_config(NAME)`);
    snapshots are then the untrained and the final one. `callback(trainer)` also runs at every snapshot, e.g. a LivePlot. Snapshots: (step, images (n, C, S, S) in [0, 1]).
    """
    gan.to(course.device)
    fixed = gan.z(n_show or course.profile.n_show, generator=course.generator(2))  # the same noise every time
    batches = data.to(course.device).batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=False)
    return train_with_snapshots(course, gan, batches, lambda: gan.to_data(gan.generate(fixed, ema=True)).float().cpu(),
                                steps=steps, epochs=epochs, checkpoint=checkpoint, snapshots=snapshots,
                                train_config=train_config, callback=callback, retrain=retrain, zoo=zoo)


# -- the bench ----------------------------------------------------------------------------------------------
FIGURES = ("fd", "fd_floor", "kid", "precision", "recall", "coverage", "inception_score", "memorised")


def measure_samples(course, gan: DCGAN, data: ImageData, dataset: str, n: int) -> dict:
    """evaluate() on n samples from the benches' fixed noise (seed 3), batchnorm in inference mode; the
    model's train/eval mode is left as it was."""
    was_training = gan.training
    gan.eval()
    out = evaluate(gan.sample(n, generator=course.generator(3, device=course.device)), dataset,
                   train=data, profile=course.profile, n=n)
    gan.train(was_training)
    return out


def bench_dcgan(course, dataset: str = "fashion-mnist", loss: str = "non-saturating") -> dict:
    """DCGAN on Fashion-MNIST: images/s, final losses, FD (and floor, untrained), KID, precision, recall, ..."""
    data = course.load_data(dataset, "train")
    gan = DCGAN(dcgan_config(course, dataset, **loss_config(loss)), seed=course.seed).to(course.device)
    n = eval_size(course, dataset)

    def figures() -> dict:  # the same noise before and after training
        return measure_samples(course, gan, data, dataset, n)

    untrained = figures()
    run = train_dcgan(course, gan, data, snapshots=0, train_config=quiet())
    keep_trained(course, gan, f"dcgan-{dataset}-{loss}", run.trainer)
    trained = figures()
    out = {"dataset": dataset, "loss": loss, "train_images": len(data), "width": gan.config.width,
           "batch_size": min(course.profile.batch_size, len(data)), **training_figures(run.trainer),
           "d_loss": round(run.history["d_loss"][-1], 4), "g_loss": round(run.history["g_loss"][-1], 4)}
    return {**out, **sample_figures(trained, FIGURES), "fd_untrained": round(untrained["fd"], 4)}


def bench_dcgan_digits(course, loss: str = "non-saturating") -> dict:
    """DCGAN on 8x8 digits (seconds on a CPU): the same figures as `dcgan`, on the digits evaluator."""
    return bench_dcgan(course, "digits", loss)


bench_dcgan.choices = bench_dcgan_digits.choices = {"loss": LOSS_FAMILY}

# Lecture 03's guidelines and failure modes: one change each to the course's DCGAN (the lr ones scale
# the course's 1e-3). Run with several seeds (`--seed`): one seed and a short run say nothing.
ABLATIONS = {
    "baseline": {},
    "no-batchnorm-in-G": {"g_batchnorm": False},
    "max-pooling-in-D": {"d_pool": True},
    "lr-D-10x": {"lr_d": "10x"},
    "lr-G-10x": {"lr_g": "10x"},
    "saturating": {"loss": "saturating"},
}
ABLATION_EPOCHS = 2  # times the profile's epochs: the cpu profile's 3 epochs of 12,000 images -> 558 steps


def ablation_config(course, variant: str, dataset: str = "fashion-mnist") -> DCGANConfig:
    """The course's DCGANConfig with one ablation's change (`ABLATIONS[variant]`)."""
    if variant not in ABLATIONS:
        raise ValueError(f"Unknown ablation {variant!r}. Choose one of {list(ABLATIONS)}.")
    base = dcgan_config(course, dataset)
    changes = {k: (10 * getattr(base, k) if v == "10x" else v) for k, v in ABLATIONS[variant].items()}
    return dcgan_config(course, dataset, **changes)


def top_class(histogram) -> float:
    """The share of the samples in the evaluation classifier's most frequent class (0.1 for a balanced set)."""
    return max(histogram) / max(sum(histogram), 1)


def ablation_runs(lines: list[dict], min_seeds: int = 2) -> dict[str, dict[int, dict]]:
    """variant -> {seed: line}, from `dcgan-ablation` bench lines (the latest line of each variant and seed),
    in ABLATIONS' order. Every variant needs `min_seeds` seeds: one seed says nothing about an ablation."""
    return latest_by_seed(lines, lambda line: line.get("variant"), ABLATIONS, min_seeds,
                          "python -m course_lib.bench dcgan-ablation --variant all --seed S --out benchmarks.jsonl")


def bench_dcgan_ablation(course, variant: str = "baseline", dataset: str = "fashion-mnist") -> dict:
    """One DCGAN ablation (lecture 03), ABLATION_EPOCHS x the profile's epochs: FD, precision, recall, coverage,
    top-class share and D(G(z)) after one epoch and at the end. Run each with several --seed."""
    data = course.load_data(dataset, "train")
    gan = DCGAN(ablation_config(course, variant, dataset), seed=course.seed).to(course.device)
    n = eval_size(course, dataset)
    per_epoch = len(data) // min(course.profile.batch_size, len(data))
    epochs = ABLATION_EPOCHS * course.profile.epochs

    early: dict = {}

    def at_epoch_one(trainer) -> None:  # the same evaluation noise for every variant and seed
        if trainer.step == per_epoch:
            early.update(measure_samples(course, gan, data, dataset, n))

    config = TrainConfig(log_every=10, progress=False, callback_every=per_epoch)
    run = train_dcgan(course, gan, data, epochs=epochs, snapshots=0, train_config=config, callback=at_epoch_one)
    keep_trained(course, gan, f"dcgan-ablation-{variant}-seed{course.seed}", run.trainer)
    final = measure_samples(course, gan, data, dataset, n)
    h = run.history
    tail = max(1, len(h["d_fake"]) // 10)  # the last tenth of the logged steps

    def mean_tail(key: str) -> float:
        return round(sum(h[key][-tail:]) / tail, 4)

    return {"dataset": dataset, "variant": variant, "train_images": len(data), "width": gan.config.width,
            "batch_size": min(course.profile.batch_size, len(data)), "epochs": epochs, **training_figures(run.trainer),
            **sample_figures(final, FIGURES), "top_class": round(top_class(final["class_histogram"]), 4),
            "d_fake": mean_tail("d_fake"), "d_real": mean_tail("d_real"),
            "epoch1_step": per_epoch, "epoch1_fd": round(early["fd"], 4), "epoch1_recall": round(early["recall"], 4),
            "epoch1_coverage": round(early["coverage"], 4),
            "epoch1_top_class": round(top_class(early["class_histogram"]), 4)}


bench_dcgan_ablation.choices = {"variant": tuple(ABLATIONS)}

BENCHMARKS = {"dcgan": bench_dcgan, "dcgan-digits": bench_dcgan_digits, "dcgan-ablation": bench_dcgan_ablation}
