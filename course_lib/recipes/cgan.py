"""The conditional GAN's recipe (lecture 04): the course's config, the training driver, the class grid,
the per-class metrics and the bench.

    gan = CGAN(cgan_config(course, "fashion-mnist"), seed=course.seed)       # projection D, labels
    run = train_cgan(course, gan, course.load_data("fashion-mnist"))
    show_images(class_grid(gan, gan.z(8, generator=course.generator(1))), nrow=8)
    cap = CGAN(cgan_config(course, "fashion-mnist", condition="caption"))
    train_cgan(course, cap, data); cap.sample(4, cond="dark large wide trouser")
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..data import DATASETS, ImageData
from ..evaluators import manifest
from ..metrics import K, evaluate, features, frechet_distance, prdc, reference_data
from ..models.captions import class_words
from ..models.cgan import CGAN, CGANConfig
from ..train import TrainConfig
from .common import Run, eval_size, keep_trained, quiet, train_with_snapshots, training_figures

__all__ = ["cgan_config", "train_cgan", "class_grid", "class_accuracy", "per_class_metrics", "caption_spread",
           "BENCHMARKS"]


def cgan_config(course, dataset: str = "fashion-mnist", **changes) -> CGANConfig:
    """The course's CGANConfig: image size and classes from the dataset, width from the profile."""
    return CGANConfig(**{"image_size": DATASETS[dataset].image_size, "width": course.profile.width, "dataset": dataset,
                         "n_classes": len(DATASETS[dataset].classes), **changes})


# -- measuring ----------------------------------------------------------------------------------------------
def class_accuracy(images: torch.Tensor, labels: torch.Tensor, dataset: str = "fashion-mnist") -> float:
    """The fraction of images (N, 1, H, W) in [0, 1] that the dataset's evaluation classifier calls their label."""
    _, logits = features(images, dataset)
    return float((logits.argmax(1).cpu() == torch.as_tensor(labels).cpu()).double().mean())


def per_class_metrics(images: torch.Tensor, labels: torch.Tensor, real: ImageData) -> list[dict[str, float]]:
    """For each class k: the Fréchet distance, precision and recall of the samples meant as k against the real
    images of class k (evaluator features). A model that collapses inside a class keeps a fair FD overall and
    loses recall here."""
    f, _ = features(images, real.name)
    f_real, _ = features(real.images.to(images.device), real.name)
    labels, real_labels = torch.as_tensor(labels).to(f.device), real.labels.to(f_real.device)
    out = []
    for k in range(len(real.classes)):
        mine, theirs = f[labels == k], f_real[real_labels == k]
        if min(len(mine), len(theirs)) <= K:  # a k-NN ball needs k neighbours
            raise ValueError(f"class {k} has {len(mine)} samples and {len(theirs)} real images: per-class metrics "
                             f"need more than {K} of each (draw more samples, balanced over the classes).")
        pr = prdc(theirs, mine)
        out.append({"fd": frechet_distance(theirs, mine), "precision": pr["precision"], "recall": pr["recall"]})
    return out


@torch.no_grad()
def caption_spread(gan: CGAN, real: ImageData, per_caption: int = 64, generator: torch.Generator | None = None,
                   same: ImageData | None = None) -> list[dict]:
    """Whether a caption model's samples differ by z. For each class k, the caption of the first real image of
    class k, and the mean per-pixel std of: `per_caption` samples of that caption ("samples"), the real images of
    class k ("class"), and the images of `same` (default `real`) of class k that earn that very caption ("same
    caption", nan with fewer than 2). A caption pins three attributes, so "same caption" is the fair reference."""
    same = real if same is None else same
    same_captions = gan.captioner.caption(same.images.to(gan.device), same.labels.to(gan.device))
    out = []
    for k in range(gan.config.n_classes):
        mine = real.images[real.labels == k].to(gan.device)
        caption = gan.captioner.caption(mine[:1], torch.tensor([k], device=gan.device))
        x = gan.sample(per_caption, generator=generator, cond=caption * per_caption)  # (per_caption, C, H, W)
        twins = same.images[torch.tensor([t == caption[0] for t in same_captions], device=same.images.device)]
        out.append({"caption": caption[0], "samples": float(x.float().std(0).mean()),
                    "class": float(mine.float().std(0).mean()),
                    "same caption": float(twins.float().std(0).mean()) if len(twins) > 1 else float("nan"),
                    "n same caption": len(twins)})
    return out


@torch.no_grad()
def class_grid(gan: CGAN, noise: torch.Tensor, conditions: Sequence | None = None) -> torch.Tensor:
    """Rows: conditions (default: every class); columns: the same noise (m, z_dim). -> (rows * m, C, S, S) in [0, 1]."""
    if conditions is None:
        k = gan.config.n_classes
        conditions = list(range(k)) if gan.captioner is None else [
            f"light large wide {w}" for w in class_words(gan.captioner.classes)]
    c = gan.condition(conditions)  # (rows,) or (rows, L)
    m = len(noise)
    z = noise.to(gan.device).repeat(len(c), 1)  # (rows * m, z_dim): row r uses the same m noise vectors
    return gan.to_data(gan.generate(z, c.repeat_interleave(m, 0), ema=True)).float().cpu()


