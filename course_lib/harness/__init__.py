"""The kernel's half of the exercise checks: what it takes to call a student's function, and no answers.

When a grader runs a notebook, the kernel sees this package but not `course_lib/labs/`, where the
references and the case generators live (the sandbox hides that folder, as it hides `solutions/`). A
case travels from the grader to the kernel as plain data (tensors, numbers, strings, containers);
`prepare(exercise_id, case)` turns it into the arguments the function takes, such as a critic
module, a torch.Generator or a logits function. The check cells import their wrappers from here
(lab03's `facts`, lab06's `conv_outputs`), so a notebook cannot redefine what a check looks at.

`builds_on(exercise_id)` names what an exercise's code may call that answers an earlier exercise,
with that exercise's reference: while the later one is checked, the check swaps the reference in, so
one mistake costs one exercise. These references are library functions any notebook can import
anyway; review (course_lib.grading.review) flags student code that imports this package or calls them.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

__all__ = ["prepare", "builds_on", "training_pairs", "TRAIN_IMAGES"]

TRAIN_IMAGES = 4096  # the Fashion-MNIST training images a build-and-train check trains on

# exercise id -> "module:function" of this package that turns a plain case into the call's arguments
_PREPARE = {
    "lab03.gradient_penalty": "lab03:gradient_penalty_args",
    "lab04.condition_input": "lab04:condition_input_args",
    "lab06.sampling_loop": "lab06:sampling_args",
    "lab06.causality_check": "lab06:causality_args",
    "lab07.adaptive_weight": "lab07:last_layer_losses",
}

# exercise id -> (name in the student's code, the exercise that name answers, "module:function" of its reference)
_BUILDS_ON = {
    "lab01.jsd": (("kl_discrete", "lab01.kl_discrete", "course_lib.divergences:kl_discrete"),),
    "lab05.elbo_loss": (("kl_to_prior", "lab05.kl_to_prior", "course_lib.harness.lab05:kl_to_prior"),),
    "lab06.masked_conv": (("causal_mask", "lab06.masks", "course_lib.models.pixelcnn:mask"),),
    "lab05.build_vae": (("reparameterize", "lab05.reparameterize", "course_lib.harness.lab05:reparameterize"),
                        ("kl_to_prior", "lab05.kl_to_prior", "course_lib.harness.lab05:kl_to_prior"),
                        ("elbo_loss", "lab05.elbo_loss", "course_lib.harness.lab05:elbo_loss")),
    "lab06.build_pixelcnn": (("MaskedConv2d", "lab06.masked_conv", "course_lib.harness.lab06:MaskedConv2d"),),
    "lab07.build_vqvae": (("nearest_code", "lab07.nearest_code", "course_lib.harness.lab07:nearest_code"),
                          ("straight_through", "lab07.straight_through", "course_lib.models.vqvae:straight_through"),
                          ("vq_losses", "lab07.vq_losses", "course_lib.harness.lab07:vq_losses"),
                          ("perplexity", "lab07.perplexity", "course_lib.models.vqvae:perplexity")),
    "lab03.build_gan": (("Generator", "lab03.generator", "course_lib.harness.lab03:reference_generator"),
                        ("Discriminator", "lab03.discriminator", "course_lib.harness.lab03:reference_discriminator"),
                        ("hinge_d_loss", "lab03.hinge_d_loss", "course_lib.models.gan:hinge_discriminator_loss"),
                        ("hinge_g_loss", "lab03.hinge_g_loss", "course_lib.models.gan:hinge_generator_loss")),
    "lab04.build_cgan": (("condition_input", "lab04.condition_input", "course_lib.harness.lab04:reference_condition_input"),
                         ("projection_logits", "lab04.projection_logits", "course_lib.models.cgan:projection_logits"),
                         ("matching_aware_d_loss", "lab04.matching_aware_d_loss",
                          "course_lib.models.cgan:matching_aware_d_loss")),
}


def _resolve(path: str, package: str | None = None) -> Any:
    module, name = path.split(":")
    return getattr(import_module(module if package is None else f"{package}.{module}"), name)


def prepare(exercise_id: str, case: tuple) -> tuple:
    """A case's plain data -> the arguments the exercise's function is called with (the case itself for most)."""
    how = _PREPARE.get(exercise_id)
    return tuple(case) if how is None else tuple(_resolve(how, __name__)(*case))


def builds_on(exercise_id: str) -> tuple[tuple[str, str, Callable[[], Callable]], ...]:
    """(name, earlier exercise id, a function returning that exercise's reference) for each name the exercise builds on."""
    return tuple((name, other, lambda path=path: _resolve(path)) for name, other, path in _BUILDS_ON.get(exercise_id, ()))


def training_pairs(seed: int):
    """The TRAIN_IMAGES Fashion-MNIST training images (and labels) a build-and-train check with this seed trains on,
    an ImageData in [0, 1]. The grader rebuilds them from the case's seed to look for copies among the samples."""
    from ..data import load_data

    return load_data("fashion-mnist", "train").subset(TRAIN_IMAGES, seed=int(seed))
