"""Lab 4 checks: the conditional GAN's pieces, each against the library's own (course_lib.models.cgan).

condition_input is checked with its gradient: the lab's check cell reports G's input and the
gradient of its sum with respect to the embedding table, so an input built from a one-hot code or
from a detached copy of the table fails. The projection cases include B = d, where a sum over the
batch has the right shape and the wrong numbers. The matching-aware loss takes three batches of
different sizes (a mean over the wrong and fake logits pooled is not the average of the two means)
and float32 logits of magnitude 100 to 130, where log(sigmoid(a)) and log(1 - sigmoid(a)) are -inf.
class_accuracy's labels are unbalanced, so the mean of the per-class accuracies is not the overall
accuracy, and two cases leave a class out (its accuracy is NaN). Every case is drawn from a seeded
generator, fresh on each call.

build_cgan is judged, not compared: the kernel trains the student's whole conditional GAN for a few
seconds (course_lib.harness.lab04.train_and_sample, seeds from the grader's salt when graded) and hands
back its samples before and after; `train_compare` computes their Fréchet distance and class accuracy
here, in the grader's process, and looks for copies of the training images.
"""
from __future__ import annotations

import torch
from torch import nn

from ..exercises import Exercise, case_generator, case_seed, register, returned_samples, no_reference
from ..harness.lab04 import balanced_labels, training_pairs
from ..models.cgan import concat_noise, matching_aware_d_loss, projection_logits

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


# -- the generator's input ----------------------------------------------------------------------------------
def condition_input_and_gradient(z: torch.Tensor, labels: torch.Tensor, embedding: nn.Embedding) -> tuple:
    """The reference, as the lab's check cell reports the student's: [z, e(y)] (B, z_dim + k), d(its sum)/d table."""
    out = concat_noise(z, embedding(labels))
    (grad,) = torch.autograd.grad(out.sum(), embedding.weight)  # row c: (number of labels == c) in every column
    return out.detach(), grad


def condition_input_cases() -> list[tuple]:
    g = _gen(400)
    out = []
    # (B, z_dim, classes, k): k = classes (a one-hot code has the right shape), z_dim = k = B (a concat
    # over the batch has as many numbers), one example, the course's sizes with repeated labels
    for b, z_dim, n_classes, k in ((5, 8, 10, 4), (6, 3, 4, 4), (4, 4, 3, 4), (1, 16, 10, 32), (12, 64, 3, 32)):
        table = torch.randn(n_classes, k, generator=g)
        out.append((torch.randn(b, z_dim, generator=g), torch.randint(0, n_classes, (b,), generator=g),
                    table))  # the kernel makes it an nn.Embedding (course_lib.harness.lab04)
    return out


# -- the projection discriminator's output ------------------------------------------------------------------
def projection_cases() -> list[tuple]:
    g = _gen(401)
    out = []
    for b, d in ((6, 16), (4, 4), (1, 3), (8, 128)):  # (4, 4): a sum over the batch has the right shape
        out.append((torch.randn(b, generator=g, dtype=F64) + 2.0, torch.randn(b, d, generator=g, dtype=F64),
                    torch.randn(b, d, generator=g, dtype=F64)))
    return out


# -- the matching-aware loss ----------------------------------------------------------------------------------
def matching_aware_cases() -> list[tuple]:
    g = _gen(402)
    huge = (torch.tensor([-120.0, -3.0, 0.0, 2.0, 120.0]),  # float32: sigmoid(-120) = 0 and sigmoid(120) = 1
            torch.tensor([120.0, 100.0, -5.0]), torch.tensor([130.0, -120.0, 0.5, 100.0]))
    return [(torch.randn(16, generator=g), torch.randn(16, generator=g), torch.randn(16, generator=g)),
            (2 * torch.randn(12, generator=g) + 1, 2 * torch.randn(7, generator=g), 2 * torch.randn(20, generator=g) - 1),
            huge,
            (torch.zeros(1), torch.zeros(1), torch.zeros(1)),  # log 2 + (log 2 + log 2) / 2
            (100 + torch.rand(5, generator=g), -100 - torch.rand(9, generator=g), -100 - torch.rand(3, generator=g))]