# -- training -----------------------------------------------------------------------------------------------
def train_cgan(course, gan: CGAN, data: ImageData, steps: int | None = None, epochs: int | None = None,
               checkpoint: str | Path | None = None, snapshots: int = 4, n_cols: int | None = None,
               train_config: TrainConfig | None = None, callback=None, retrain: bool = False,
               zoo: str | None = None) -> Run:
    """Train on (images, labels) batches like `train_dcgan`; snapshots are class-by-noise grids (rows classes,
    n_cols shared noise columns, default profile.n_show // n_classes). A caption model's thresholds are fitted
    on `data` first. `zoo=NAME` loads the course's converged model instead of training (gan built with
    `entry_config(NAME)`). Snapshots: (step, the class-by-noise grid)."""
    gan.to(course.device)
    data = data.to(course.device)
    if gan.captioner is not None:
        gan.captioner.fit(data.images, data.labels)  # a loaded checkpoint restores its own
    fixed = gan.z(n_cols or max(1, course.profile.n_show // gan.config.n_classes), generator=course.generator(2))
    batches = data.batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=True)
    return train_with_snapshots(course, gan, batches, lambda: class_grid(gan, fixed), steps=steps, epochs=epochs,
                                checkpoint=checkpoint, snapshots=snapshots, train_config=train_config,
                                callback=callback, retrain=retrain, zoo=zoo)


# -- the bench ----------------------------------------------------------------------------------------------
def bench_cgan(course, dataset: str = "fashion-mnist") -> dict:
    """Label CGAN (projection D) and caption CGAN: FD, class accuracy, per-class FD, attribute accuracy."""
    data = course.load_data(dataset, "train")
    k = len(data.classes)
    n = eval_size(course, dataset)
    reference = reference_data(dataset, n)  # the test images evaluate compares with (seed 0, whatever the course's)
    labels = torch.arange(n) % k  # balanced classes
    out: dict = {"dataset": dataset, "train_images": len(data), "width": course.profile.width}
    gan = CGAN(cgan_config(course, dataset), seed=course.seed)
    run = train_cgan(course, gan, data, snapshots=0, train_config=quiet())
    keep_trained(course, gan, f"cgan-{dataset}-label", run.trainer)
    x = gan.sample(n, generator=course.generator(3, device=course.device), cond=labels)
    ev = evaluate(x, dataset, labels=labels, train=data, profile=course.profile, n=n)
    per_class = per_class_metrics(x, labels, reference)
    fds, recalls = (torch.tensor([m[key] for m in per_class]) for key in ("fd", "recall"))
    cap = CGAN(cgan_config(course, dataset, condition="caption"), seed=course.seed)
    cap_run = train_cgan(course, cap, data, snapshots=0, train_config=quiet())
    keep_trained(course, cap, f"cgan-{dataset}-caption", cap_run.trainer)
    captions = cap.captioner.caption(reference.images.to(course.device), reference.labels.to(course.device))
    xc = cap.sample(n, generator=course.generator(3, device=course.device), cond=captions)
    cap_labels = torch.tensor([cap.captioner.parse(t)[0] for t in captions])
    trainer = run.trainer
    out.update({"d_kind": gan.config.d_kind, "matching_aware": gan.config.matching_aware, **training_figures(trainer),
                "fd": round(ev["fd"], 4), "fd_floor": round(ev["fd_floor"], 4),
                "class_accuracy": round(ev["class_accuracy"], 4),
                "classifier_accuracy": manifest()[dataset]["test_accuracy"],
                "fd_class_worst": round(float(fds.max()), 4), "fd_class_median": round(float(fds.median()), 4),
                "recall_class_worst": round(float(recalls.min()), 4),
                "recall_class_median": round(float(recalls.median()), 4),
                "precision": round(ev["precision"], 4), "recall": round(ev["recall"], 4),
                "caption_train_seconds": round(cap_run.trainer.seconds, 3),
                "caption_class_accuracy": round(class_accuracy(xc, cap_labels, dataset), 4),
                "attribute_accuracy": round(cap.captioner.attribute_accuracy(xc, captions), 4),
                "eval_n": ev["n"], "eval_n_per_class": n // k})
    return out


def bench_cgan_digits(course) -> dict:
    """The cgan bench on 8x8 digits (seconds on a CPU)."""
    return bench_cgan(course, "digits")


BENCHMARKS = {"cgan": bench_cgan, "cgan-digits": bench_cgan_digits}
