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
"""
from __future__ import annotations

import torch
from torch import nn

from ..exercises import Exercise, case_generator, register
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
