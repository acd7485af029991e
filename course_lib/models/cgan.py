"""Conditional GANs (lecture 04): labels or captions in, samples of that class and description out.

    gan = CGAN(cgan_config(course, "fashion-mnist"), seed=course.seed)       # projection D, labels
    run = train_cgan(course, gan, course.load_data("fashion-mnist"))
    gan.sample(10, cond=torch.arange(10))                                    # one of each class
    cap = CGAN(cgan_config(course, "fashion-mnist", condition="caption"))
    train_cgan(course, cap, data); cap.sample(4, cond=["dark large wide trouser"] * 4)

The generator is DCGAN's (models/dcgan.py) fed [z, e(c)]: the noise concatenated with a learned
embedding of the condition c. Two discriminators, both DCGAN's conv body phi:

    concat      the condition as k constant maps beside the image (Mirza and Osindero 2014):
                D(x, c) = psi(phi([x, e(c) broadcast to H x W]))
    projection  Miyato and Koyama 2018: D(x, c) = psi(phi(x)) + <e(c), mean_hw phi(x)>, the
                logit of an unconditional D plus the inner product of the class embedding with the
                image's features (the form the log density ratio takes for a softmax class model)

The matching-aware discriminator (Reed et al. 2016, GAN-CLS) also sees real images with a wrong
condition and must call them fake. In the minimisation form the loop uses (minus the paper's
objective), with s = sigmoid(a):

    L_D = -log s_r - (log(1 - s_w) + log(1 - s_f)) / 2
        = softplus(-a_r) + (softplus(a_w) + softplus(a_f)) / 2

Captions are measured from pixels, so no annotation is needed: `attributes` gives each image's ink
intensity, area and width; `Captioner.fit` puts each threshold at its class's median, so each word
of a pair ("dark"/"light", "small"/"large", "narrow"/"wide") describes half of every class; a caption
is "<intensity> <area> <width> <class>", e.g. "light large narrow trouser". A bag-of-words
`TextEncoder` (the sum of its words' embeddings; the order of words does not matter) is trained
with each network. The process measures captions of real batches on the fly: batches stay
(images, labels).

Short runs of a conditional G tend to ignore the noise: each class becomes one template. Two standard
remedies are on by default: D sees the batch's feature spread (`MinibatchStd`, Karras et al. 2018),
and G's loss pays for images that differ when the noise differs (`mode_seeking`, Mao et al. 2019).
Lecture 04 measures the variants; `python -m course_lib.bench cgan` records the default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DATASETS, ImageData
from ..runs import keep_trained, train_with_snapshots, training_figures
from ..train import TrainConfig, Trainer
from .base import seeded
from .dcgan import DCGAN, DCGANConfig, Discriminator, Generator, _init
from .gan import GAN, PROBABILITY_LOSSES, LossOnLogits

__all__ = ["CGANConfig", "CGAN", "cgan_config", "train_cgan", "CGANRun", "ConditionalGenerator",
           "ConcatDiscriminator", "ProjectionDiscriminator", "TextEncoder", "Captioner", "concat_noise",
           "condition_maps", "projection_logits", "matching_aware_d_loss", "wrong_labels", "wrong_captions",
           "attributes", "fit_thresholds", "caption", "encode_caption", "vocabulary", "class_words", "VOCAB",
           "ATTRIBUTES", "attribute_accuracy", "class_accuracy", "per_class_metrics", "class_grid", "BENCHMARKS"]


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
                             f"{self.n_classes} classes; cgan_config(course, dataset) sets both.")
        if self.matching_aware and (self.r1 > 0 or self.gp > 0):
            raise ValueError("matching_aware=True has no gradient penalty here: pass r1=0 and gp=0.")


# -- captions: attributes measured from pixels, words, tokens ------------------------------------------------
ATTRIBUTES = (("intensity", "dark", "light"), ("area", "small", "large"), ("width", "narrow", "wide"))
PAD = "<pad>"  # token 0: fills short captions to the batch's longest; the text encoder ignores it
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def class_words(classes: Sequence[str]) -> tuple[str, ...]:
    """One lower-case word per class: "T-shirt/top" -> "t-shirt", "Ankle boot" -> "ankle-boot", "3" -> "three"."""
    return tuple(_DIGITS[int(c)] if c.isdigit() else c.lower().split("/")[0].replace(" ", "-") for c in classes)


def vocabulary(classes: Sequence[str]) -> tuple[str, ...]:
    """(PAD, the six attribute words, the class words): a word's token id is its index here."""
    return (PAD, *[w for _, low, high in ATTRIBUTES for w in (low, high)], *class_words(classes))


