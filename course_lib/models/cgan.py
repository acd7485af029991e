"""Conditional GANs (lecture 04): labels or captions in, samples of that class and description out.

    gan = CGAN(CGANConfig(width=32), seed=0)                                 # projection D, labels
    gan.sample(10, cond=torch.arange(10))                                    # one of each class
    cap = CGAN(CGANConfig(condition="caption"))
    cap.captioner.fit(train.images, train.labels); cap.sample(4, cond="dark large wide trouser")

The generator is DCGAN's (models/dcgan.py) fed [z, e(c)]: the noise concatenated with a learned
embedding of the condition c. Two discriminators, both DCGAN's conv body phi:

    concat      the condition as k constant maps beside the image (Mirza and Osindero 2014):
                D(x, c) = psi(phi([x, e(c) broadcast to H x W]))
    projection  Miyato and Koyama 2018: D(x, c) = psi(phi(x)) + <e(c), phi(x) flattened>, the
                logit of an unconditional D plus the inner product of the class embedding with the
                image's features (the form the log density ratio takes when p(c | x) is a softmax in
                phi(x)); the whole map, not the paper's sum over h, w (ProjectionDiscriminator.head
                says why). With minibatch_std, phi(x) carries the batch's spread as one more channel,
                so a score depends on the batch as well as the image

The matching-aware discriminator (Reed et al. 2016, GAN-CLS) also sees real images with a wrong
condition and must call them fake. In the minimisation form the loop uses (minus the paper's
objective), with s = sigmoid(a):

    L_D = -log s_r - (log(1 - s_w) + log(1 - s_f)) / 2
        = softplus(-a_r) + (softplus(a_w) + softplus(a_f)) / 2

Captions are measured from pixels (`models/captions.py`), e.g. "light large narrow trouser". A
bag-of-words `TextEncoder` (the sum of its words' embeddings; the order of words does not matter) is
trained with each network. The process measures captions of real batches on the fly: batches stay
(images, labels).

Short runs of a conditional G tend to ignore the noise: each class becomes one template. Two standard
remedies are on by default: D sees the batch's feature spread (`MinibatchStd`, Karras et al. 2018),
and G's loss pays for images that differ when the noise differs (`mode_seeking`, Mao et al. 2019).
Lecture 04 measures the variants; `python -m course_lib.bench cgan` records the default. The course's
sizes per profile, the training driver, the class grid, the per-class metrics and the bench live in
`course_lib/recipes/cgan.py`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError
from ..data import DATASETS
from .base import seeded
from .captions import ATTRIBUTES, Captioner, vocabulary
from .dcgan import DCGAN, DCGANConfig, Discriminator, Generator, _init
from .gan import GAN, PROBABILITY_LOSSES, LossOnLogits

__all__ = ["CGANConfig", "CGAN", "ConditionalGenerator", "ConcatDiscriminator", "ProjectionDiscriminator",
           "MinibatchStd", "TextEncoder", "concat_noise", "condition_maps", "projection_logits",
           "matching_aware_d_loss", "wrong_labels", "wrong_captions"]


@dataclass
class CGANConfig(DCGANConfig):
    conditional: bool = True  # always: batches are (images, labels)
    dataset: str = "fashion-mnist"  # names the classes, and so the caption vocabulary
    n_classes: int = 10
    embed_dim: int = 32  # size of G's condition embedding e(c), concatenated with z
    map_channels: int = 10  # the concat D's condition maps: e(c) of this size, broadcast to H x W
    d_kind: str = "projection"  # "projection" (Miyato and Koyama 2018) or "concat" (a label map)
    matching_aware: bool = True  # GAN-CLS: D also rejects real images with a wrong condition
    condition: str = "label"  # "label" (class ids) or "caption" (token ids of measured captions)
    text_pool: str = "sum"  # the TextEncoder's bag of words: "sum" or "mean" of the word embeddings
    minibatch_std: bool = True  # D also sees the batch's feature spread (Karras et al. 2018): a G that ignores z is seen
    mode_seeking: float = 1.0  # weight of Mao et al. 2019's term: G is paid for images that differ when z differs

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.conditional:
            raise ValueError("a CGAN is conditional: leave conditional=True (use DCGAN for an unconditional GAN).")
        if self.d_kind not in ("projection", "concat"):
            raise ValueError(f"d_kind must be 'projection' or 'concat', got {self.d_kind!r}.")
        if self.condition not in ("label", "caption"):
            raise ValueError(f"condition must be 'label' or 'caption', got {self.condition!r}.")
        if self.dataset not in DATASETS or len(DATASETS[self.dataset].classes) != self.n_classes:
            raise ValueError(f"dataset {self.dataset!r} must be one of {sorted(DATASETS)} with n_classes="
                             f"{self.n_classes} classes; recipes.cgan.cgan_config(course, dataset) sets both.")
        if self.matching_aware and (self.r1 > 0 or self.gp > 0):
            raise ValueError("matching_aware=True has no gradient penalty here: pass r1=0 and gp=0.")


# -- the text encoder ---------------------------------------------------------------------------------------
class TextEncoder(nn.Module):
    """Bag of words: token ids (B, L), 0 = padding -> the sum (or mean) of the words' embeddings (B, dim).

    Either ignores the order of the words. The sum is the default: a mean over a 4-word caption
    scales the class word's share, and its learning rate, by 1/4: on Fashion-MNIST (cpu profile,
    279 steps, pooled projection D) the caption model's class accuracy was 0.12 with the mean, 0.28
    with the sum.
    """

    def __init__(self, vocab_size: int, dim: int, pool: str = "sum") -> None:
        super().__init__()
        if pool not in ("sum", "mean"):
            raise ValueError(f"pool must be 'sum' or 'mean', got {pool!r}.")
        self.pool = pool
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)  # the pad row is 0 and gets no gradient

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.ndim == 2, f"TextEncoder takes token ids (B, L), got {tuple(tokens.shape)}; see Captioner.encode"
        total = self.embed(tokens).sum(1)  # (B, L, dim) -> (B, dim); padding adds 0
        if self.pool == "sum":
            return total
        return total / (tokens != 0).sum(1, keepdim=True).clamp(min=1)  # over the words, padding excluded


# -- the networks -------------------------------------------------------------------------------------------
def _encoder(c: CGANConfig, dim: int) -> nn.Module:
    """e(c): class id (B,) -> (B, dim), or caption tokens (B, L) -> (B, dim)."""
    if c.condition == "label":
        return nn.Embedding(c.n_classes, dim)
    return TextEncoder(len(vocabulary(DATASETS[c.dataset].classes)), dim, c.text_pool)


def concat_noise(z: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
    """G's input: z (B, z_dim) and e(c) (B, k) -> (B, z_dim + k)."""
    return torch.cat([z, embedded.to(z.dtype)], 1)


