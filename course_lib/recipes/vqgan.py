"""VQGAN in miniature's recipe (lecture 07): fine-tune a trained VQ-VAE's decoder with a patch GAN, train the
fair control (the same decoder, steps and batches, the reconstruction loss only), and measure what the GAN term
buys (sharper, more realistic reconstructions) and what it costs (pixel error).

    vq = VQVAE(vqvae_config(course), seed=course.seed); train_vqvae(course, vq, train)     # stage 1, as before
    gan = train_vqgan(course, vq, train)                   # the decoder + a patch GAN, adaptive lambda
    control = train_vqgan(course, vq, train, gan=False)    # the same decoder, steps and batches: MSE only
    test = held_out_images("fashion-mnist", course.profile.eval_size)
    evaluate_sharpening(course, {"vq-vae": vq, "control": control.model, "vqgan": gan.model}, test, train)

Sharpness is the mean length of the image gradient (finite differences between neighbouring pixels): a blurred
edge spreads one step of brightness over several pixels, so its differences are smaller. A reconstruction's
sharpness as a fraction of the real images' says how much of their edges it keeps (1: all, below 1: blurred).

Measured in the cpu profile (a short run, one thread: the VQ-VAE's 279 steps, then 186 steps each; 2,000
held-out test images; seeds 0 and 1), control -> VQGAN: sharpness 0.64 -> 0.82 and 0.65 -> 0.85 of the real
images', FD of the reconstructions 53.8 -> 45.2 and 51.3 -> 42.4, test MSE 0.0160 -> 0.0179 and 0.0151 -> 0.0174
(+12%, +16%); 49 s and 44 s for the GAN run, 11 s for each control. The sharper edges come with speckled textures.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..data import ImageData
from ..metrics import evaluate
from ..models.vqgan import VQGAN, VQGANConfig
from ..models.vqvae import VQVAE
from ..train import TrainConfig
from .common import Run, eval_size, train_with_snapshots

__all__ = ["vqgan_config", "train_vqgan", "sharpness", "reconstructions", "evaluate_sharpening"]


def vqgan_config(course, gan: bool = True, **changes) -> VQGANConfig:
    """The course's VQGANConfig: the discriminator's width from the profile, the model's defaults otherwise;
    gan=False is the control (reconstruction loss only)."""
    return VQGANConfig(**{"disc_width": course.profile.width, "gan": gan, **changes})


def train_vqgan(course, vq: VQVAE, data: ImageData, steps: int | None = None, gan: bool = True,
                config: VQGANConfig | None = None, checkpoint: str | Path | None = None, snapshots: int = 4,
                n_show: int | None = None, train_config: TrainConfig | None = None, callback=None,
                retrain: bool = False) -> Run:
    """Fine-tune a copy of the trained `vq`'s decoder on `data`, with the patch GAN (gan=True) or without (the
    control); the encoder and codebook are frozen, and `vq` itself is left unchanged. Returns the Run (run.model:
    the VQGAN, whose reconstruct/decode/sample use the fine-tuned decoder).

    config: the VQGANConfig (default `vqgan_config(course, gan)`; its `gan` is set from `gan`). Length: `steps`,
    else two passes over `data` (at least the profile's min_steps; cpu: 186 steps); batches of the profile's
    size, shuffled with the course's seed, so the GAN run and its control see the same batches. Snapshots:
    (step, reconstructions (n, C, S, S) in [0, 1] of the same n_show training images). `checkpoint`: load a
    finished run instead.
    """
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData (course.load_data(...)), got {type(data).__name__}.")
    if config is None:
        config = vqgan_config(course, gan)
    elif config.gan != gan:
        config = dataclasses.replace(config, gan=gan)
    model = VQGAN(vq, config, seed=course.seed).to(course.device)
    n = min(n_show or course.profile.n_show, len(data))
    fixed_x = data.images[:n].to(model.device)  # the same training images every time
    batches = data.to(course.device).batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=False)
    return train_with_snapshots(course, model, batches, lambda: model.reconstruct(fixed_x).cpu(), steps=steps,
                                checkpoint=checkpoint, snapshots=snapshots, train_config=train_config,
                                callback=callback, retrain=retrain, default_epochs=2)


# -- measuring the sharpening -----------------------------------------------------------------------------------------
def sharpness(images: torch.Tensor) -> float:
    """The mean length of the image gradient, sqrt(dx^2 + dy^2) per pixel, over images (N, C, H, W) in [0, 1].

    dx, dy: differences between horizontal and vertical neighbours (forward differences, on the (H-1) x (W-1)
    pixels that have both). A blur lowers it; compare reconstructions with the real images' value.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"sharpness takes images (N, C, H, W) in [0, 1], got {shape}; "
                         f"add .unsqueeze(1) for one channel.")
    x = images.detach().double()
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]  # (N, C, H-1, W-1)
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]  # (N, C, H-1, W-1)
    return float((dx.pow(2) + dy.pow(2)).sqrt().mean())


@torch.no_grad()
def reconstructions(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """model.reconstruct on `images` (N, C, H, W), `batch_size` at a time, on the CPU; model in eval mode."""
    model.eval()
    return torch.cat([model.reconstruct(x.to(model.device)).float().cpu() for x in images.split(batch_size)])


def evaluate_sharpening(course, models: dict, test_images: torch.Tensor, train, dataset: str = "fashion-mnist") -> dict:
    """What fine-tuning with the GAN term changed, per model (anything with `reconstruct`: a VQVAE, a VQGAN):

        mse                 the mean squared error of the reconstructions of test_images, per pixel, in [0, 1]
        fd                  the Fréchet distance of those reconstructions (metrics.evaluate, against the course's
                            reference test set; the first eval_size images), lower: more like real images
        sharpness           `sharpness` of the reconstructions
        sharpness_ratio     that as a fraction of the real images' sharpness (1: as sharp as the real images)

    and under "real" the same figures of test_images themselves (mse 0, ratio 1: the perfect reconstruction).
    test_images: held-out images, (N, C, H, W) in [0, 1]; use metrics.held_out_images(dataset, n), which are
    not among the FD's reference images (otherwise a perfect reconstruction would score FD 0). train: the data
    the models trained on (or the course), for evaluate's FD floor.
    """
    if not models:
        raise ValueError("models is empty: pass {name: model}, e.g. {'control': control.model, 'vqgan': gan.model}.")
    for name, model in models.items():
        if not callable(getattr(model, "reconstruct", None)):
            raise TypeError(f"models[{name!r}] is a {type(model).__name__} with no reconstruct(x): pass a VQVAE or a "
                            f"VQGAN (run.model, not the Run).")
    n = min(eval_size(course, dataset), len(test_images))
    real_sharpness = sharpness(test_images)

    def figures(x: torch.Tensor) -> dict:
        fd = evaluate(x, dataset, train=train, profile=course.profile, n=n)
        s = sharpness(x)
        return {"mse": float((x - test_images.float()).double().pow(2).mean()), "fd": fd["fd"],
                "fd_floor": fd["fd_floor"], "sharpness": s, "sharpness_ratio": s / real_sharpness, "n": n}

    out = {name: figures(reconstructions(model, test_images)) for name, model in models.items()}
    out["real"] = figures(test_images.float().cpu())
    return out