VOCAB = vocabulary(DATASETS["fashion-mnist"].classes)


def attributes(images: torch.Tensor, ink: float = 0.1) -> dict[str, torch.Tensor]:
    """Per-image measurements of images (N, 1, H, W) in [0, 1]; each entry (N,).

    intensity: mean value of the inked pixels (value > ink): how bright the garment or stroke is;
    area: mean of min(x / 0.5, 1): the fraction of the image that is inked (fainter pixels count in part);
    width: 2 x the standard deviation of the ink's column position, over W: its horizontal spread.
    """
    x = images.float().flatten(1, 2)  # (N, H, W): one channel
    mask = (x > ink).float()
    intensity = (x * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)
    area = (x / 0.5).clamp(max=1).mean((1, 2))
    mass = x.sum(1)  # (N, W): the ink in each column
    cols = torch.arange(x.shape[2], device=x.device, dtype=x.dtype)
    total = mass.sum(1).clamp(min=1e-6)
    mu = (mass * cols).sum(1) / total
    var = (mass * (cols - mu[:, None]) ** 2).sum(1) / total
    return {"intensity": intensity, "area": area, "width": 2 * var.sqrt() / x.shape[2]}


def _measure(images: torch.Tensor) -> torch.Tensor:
    a = attributes(images)
    return torch.stack([a[name] for name, _, _ in ATTRIBUTES], 1)  # (N, 3)


