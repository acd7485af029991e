"""Model families, one file each, all meeting one process contract: networks and processes only.

    base.py         the contract (Process, GenerativeProcess), ProcessModule, seeded
    classifier.py   a small conv classifier (lecture 00; the feature network for sample metrics)
    gan.py          the generic GAN process: the loss family, R1 and WGAN-GP penalties, spectral norm,
                    k D steps per G step, EMA of G
    toy_gan.py      the GAN process with two MLPs (lecture 01)
    dcgan.py        the GAN process with DCGAN's conv G and D, 28x28 and 8x8 (lecture 03)
    cgan.py         conditional GANs: labels or captions, concat or projection D, GAN-CLS (lecture 04)
    captions.py     captions measured from pixels, and their tokens (lecture 04's conditions)
    likelihoods.py  p(x|z) on images: Bernoulli, the 256-level discretised logistic, Gaussian (lecture 05)
    vae.py          the VAE: conv encoder and decoder, ELBO, IWAE, bits/dim (lecture 05)
    pixelcnn.py     PixelCNN and the gated PixelCNN: masked convs, a causality check, bits/dim (lecture 06);
                    on integer levels too (log_prob_levels, sample_levels): the VQ-VAE's prior over codes
    vqvae.py        the VQ-VAE: codebook, straight-through estimator, EMA and dead-code restarts, and sampling
                    through a PixelCNN prior over its 7x7 codes (lecture 07)
    vqgan.py        VQGAN in miniature: a VQ-VAE's decoder fine-tuned with a patch discriminator, weighted
                    by the adaptive lambda (lecture 07)

How the course sizes, trains and measures each family (its `*_config(course)`, `train_*`, benches)
lives a layer up, in `course_lib/recipes/`; nothing here imports it, nor `runs`, `metrics` or `bench`.

The contract (`Process` in `base.py`, a typing.Protocol) separates the *networks* (plain
nn.Modules that map tensors to tensors) from the *process* that owns them: its losses, its
sampling and the phases of its training. Every family's process:

- is built as `Family(config=None, seed=0, ...)`. `config` is a dataclass with defaults that
  holds every size and hyper-parameter; `seed` seeds the initial weights, which are drawn
  inside `seeded(seed)` so the global random state is left alone;
- has `config`, `seed` and `device` attributes;
- has `phases()`, the list of `Phase`s the one training loop runs (`Trainer(model)` calls it);
  each phase's loss function takes a batch and returns a dict of scalar tensors in float32,
  also under bf16 autocast (the likelihoods that bits/dim and the ELBO report depend on it;
  the loop refuses a half-precision loss);
- for generative families, has `sample(n, generator=None, cond=None)`: n samples, reproducible
  when a torch.Generator is passed; `cond` is the condition of a conditional model (class ids, or
  captions), one per sample, and an unconditional model refuses one;
- draws its training noise from `noise_stream()`, seeded from `seed`, so a run is reproducible;
- is saved with its config and seed (`Trainer.save`, `save_checkpoint`), so
  `Family.from_checkpoint(path)` rebuilds it and `load_or_train(...)` either loads a finished
  run or trains one, and refuses a checkpoint made with another config, showing the difference.

Importing a model module has no side effects.
"""
from .base import GenerativeProcess, Process, ProcessModule, seeded

__all__ = ["Process", "GenerativeProcess", "ProcessModule", "seeded"]
