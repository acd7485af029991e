"""The VQ-VAE's recipe (lecture 07): the course's configs per profile (the VQ-VAE and the PixelCNN prior over
its codes), the two training stages, held-out figures and the bench.

    vq = VQVAE(vqvae_config(course, "fashion-mnist"), seed=course.seed)
    run = train_vqvae(course, vq, course.load_data("fashion-mnist"), checkpoint="runs/vqvae.pt")      # stage 1
    prior_run = fit_prior(course, vq, course.load_data("fashion-mnist"), checkpoint="runs/prior.pt")  # stage 2
    vq.sample(16)                                      # codes from the prior, decoded: (16, 1, 28, 28)
    evaluate_vqvae(vq, course.load_data("fashion-mnist", "test").images)   # mse, perplexity, bits per code

The stages are separate runs (van den Oord et al. 2017, section 3.3): the VQ-VAE trains with no prior (a
uniform one, fixed); then its codes of the training images, (N, s, s) integers in 0..K-1, are the data of a
PixelCNN with K levels per position, which `fit_prior` trains and attaches as `vq.prior`.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..data import DATASETS, Batches, ImageData
from ..metrics import evaluate
from ..models.pixelcnn import PixelCNN, PixelCNNConfig
from ..models.vqvae import VQVAE, VQVAEConfig, dead_codes, perplexity
from ..train import TrainConfig
from ..zoo import entry_config
from .common import Run, eval_size, keep_trained, quiet, sample_figures, train_with_snapshots, training_figures

__all__ = ["vqvae_config", "prior_config", "train_vqvae", "fit_prior", "evaluate_vqvae", "time_samples",
           "PRIOR_MAX_LAYERS", "BENCHMARKS"]

# The prior's grid has s = 7 rows, not 28: a gated stack (first kernel 7, then 3x3) sees every earlier code of
# a 7x7 grid after 4 layers, so the profile's PixelCNN depth is capped here (gpu: 8 of 12 layers, 2.6 M weights
# instead of 3.9 M, which keeps the zoo small).
PRIOR_MAX_LAYERS = 8


def vqvae_config(course, dataset: str = "fashion-mnist", **changes) -> VQVAEConfig:
    """The course's VQVAEConfig for a dataset: the image size from the dataset, the width from the profile,
    K = 64 codes of 16 dimensions (the model's defaults) and dead-code restarts on (codes that nothing picks
    for 100 steps move onto encoder outputs, so most of the K codes stay in use)."""
    return VQVAEConfig(**{"image_size": DATASETS[dataset].image_size, "width": course.profile.width,
                          "restart_dead": True, **changes})


def prior_config(course, model: VQVAE, **changes) -> PixelCNNConfig:
    """The course's PixelCNNConfig of a prior over `model`'s codes: the grid size s and K levels from the model
    (`model.prior_config`), channels and lr from the profile's PixelCNN sizes, its depth at most PRIOR_MAX_LAYERS."""
    p = course.profile
    return model.prior_config(**{"channels": p.pixelcnn_channels, "n_layers": min(p.pixelcnn_layers, PRIOR_MAX_LAYERS),
                                 "lr": p.pixelcnn_lr, **changes})


# -- training -------------------------------------------------------------------------------------------------------
def train_vqvae(course, model: VQVAE, data: ImageData, steps: int | None = None, epochs: int | None = None,
                checkpoint: str | Path | None = None, snapshots: int = 4, n_show: int | None = None,
                train_config: TrainConfig | None = None, callback=None, retrain: bool = False,
                zoo: str | None = None) -> Run:
    """Stage 1: train `model` (encoder, codebook, decoder; no prior) on `data` in the shared loop.

    Length: `steps`, else `epochs`, else the profile's epochs (at least its min_steps); batch size: the
    profile's. `checkpoint`: load a finished run instead (`load_or_train`); `zoo=NAME`: load the course's
    converged model (built with `entry_config(NAME)`). Snapshots: (step, reconstructions (n, C, S, S) in
    [0, 1] of the same n_show training images), `snapshots` times; `callback(trainer)` runs at each.
    """
    model.to(course.device)
    n = min(n_show or course.profile.n_show, len(data))
    fixed_x = data.images[:n].to(model.device)  # the same training images every time
    batches = data.to(course.device).batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=False)
    return train_with_snapshots(course, model, batches, lambda: model.reconstruct(fixed_x).cpu(), steps=steps,
                                epochs=epochs, checkpoint=checkpoint, snapshots=snapshots, train_config=train_config,
                                callback=callback, retrain=retrain, zoo=zoo)