def fit_thresholds(images: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class medians of each attribute, (n_classes, 3): half of each class gets each word of a pair."""
    values, labels = _measure(images), labels.to(images.device)
    out = []
    for k in range(n_classes):
        rows = values[labels == k]
        if len(rows) == 0:
            raise ValueError(f"class {k} has no images, so its thresholds cannot be set: fit on data with every class.")
        out.append(rows.quantile(0.5, dim=0))
    return torch.stack(out)


def _high(images: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """(N, 3) bool: True where the image is above its class's threshold (the second word of the pair)."""
    return _measure(images) > thresholds.to(images.device)[labels.to(images.device)]


def caption(images: torch.Tensor, labels: torch.Tensor, thresholds: torch.Tensor,
            classes: Sequence[str] = DATASETS["fashion-mnist"].classes) -> list[str]:
    """"<intensity> <area> <width> <class>" for each image, e.g. "dark large narrow coat"."""
    high, words = _high(images, labels, thresholds).tolist(), class_words(classes)
    return [" ".join([*(pair[1 + h] for pair, h in zip(ATTRIBUTES, row)), words[int(y)]])
            for row, y in zip(high, labels.tolist())]


def encode_caption(text: str, vocab: Sequence[str] = VOCAB) -> list[int]:
    """A caption -> its token ids; a ValueError that lists the vocabulary for an empty caption or unknown words."""
    words = text.lower().replace(",", " ").split() if isinstance(text, str) else None
    listing = f"Captions are made of these words (any order): {', '.join(vocab[1:])}."
    if not words:
        raise ValueError(f"the caption {text!r} is empty. {listing}")
    unknown = [w for w in words if w not in vocab or w == PAD]
    if unknown:
        raise ValueError(f"unknown word(s) {unknown} in the caption {text!r}. {listing}")
    return [vocab.index(w) for w in words]


class Captioner(nn.Module):
    """The per-class thresholds (a buffer, saved with the model) and the vocabulary of one dataset."""

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__()
        self.classes, self.vocab = tuple(classes), vocabulary(classes)
        self.register_buffer("thresholds", torch.zeros(len(classes), len(ATTRIBUTES)))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, images: torch.Tensor, labels: torch.Tensor) -> "Captioner":
        self.thresholds.copy_(fit_thresholds(images, labels, len(self.classes)))
        self.fitted.fill_(True)
        return self

    def _check(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("the captioner has no thresholds yet: call .fit(images, labels) on the training data "
                               "(train_cgan does).")

    def caption(self, images: torch.Tensor, labels: torch.Tensor) -> list[str]:
        self._check()
        return caption(images, labels, self.thresholds, self.classes)

    def high(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, 3) bool, one column per attribute pair: True where the image earns the pair's second word
        ("light", "large", "wide") for its class."""
        self._check()
        return _high(images, labels, self.thresholds)

    def tokens(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The token ids of `caption(images, labels)` without strings: (N, 4) long, on the images' device."""
        high = self.high(images, labels).long()  # (N, 3)
        attr = 1 + 2 * torch.arange(len(ATTRIBUTES), device=high.device) + high  # (N, 3): low word or high word
        cls = 1 + 2 * len(ATTRIBUTES) + labels.to(high.device).long()  # (N,)
        return torch.cat([attr, cls[:, None]], 1)

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Captions -> token ids (B, L), padded with 0 to the longest."""
        ids = [encode_caption(t, self.vocab) for t in ([texts] if isinstance(texts, str) else texts)]
        out = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long, device=self.thresholds.device)
        for i, row in enumerate(ids):
            out[i, :len(row)] = torch.tensor(row)
        return out

    def parse(self, text: str) -> tuple[int, dict[str, bool]]:
        """(class id, {attribute: True for its second word}) of a caption that names exactly one class."""
        words = [self.vocab[i] for i in encode_caption(text, self.vocab)]
        named = [w for w in words if w in class_words(self.classes)]
        if len(named) != 1:
            raise ValueError(f"the caption {text!r} must name exactly one class, one of {class_words(self.classes)}.")
        said = {}
        for name, low, high in ATTRIBUTES:
            if low in words and high in words:
                raise ValueError(f"the caption {text!r} says both {low!r} and {high!r}.")
            if low in words or high in words:
                said[name] = high in words
        return class_words(self.classes).index(named[0]), said

    def attribute_accuracy(self, images: torch.Tensor, captions: Sequence[str]) -> float:
        """The fraction of attribute words in `captions` that the images satisfy, with each class's thresholds."""
        self._check()
        parsed = [self.parse(t) for t in captions]
        labels = torch.tensor([y for y, _ in parsed])
        high = self.high(images, labels).cpu()  # (N, 3)
        hits = [high[i, j] == said[name] for i, (_, said) in enumerate(parsed)
                for j, (name, _, _) in enumerate(ATTRIBUTES) if name in said]
        if not hits:
            raise ValueError("the captions name no attribute words, so there is nothing to check.")
        return float(torch.stack(hits).double().mean())


def attribute_accuracy(images: torch.Tensor, captions: Sequence[str], captioner: Captioner) -> float:
    """images (N, 1, H, W) in [0, 1] drawn for `captions`: the fraction of their attribute words that hold."""
    return captioner.attribute_accuracy(images, captions)


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
        """Features phi(x) (B, 2w, s, s) and conditions -> logits (B,).

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
    """

    config_class = CGANConfig
    encode, decode = DCGAN.encode, DCGAN.decode  # [0, 1] <-> G's tanh range [-1, 1]

    def __init__(self, config: CGANConfig | None = None, seed: int = 0, d_loss: LossOnLogits | None = None,
                 g_loss: LossOnLogits | None = None, ma_loss: LossOnLogits | None = None) -> None:
        """ma_loss(real, wrong, fake logits) replaces `matching_aware_d_loss` (the lab plugs the student's in)."""
        c = config or CGANConfig()
        with seeded(seed):
            g = ConditionalGenerator(c)
            d = ProjectionDiscriminator(c) if c.d_kind == "projection" else ConcatDiscriminator(c)
        super().__init__(g, d, c, seed=seed, d_loss=d_loss, g_loss=g_loss)
        self.captioner = Captioner(DATASETS[c.dataset].classes) if c.condition == "caption" else None
        self.ma_loss = ma_loss or (matching_aware_d_loss if c.loss in PROBABILITY_LOSSES and d_loss is None else None)

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
        return self.G_ema if ema and self.G_ema is not None else self.G

    def embed(self, cond: Any, ema: bool = True) -> torch.Tensor:
        """G's embedding e(c) (B, embed_dim) of conditions (class ids or captions), from the sampling generator."""
        return self._generator(ema).embed(self.condition(cond))

    def generate_embedded(self, z: torch.Tensor, embedded: torch.Tensor, ema: bool = True) -> torch.Tensor:
        """Images in [0, 1] from noise (B, z_dim) and embeddings (B, embed_dim), e.g. (1 - t) e(a) + t e(b)."""
        return self.decode(self._generator(ema).from_embedding(z.to(self.device), embedded.to(self.device)))

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


def cgan_config(course, dataset: str = "fashion-mnist", **changes) -> CGANConfig:
    """The course's CGANConfig: image size and classes from the dataset, width from the profile."""
    size = 8 if dataset == "digits" else 28
    return CGANConfig(**{"image_size": size, "width": course.profile.width, "dataset": dataset,
                         "n_classes": len(DATASETS[dataset].classes), **changes})


# -- measuring ----------------------------------------------------------------------------------------------
def class_accuracy(images: torch.Tensor, labels: torch.Tensor, dataset: str = "fashion-mnist") -> float:
    """The fraction of images (N, 1, H, W) in [0, 1] that the dataset's evaluation classifier calls their label."""
    from ..metrics import features

    _, logits = features(images, dataset)
    return float((logits.argmax(1).cpu() == torch.as_tensor(labels).cpu()).double().mean())


def per_class_metrics(images: torch.Tensor, labels: torch.Tensor, real: ImageData) -> list[dict[str, float]]:
    """For each class k: the Fréchet distance, precision and recall of the samples meant as k against the real
    images of class k (evaluator features). A model that collapses inside a class keeps a fair FD overall and
    loses recall here."""
    from ..metrics import K, features, frechet_distance, prdc

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
def class_grid(gan: CGAN, noise: torch.Tensor, conditions: Sequence | None = None) -> torch.Tensor:
    """Rows: conditions (default: every class); columns: the same noise (m, z_dim). -> (rows * m, C, S, S) in [0, 1]."""
    if conditions is None:
        k = gan.config.n_classes
        conditions = list(range(k)) if gan.captioner is None else [
            f"light large wide {w}" for w in class_words(gan.captioner.classes)]
    c = gan.condition(conditions)  # (rows,) or (rows, L)
    m = len(noise)
    z = noise.to(gan.device).repeat(len(c), 1)  # (rows * m, z_dim): row r uses the same m noise vectors
    return gan.decode(gan.generate(z, c.repeat_interleave(m, 0), ema=True)).float().cpu()


# -- training -----------------------------------------------------------------------------------------------
@dataclass
class CGANRun:
    gan: CGAN
    trainer: Trainer
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, class-by-noise grid)

    @property
    def history(self) -> dict:
        return self.trainer.history