# -- class accuracy -----------------------------------------------------------------------------------------
def class_accuracy(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[float, torch.Tensor]:
    """(overall: the fraction of rows whose argmax is their label, per_class (K,): that fraction within each
    label, NaN for a label with no rows), one class at a time."""
    hits = (logits.argmax(1) == labels).to(F64)  # (N,)
    per_class = torch.full((n_classes,), float("nan"), dtype=F64)
    for k in range(n_classes):
        rows = labels == k
        if bool(rows.any()):
            per_class[k] = hits[rows].mean()
    return float(hits.mean()), per_class


def _logits_for(labels: torch.Tensor, n_classes: int, right: float, g: torch.Generator) -> torch.Tensor:
    """(N, K) random logits whose argmax is the label for about a share `right` of the rows."""
    logits = torch.randn(len(labels), n_classes, generator=g, dtype=F64)
    boost = (torch.rand(len(labels), generator=g) < right).to(F64) * 10  # (N,): these rows are surely right
    return logits + boost[:, None] * nn.functional.one_hot(labels, n_classes).to(F64)


def class_accuracy_cases() -> list[tuple]:
    g = _gen(403)
    skewed = torch.multinomial(torch.tensor([0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01]), 60,
                               replacement=True, generator=g)  # ten classes, unbalanced
    missing = torch.tensor([0] * 8 + [1] * 3 + [3] * 1)  # class 2 has no rows: NaN
    few = torch.tensor([4, 4, 4, 4, 1, 0, 0, 4, 4])  # classes 2 and 3 have no rows
    out = [(_logits_for(skewed, 10, 0.6, g), skewed, 10), (_logits_for(missing, 4, 0.5, g), missing, 4),
           (_logits_for(few, 5, 0.3, g), few, 5), (_logits_for(torch.tensor([2]), 3, 1.0, g), torch.tensor([2]), 3)]
    labels = torch.randint(0, 6, (40,), generator=g)
    logits = _logits_for(labels, 6, 0.0, g)
    logits[labels == 5] += 20 * nn.functional.one_hot(labels[labels == 5], 6).to(F64)  # class 5 always right
    return out + [(logits, labels, 6)]


# -- build, train and judge: the whole conditional GAN -------------------------------------------------------
TRAIN_STEPS, TRAIN_WIDTH, TRAIN_N = 150, 8, 256  # about 3-10 s on one CPU core (train_and_sample)
# A right build (three seeds, and six more) went from FD 281-310 to 81-120 (ratio 0.27-0.40) and from class
# accuracy 0.09-0.14 to 0.65-0.84. Learning rates 0: ratio 1.00, accuracy 0.11. A generator that ignores its
# labels: ratio 0.68-0.70 (it learns garments), accuracy 0.09-0.10 (chance).
TRAIN_FACTOR = 0.6  # the trained FD must be below this fraction of the untrained one
ACCURACY_BAR = 0.4  # the trained samples' class accuracy must be above this (chance: 0.1)
MOVED = 0.9  # an FD that stays above this fraction of the untrained one did not move: the model did not train


def build_cgan_cases() -> list[tuple]:
    """(width, seed, steps, noise_seed, n): one run, its seeds the grader's secret in a grading run."""
    return [(TRAIN_WIDTH, case_seed(404) % 2**31, TRAIN_STEPS, case_seed(405) % 2**31, TRAIN_N)]



def train_compare(got, want, args) -> None:
    """It trains and follows its labels: finite losses, samples in range, an FD on Fashion-MNIST below TRAIN_FACTOR x
    the untrained one, a class accuracy above ACCURACY_BAR, and no copies of training images. The metrics are
    computed here, from the samples (in the grader's process)."""
    from ..metrics import evaluate

    width, seed, steps, n = int(args[0]), int(args[1]), int(args[2]), int(args[4])
    where = f"lab04.build_cgan, {steps} steps of width {width}"
    returned_samples(got, ("before", "after", "labels", "d_loss", "g_loss"), where, "lab04:train_and_sample", n,
                     "Does your generator's DCGAN body have image_size=28?")
    labels = balanced_labels(n)  # (n,): what each sample was drawn for, rebuilt here
    if not torch.equal(got["labels"].long().cpu(), labels):
        raise AssertionError(f"{where}: the samples were not drawn for the labels 0, 1, ..., 9, 0, ... that "
                             f"train_and_sample uses; keep the check cell as given.")
    losses = torch.cat([got["d_loss"].flatten(), got["g_loss"].flatten()])
    if len(losses) == 0 or not bool(torch.isfinite(losses).all()) or float(losses.abs().max()) > 1e4:
        raise AssertionError(f"{where}: the training losses diverged (largest |loss| {float(losses.abs().max()):.3g}, "
                             f"finite: {bool(torch.isfinite(losses).all())}); the matching-aware loss starts near "
                             f"2 log 2 = 1.4. Check ma_loss= and that D returns one logit per image.")
    m = {k: evaluate(got[k], "fashion-mnist", labels=labels, train=training_pairs(seed), profile="smoke", n=n)
         for k in ("before", "after")}
    if m["after"]["memorised"] > 0.5:
        raise AssertionError(f"{where}: {m['after']['memorised']:.0%} of the samples are copies of training images.")
    fd = f"FD {m['before']['fd']:.1f} untrained -> {m['after']['fd']:.1f} after training"
    acc = (f"class accuracy {m['before']['class_accuracy']:.2f} -> {m['after']['class_accuracy']:.2f} "
           f"(chance 0.1)")
    ratio = m["after"]["fd"] / m["before"]["fd"]
    if ratio >= MOVED:
        raise AssertionError(f"{where}: it does not train: {fd}, expected below {TRAIN_FACTOR:g} x the untrained FD; "
                             f"{acc}. Check the learning rates, that the process holds your networks "
                             f"(generator=, discriminator=) and trains them with your loss (ma_loss=).")
    if not m["after"]["class_accuracy"] > ACCURACY_BAR:
        raise AssertionError(f"{where}: its samples do not follow their labels: {acc}, expected above "
                             f"{ACCURACY_BAR:g}, though it trains ({fd}). G must be fed condition_input(z, labels, "
                             f"its embedding) of the labels it is called with, and D's logit must be projection_logits"
                             f"(psi, features, its embedding of the labels), that embedding starting small "
                             f"(N(0, 0.02), like psi's weights).")
    if not ratio < TRAIN_FACTOR:
        raise AssertionError(f"{where}: it follows its labels ({acc}) but trains too slowly: {fd}, expected below "
                             f"{TRAIN_FACTOR:g} x the untrained FD. Check the learning rates and the networks' "
                             f"sizes against the contract.")


register(Exercise("lab04.condition_input", condition_input_cases, condition_input_and_gradient, rtol=1e-6, atol=1e-7,
                  describe="[z, e(y)] for k = classes and z_dim = k = B, and the gradient reaches the table"))
register(Exercise("lab04.projection_logits", projection_cases, projection_logits, rtol=1e-9, atol=1e-10,
                  describe="psi plus one inner product per example, B = d included"))
register(Exercise("lab04.matching_aware_d_loss", matching_aware_cases, matching_aware_d_loss, rtol=1e-5, atol=1e-5,
                  describe="three batches of different sizes, weights 1, 1/2, 1/2, and float32 logits of 100 to 130",
                  mistakes=(("weight 1, not 1/2, on the wrong-label and fake terms: together they must weigh as "
                             "much as the real one",
                             lambda r, w, f: nn.functional.softplus(-r).mean() + nn.functional.softplus(w).mean()
                             + nn.functional.softplus(f).mean()),
                            ("one mean over the wrong-label and fake logits pooled: the batches differ in size, "
                             "take one mean each",
                             lambda r, w, f: nn.functional.softplus(-r).mean()
                             + nn.functional.softplus(torch.cat([w, f])).mean()))))
register(Exercise("lab04.class_accuracy", class_accuracy_cases, class_accuracy, rtol=1e-6, atol=1e-7,
                  describe="a mean over samples, per class among that class's samples, NaN for an absent class"))
register(Exercise("lab04.build_cgan", build_cgan_cases, no_reference, compare=train_compare, judged=True,
                  describe=f"trained {TRAIN_STEPS} steps on Fashion-MNIST: FD below {TRAIN_FACTOR:g} x the untrained "
                           f"one, class accuracy above {ACCURACY_BAR:g}"))
