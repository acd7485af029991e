"""Lab 7's harness: the adaptive weight's cases, turned from plain data into two losses at a decoder's last layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def last_layer_losses(h: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, critic: torch.Tensor,
                      gan_scale: float, delta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """A case -> (rec_loss, gan_loss, last_layer_weight, delta), the arguments of the library's adaptive_weight.

    A decoder's last layer W (C, F), a fresh copy that requires grad, maps features h (B, F) to images
    x_hat = sigmoid(h W^T) (B, C). rec_loss: the mean squared error to x (B, C); gan_loss: gan_scale times the
    non-saturating generator loss against a linear critic (C,), softplus(-critic . x_hat) averaged over the batch
    (gan_scale 0: the discriminator switched off, its loss still on the graph).
    """
    w = weight.clone().requires_grad_(True)  # (C, F)
    x_hat = torch.sigmoid(h @ w.T)  # (B, C)
    rec_loss = (x_hat - x).pow(2).mean()
    gan_loss = float(gan_scale) * F.softplus(-(x_hat @ critic)).mean()
    return rec_loss, gan_loss, w, float(delta)


# -- the references the build-and-train exercise builds on (see course_lib.harness), with the lab's signatures ------
def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N,) long: the nearest code by squared distance, as the library's Codebook.nearest."""
    d = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(1)  # (N, K)
    return d.argmin(1)


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(codebook term, beta x commitment term): the library's codebook_loss and commitment_loss."""
    from ..models.vqvae import codebook_loss, commitment_loss

    return codebook_loss(z_e, z_q), beta * commitment_loss(z_e, z_q)


def _build(build_vqvae, width: int, K: int, D: int, beta: float, seed: int):
    """The student's VQ-VAE, the global generator seeded with `seed` for the weights a network draws itself."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        vq = build_vqvae(int(width), int(K), int(D), float(beta), int(seed))
    if not all(hasattr(vq, a) for a in ("encode", "quantize", "decode", "phases", "codebook", "encoder", "decoder")):
        raise TypeError(f"build_vqvae must return the course's VQ-VAE process (course_lib.models.vqvae.VQVAE) or "
                        f"a subclass of it, got {type(vq).__name__}.")
    return vq


# -- the build-and-train exercise: the kernel trains the student's VQ-VAE; the grader judges its reconstructions ------
def train_and_reconstruct(build_vqvae):
    """The check cell's wrapper of `build_vqvae(width, K, D, beta, seed) -> VQVAE`:
    (width, K, D, beta, seed, steps, images, perm) -> what it did.

    Builds the student's VQ-VAE twice (the global generator seeded with `seed`): once with beta = 0, whose first
    training batch's loss gives the gradient norms reaching the encoder, the codebook and the decoder (with no
    commitment term, the encoder's gradient can only come through the straight-through path); and once with the
    case's beta, which trains `steps` steps in the course's loop on 4,096 Fashion-MNIST training images in [0, 1]
    (batches of 64). Before and after training it reconstructs the case's images (n, 1, 28, 28) from their codes:
    codes = quantize(encode(x)), then decode(codes). After training it also decodes the codes in the order `perm`.
    Returns {"before", "after": reconstructions (n, 1, 28, 28); "codes": (n, s, s) after training; "permuted":
    decode(codes[perm]); "grads": (3,) the norms for the encoder, the codebook and the decoder; "loss": the
    logged losses (k,)}. The grader computes the errors and the perplexity itself, in its own process.
    """
    from . import training_pairs
    from ..data import Batches
    from ..train import TrainConfig, Trainer

    def run(width: int, K: int, D: int, beta: float, seed: int, steps: int, images: torch.Tensor,
            perm: torch.Tensor) -> dict:
        data = training_pairs(seed).images  # (4096, 1, 28, 28) in [0, 1]
        # run names build_vqvae itself: the check finds the student's namespace in its closure (harness.builds_on)
        probe = _build(build_vqvae, width, K, D, 0.0, seed)
        probe.train()
        out = probe.loss(data[:64])
        parts = (list(probe.encoder.parameters()), [probe.codebook.weight], list(probe.decoder.parameters()))
        flat = [p for ps in parts for p in ps]
        grads = torch.autograd.grad(out["loss"], flat, allow_unused=True) if out["loss"].requires_grad \
            else [None] * len(flat)
        norms, i = [], 0
        for ps in parts:
            g = [grads[i + j] for j in range(len(ps)) if grads[i + j] is not None]
            norms.append(float(torch.sqrt(sum(x.double().pow(2).sum() for x in g))) if g else 0.0)
            i += len(ps)

        vq = _build(build_vqvae, width, K, D, beta, seed)

        def reconstruct() -> tuple[torch.Tensor, torch.Tensor]:
            vq.eval()
            with torch.no_grad():
                codes = vq.quantize(vq.encode(images))  # (n, s, s)
                return codes.cpu(), vq.decode(codes).float().cpu()  # (n, 1, 28, 28)

        _, before = reconstruct()
        vq.train()
        trainer = Trainer(vq, train_config=TrainConfig(log_every=10, progress=False))
        trainer.fit(Batches(data, 64, seed=int(seed)), steps=int(steps))
        codes, after = reconstruct()
        with torch.no_grad():
            permuted = vq.decode(codes[perm.long()]).float().cpu()
        return {"before": before, "after": after, "codes": codes, "permuted": permuted,
                "grads": torch.tensor(norms, dtype=torch.float64),
                "loss": torch.tensor(trainer.history.get("loss", []), dtype=torch.float64)}

    return run