def train_cgan(course, gan: CGAN, data: ImageData, steps: int | None = None, epochs: int | None = None,
               checkpoint: str | Path | None = None, snapshots: int = 4, n_cols: int | None = None,
               train_config: TrainConfig | None = None, callback=None, retrain: bool = False) -> CGANRun:
    """Train on (images, labels) batches like `train_dcgan`; snapshots are class-by-noise grids (rows classes,
    n_cols shared noise columns, default profile.n_show // n_classes). A caption model's thresholds are fitted
    on `data` first."""
    gan.to(course.device)
    data = data.to(course.device)
    if gan.captioner is not None:
        gan.captioner.fit(data.images, data.labels)  # a loaded checkpoint restores its own
    fixed = gan.z(n_cols or max(1, course.profile.n_show // gan.config.n_classes), generator=course.generator(2))
    batches = data.batches(min(course.profile.batch_size, len(data)), seed=course.seed, labels=True)
    trainer, shots = train_with_snapshots(course, gan, batches, lambda: class_grid(gan, fixed), steps=steps,
                                          epochs=epochs, checkpoint=checkpoint, snapshots=snapshots,
                                          train_config=train_config, callback=callback, retrain=retrain)
    return CGANRun(gan, trainer, shots)


# -- the bench ----------------------------------------------------------------------------------------------
def bench_cgan(course, dataset: str = "fashion-mnist") -> dict:
    """Label CGAN (projection D) and caption CGAN: FD, class accuracy, per-class FD, attribute accuracy."""
    from ..evaluators import manifest
    from ..metrics import evaluate

    data = course.load_data(dataset, "train")
    k = len(data.classes)
    n = min(course.profile.eval_size, 300 if dataset == "digits" else 10_000)
    reference = course.load_data(dataset, "test", size=n, device="cpu")  # the test images evaluate compares with
    labels = torch.arange(n) % k  # balanced classes
    quiet = TrainConfig(log_every=10, progress=False)
    out: dict = {"dataset": dataset, "train_images": len(data), "width": course.profile.width}
    gan = CGAN(cgan_config(course, dataset), seed=course.seed)
    run = train_cgan(course, gan, data, snapshots=0, train_config=quiet)
    keep_trained(course, gan, f"cgan-{dataset}-label", run.trainer)
    x = gan.sample(n, generator=course.generator(3, device=course.device), cond=labels)
    ev = evaluate(x, dataset, labels=labels, profile=course.profile, n=n)
    per_class = per_class_metrics(x, labels, reference)
    fds, recalls = (torch.tensor([m[key] for m in per_class]) for key in ("fd", "recall"))
    cap = CGAN(cgan_config(course, dataset, condition="caption"), seed=course.seed)
    cap_run = train_cgan(course, cap, data, snapshots=0, train_config=quiet)
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