def condition_maps(x: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
    """The concat D's input: images (B, C, H, W) and e(c) (B, k) -> (B, C + k, H, W), e(c) constant over H x W."""
    maps = embedded.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, k, H, W)
    return torch.cat([x, maps], 1)


def projection_logits(unconditional: torch.Tensor, features: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
    """Miyato and Koyama 2018: psi(phi(x)) (B,) + <e(y), phi(x)> over (B, d), (B, d) -> logits (B,)."""
    return unconditional + (embedded * features).sum(1)


class MinibatchStd(nn.Module):
    """(B, C, H, W) -> (B, C + 1, H, W): one more map, constant, the features' standard deviation over the batch
    averaged over (C, H, W) (Karras et al. 2018). A batch of near-copies has a small one, so D can tell a
    generator that ignores its noise from the data, which a per-image D cannot."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        spread = h.float().std(0, unbiased=False).mean() if len(h) > 1 else h.new_zeros((), dtype=torch.float32)
        return torch.cat([h, spread.to(h.dtype).expand(len(h), 1, *h.shape[2:])], 1)


def _with_spread(body: nn.Sequential, c: CGANConfig) -> nn.Sequential:
    """DCGAN's D body with MinibatchStd before its last conv, which then takes one more channel."""
    if not c.minibatch_std:
        return body
    last = body[-1]
    conv = nn.Conv2d(last.in_channels + 1, last.out_channels, last.kernel_size, last.stride, last.padding)
    _init(conv)
    return nn.Sequential(*body[:-1], MinibatchStd(), conv)


class ConditionalGenerator(nn.Module):
    """z (B, z_dim), c -> images (B, C, S, S) in [-1, 1]: DCGAN's generator on [z, e(c)]."""

    def __init__(self, c: CGANConfig) -> None:
        super().__init__()
        self.embed = _encoder(c, c.embed_dim)
        self.net = Generator(dataclasses.replace(c, z_dim=c.z_dim + c.embed_dim))

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.from_embedding(z, self.embed(cond))

    def from_embedding(self, z: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) and a condition's embedding e(c) (B, embed_dim) -> images: any point between classes too."""
        return self.net(concat_noise(z, embedded))


class ConcatDiscriminator(nn.Module):
    """images (B, C, S, S), c -> logits (B, 1, 1, 1): DCGAN's discriminator on [x, e(c) as maps]."""

    def __init__(self, c: CGANConfig) -> None:
        super().__init__()
        self.embed = _encoder(c, c.map_channels)
        self.net = Discriminator(dataclasses.replace(c, channels=c.channels + c.map_channels))
        self.net.net = _with_spread(self.net.net, c)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(condition_maps(x, self.embed(cond)))


class ProjectionDiscriminator(nn.Module):
    """images (B, C, S, S), c -> logits (B,): DCGAN's body phi, its last conv psi, and the projection."""

    def __init__(self, c: CGANConfig) -> None:
        super().__init__()
        body = _with_spread(Discriminator(c).net, c)
        self.phi, self.psi = body[:-1], body[-1]  # (B, 2w [+ 1], s, s) features; a conv over them -> (B, 1, 1, 1)
        s = c.image_size // 4
        self.embed = _encoder(c, self.psi.in_channels * s * s)  # e(y) has one weight per feature of the whole map
        for m in self.embed.modules():  # N(0, 0.02) like psi's weights: the class term starts as small as psi
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.padding_idx is not None:
                    m.weight.data[m.padding_idx] = 0

    def head(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Features phi(x) (B, 2w [+ 1 with minibatch_std], s, s) and conditions -> logits (B,).

        phi(x) is the whole flattened map, not Miyato and Koyama's global sum: clothes differ by
        where things are. On Fashion-MNIST (cpu profile, 279 steps, matching-aware) the pooled
        features gave class accuracy 0.62, the whole map 0.85.
        """
        return projection_logits(self.psi(h).flatten(1)[:, 0], h.flatten(1), self.embed(cond).to(h.dtype))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(self.phi(x), cond)


# -- the matching-aware loss and wrong conditions ------------------------------------------------------------
def matching_aware_d_loss(real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """GAN-CLS's D loss, minimised: -mean log s_r - (mean log(1 - s_w) + mean log(1 - s_f)) / 2, s = sigmoid(a).

    log s = -softplus(-a) and log(1 - s) = -softplus(a): finite for any logit.
    """
    return F.softplus(-real_logits).mean() + 0.5 * (F.softplus(wrong_logits).mean() + F.softplus(fake_logits).mean())


def wrong_labels(labels: torch.Tensor, n_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A label != the true one for each example, uniform over the other n_classes - 1: (y + U{1..K-1}) mod K."""
    g = generator
    shift = torch.randint(1, n_classes, labels.shape, generator=g, device=g.device if g is not None else labels.device)
    return (labels + shift.to(labels.device)) % n_classes


def wrong_captions(tokens: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each caption (B, L) replaced by another caption of the batch that says something else (as a bag of words).

    The batch is rolled by random shifts until every row has a different caption.
    """
    n = len(tokens)
    bag = tokens.sort(1).values  # order-free: "dark coat" and "coat dark" are the same caption
    out, todo = tokens.clone(), torch.ones(n, dtype=torch.bool, device=tokens.device)
    shifts = torch.randperm(max(n - 1, 1), generator=generator, device=generator.device if generator else "cpu") + 1
    for s in shifts.tolist():
        ok = todo & (bag.roll(s, 0) != bag).any(1)
        out[ok] = tokens.roll(s, 0)[ok]
        todo &= ~ok
        if not todo.any():
            return out
    raise ValueError("no wrong caption in this batch for some images: every other caption is the same as theirs.")


# -- the process --------------------------------------------------------------------------------------------
class CGAN(GAN):
    """The generic GAN process (conditional=True) with a conditional DCGAN G and a concat or projection D.

    Batches are (images in [0, 1], labels); with condition="caption" the labels and the images'
    measured attributes become caption tokens (B, 4) on the fly (`captioner` holds the thresholds).
    `CGAN(config, generator=G, discriminator=D)` trains networks of your own in the same process.
    """

    config_class = CGANConfig
    from_data, to_data = DCGAN.from_data, DCGAN.to_data  # [0, 1] <-> G's tanh range [-1, 1]

    def __init__(self, config: CGANConfig | None = None, seed: int = 0, d_loss: LossOnLogits | None = None,
                 g_loss: LossOnLogits | None = None, ma_loss: LossOnLogits | None = None,
                 generator: nn.Module | None = None, discriminator: nn.Module | None = None) -> None:
        """ma_loss(real, wrong, fake logits) replaces `matching_aware_d_loss` (the lab plugs the student's in).

        generator, discriminator: replace the config's networks (a lab plugs the student's in): G(z, c) -> images
        in [-1, 1], D(x, c) -> one logit per example. The config's sizes then describe only the data (image_size,
        n_classes, z_dim: G's noise) and the process (losses, learning rates, EMA, mode seeking); width,
        embed_dim, d_kind and minibatch_std are the config networks' own and unused.
        """
        c = config or CGANConfig()
        with seeded(seed):  # only the config's networks: networks passed in keep the weights they were built with
            g = generator if generator is not None else ConditionalGenerator(c)
            d = discriminator if discriminator is not None else (
                ProjectionDiscriminator(c) if c.d_kind == "projection" else ConcatDiscriminator(c))
        super().__init__(g, d, c, seed=seed, d_loss=d_loss, g_loss=g_loss)
        self.captioner = Captioner(DATASETS[c.dataset].classes) if c.condition == "caption" else None
        self.ma_loss = ma_loss or (matching_aware_d_loss if c.loss in PROBABILITY_LOSSES and d_loss is None else None)

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu", **kwargs: Any) -> "CGAN":
        """Rebuild a saved CGAN. One saved with networks of your own needs them again, freshly built:
        CGAN.from_checkpoint(path, generator=G, discriminator=D) (kwargs go to the constructor)."""
        try:
            return super().from_checkpoint(path, map_location, **kwargs)  # type: ignore[return-value]
        except CheckpointError as e:
            if "generator" in kwargs or "discriminator" in kwargs:
                raise
            raise CheckpointError(f"{e}\nIf it was saved from a CGAN built with generator= and discriminator= of your "
                                  f"own, build them as before and pass them: CGAN.from_checkpoint(path, generator=G, "
                                  f"discriminator=D).") from e

    def condition(self, cond: Any) -> torch.Tensor:
        """A condition as the networks take it: an int or ints (class ids), or a caption or captions (strings)."""
        if isinstance(cond, str) or (isinstance(cond, (list, tuple)) and cond and isinstance(cond[0], str)):
            if self.captioner is None:
                raise ValueError("this CGAN is conditioned on labels: pass class ids, not captions.")
            return self.captioner.encode(cond).to(self.device)
        cond = torch.as_tensor(cond, device=self.device).long()
        if self.captioner is not None and cond.ndim < 2:
            raise ValueError(f"this CGAN is conditioned on captions: pass strings, e.g. "
                             f"'{' '.join(p[1] for p in ATTRIBUTES)} {self.captioner.vocab[-1]}'.")
        return cond.reshape(1) if cond.ndim == 0 else cond  # one class id -> (1,)

    def _generator(self, ema: bool) -> ConditionalGenerator:
        net = self.G_ema if ema and self.G_ema is not None else self.G
        if not (hasattr(net, "embed") and hasattr(net, "from_embedding")):
            raise TypeError(f"this CGAN's generator is your own {type(net).__name__}, which has no `embed` and "
                            f"`from_embedding(z, embedded)`: give it both (see ConditionalGenerator) to use embed() "
                            f"and generate_embedded(), or sample with gan.sample(n, cond=...).")
        return net

    def embed(self, cond: Any, ema: bool = True) -> torch.Tensor:
        """G's embedding e(c) (B, embed_dim) of conditions (class ids or captions), from the sampling generator."""
        return self._generator(ema).embed(self.condition(cond))

    def generate_embedded(self, z: torch.Tensor, embedded: torch.Tensor, ema: bool = True) -> torch.Tensor:
        """Images in [0, 1] from noise (B, z_dim) and embeddings (B, embed_dim), e.g. (1 - t) e(a) + t e(b)."""
        return self.to_data(self._generator(ema).from_embedding(z.to(self.device), embedded.to(self.device)))

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, Any]:
        x, cond = super()._unpack(batch)
        if self.captioner is not None and cond.ndim == 1:  # labels -> the tokens of the images' captions
            cond = self.captioner.tokens(batch[0], cond)
        return x, cond

    def wrong(self, cond: torch.Tensor) -> torch.Tensor:
        """Mismatched conditions for the matching-aware loss, from the training noise stream."""
        if cond.ndim == 1:
            return wrong_labels(cond, self.config.n_classes, self.noise_stream())
        return wrong_captions(cond, self.noise_stream())

    def discriminator_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        if not self.config.matching_aware:
            return super().discriminator_loss(batch)
        real, cond = self._unpack(batch)
        with torch.no_grad():
            fake = self.generate(self.z(len(real)), cond)
        wrong = self.wrong(cond)
        if isinstance(self.D, ProjectionDiscriminator):  # phi(real) once for both conditions: the same numbers
            h = self.D.phi(real)
            r, w = self.D.head(h, cond).float(), self.D.head(h, wrong).float()
        else:
            r, w = self.logits(real, cond).float(), self.logits(real, wrong).float()
        f = self.logits(fake, cond).float()
        if self.ma_loss is not None:
            loss = self.ma_loss(r, w, f)
        else:  # the same average for any loss: D's loss against the wrong pairs and against the fakes
            loss = 0.5 * (self.d_loss(r, w) + self.d_loss(r, f))
        return {"d_loss": loss, "score_real": r.mean().detach(), "score_wrong": w.mean().detach(),
                "score_fake": f.mean().detach()}

    def generator_loss(self, batch: Any) -> dict[str, torch.Tensor]:
        if self.config.mode_seeking <= 0:
            return super().generator_loss(batch)
        real, cond = self._unpack(batch)
        z = self.z(len(real))
        fake = self.generate(z, cond)
        out = {"g_loss": self.g_loss(self.logits(fake, cond).float())}
        half = len(real) // 2  # pairs (fake[i], fake2[i]), i < half: one condition, two noise vectors
        z2 = self.z(half)
        fake2 = self.generate(z2, cond[:half])
        ratio = (fake[:half] - fake2).abs().flatten(1).mean(1).float() / (z[:half] - z2).abs().mean(1).float()
        out["mode_seeking"] = ratio.mean().detach()
        out["g_loss"] = out["g_loss"] - self.config.mode_seeking * ratio.mean()
        return out

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, cond: Any = None) -> torch.Tensor:
        """n samples in [0, 1] for `cond`: class ids or captions, one per sample (or one for all)."""
        if cond is None:
            raise ValueError("a CGAN needs cond=...: class ids (e.g. torch.arange(10)) or captions (strings).")
        c = self.condition(cond)
        if len(c) == 1 and n > 1:
            c = c.expand(n, *c.shape[1:])
        return super().sample(n, generator, cond=c)