def fit_prior(course, model: VQVAE, data: ImageData, steps: int | None = None, epochs: int | None = None,
              checkpoint: str | Path | None = None, snapshots: int = 4, n_show: int | None = None,
              train_config: TrainConfig | None = None, callback=None, retrain: bool = False, zoo: str | None = None,
              prior: PixelCNN | None = None) -> Run:
    """Stage 2: encode `data` to codes with the trained `model` and train a PixelCNN prior on them; attach it.

    The prior: `prior` if given, else PixelCNN(prior_config(course, model)) seeded with the course's seed
    (with `zoo=NAME`, the entry's config, and its converged weights are loaded instead of training).
    Its data: model.to_codes(data.images)[:, None], (N, 1, s, s) integers in 0..K-1, in batches of the
    profile's size; length as `train_vqvae`'s. It is attached (`model.prior = prior`) before training, so
    the snapshots, (step, samples (n, C, S, S) in [0, 1] decoded from the prior's codes with fixed noise),
    show what the prior has learnt so far. Returns the prior's Run (run.model is the prior).
    """
    model.to(course.device).eval()
    if prior is None:
        prior = PixelCNN(entry_config(zoo) if zoo is not None else prior_config(course, model), seed=course.seed)
    model.prior = prior.to(course.device)  # checked: a PixelCNN over s x s grids of K levels
    if zoo is None:
        codes = model.to_codes(data.images)[:, None]  # (N, 1, s, s) long, on the device
        batches = Batches(codes, batch_size=min(course.profile.batch_size, len(codes)), seed=course.seed)
    else:
        batches = []  # nothing to train on: the entry's weights are loaded
    n = min(n_show or course.profile.n_show, len(data))
    return train_with_snapshots(course, prior, batches,
                                lambda: model.sample(n, generator=course.generator(2, device=course.device)).cpu(),
                                steps=steps, epochs=epochs, checkpoint=checkpoint, snapshots=snapshots,
                                train_config=train_config, callback=callback, retrain=retrain, zoo=zoo)


# -- evaluation and the bench -----------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_vqvae(model: VQVAE, images: torch.Tensor, batch_size: int = 500) -> dict:
    """Held-out figures of `model` on `images` (N, C, H, W) in [0, 1]:

    mse: the mean squared error of the reconstructions, per pixel, in [0, 1] units; perplexity and dead_codes
    of the codes of all N images (K: every code used equally; dead: used by none); uniform_bits_per_image =
    s^2 log2 K, the length of the codes under the uniform prior. With a prior attached also bits_per_code
    (-log2 p(codes) / s^2, the mean over images) and bits_per_image = s^2 bits_per_code.
    """
    model.eval()
    K, cells = model.config.codebook_size, model.grid ** 2
    squared, codes, bits = 0.0, [], 0.0
    for x in images.split(batch_size):
        x = x.to(model.device)
        k = model.quantize(model.encode(x))  # (B, s, s)
        squared += float((model.decode(k) - x.float()).double().pow(2).sum())
        codes.append(k)
        if model.prior is not None:
            bits += float(model.bits_per_code(x).double().sum())
    codes = torch.cat(codes)  # (N, s, s)
    out = {"n": len(images), "mse": squared / images.numel(), "perplexity": float(perplexity(codes, K)),
           "dead_codes": dead_codes(codes, K), "uniform_bits_per_image": cells * math.log2(K)}
    if model.prior is not None:
        out.update(bits_per_code=bits / len(images), bits_per_image=cells * bits / len(images))
    return out


@torch.no_grad()
def time_samples(model, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """model.sample(n, generator) and the seconds it took (waiting for the GPU to finish)."""
    synchronize = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    x = model.sample(n, generator=generator)
    synchronize()
    return x, time.perf_counter() - started


def bench_vqvae(course, dataset: str = "fashion-mnist", steps: int | None = None) -> dict:
    """VQ-VAE + PixelCNN prior on Fashion-MNIST: test MSE, perplexity, dead codes, bits/code, FD/precision/recall.

    Trains both stages at the profile's sizes and lengths, then on the test images: the reconstructions'
    MSE, the codes' perplexity and dead codes, the prior's bits per code, and the bits per image under the
    uniform prior (s^2 log2 K) and under the learnt one (s^2 bits per code); then the profile's eval_size
    samples (codes from the prior, decoded), their FD, precision, recall and the FD floor at that n, and
    the seconds per sample. train_seconds and images_per_second are stage 1's; prior_* are stage 2's.
    steps: both stages' length instead of the profile's (a test).
    """
    train, test = course.load_data(dataset, "train"), course.load_data(dataset, "test")
    n = eval_size(course, dataset)
    vq = VQVAE(vqvae_config(course, dataset), seed=course.seed)
    run = train_vqvae(course, vq, train, steps=steps, snapshots=0, train_config=quiet())
    keep_trained(course, vq, f"vqvae-{dataset}", run.trainer)
    prior_run = fit_prior(course, vq, train, steps=steps, snapshots=0, train_config=quiet())
    keep_trained(course, vq.prior, f"vqvae-{dataset}-prior", prior_run.trainer)
    f = evaluate_vqvae(vq, test.images)
    samples, seconds = time_samples(vq, n, course.generator(3, device=course.device))
    figures = evaluate(samples, dataset, train=train, profile=course.profile, n=n)
    c, p, prior_trainer = vq.config, vq.prior.config, prior_run.trainer
    return {"dataset": dataset, "train_images": len(train), "test_images": len(test), "codebook_size": c.codebook_size,
            "code_dim": c.code_dim, "width": c.width, "grid": vq.grid, "prior_channels": p.channels,
            "prior_layers": p.n_layers, "batch_size": min(course.profile.batch_size, len(train)),
            **training_figures(run.trainer), "train_loss": round(run.history["loss"][-1], 4),
            "prior_steps": prior_trainer.step, "prior_train_status": prior_trainer.status,
            "prior_train_seconds": round(prior_trainer.seconds, 3),
            "prior_images_per_second": training_figures(prior_trainer)["images_per_second"],
            "test_mse": round(f["mse"], 5), "perplexity": round(f["perplexity"], 2), "dead_codes": f["dead_codes"],
            "bits_per_code": round(f["bits_per_code"], 4), "bits_per_image": round(f["bits_per_image"], 2),
            "uniform_bits_per_image": round(f["uniform_bits_per_image"], 2),
            "sample_seconds_per_image": round(seconds / n, 5), **sample_figures(figures)}


BENCHMARKS = {"vqvae": bench_vqvae}
