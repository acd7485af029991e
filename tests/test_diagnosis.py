"""Checks that diagnose ([18] item 3): each classic mistake gets a message that names the case, its inputs and the
mistake it looks like, and PyTorch's errors are explained in the course's words. What a student sees is the
AssertionError (or the error's note) asserted here, word for word where it matters."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import check
from course_lib.exercises import Exercise, compare_close, explain_torch_error, get_exercise, register, verify


def message(exercise_id, fn) -> str:
    with pytest.raises(AssertionError) as e:
        check(exercise_id, fn)
    return str(e.value)


def kl_to_prior(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


@pytest.mark.parametrize("exercise_id, wrong, words", [
    # a factor of exactly 1/784: the per-pixel mean of the reconstruction term
    ("lab05.elbo_loss",
     lambda lo, x, mu, lv, beta=1.0: F.binary_cross_entropy_with_logits(lo, x) + beta * kl_to_prior(mu, lv).mean(),
     "It looks like a per-pixel mean of the reconstruction term"),
    # exactly 1/2 when n = m: one mean over the pooled batch
    ("lab01.discriminator_loss",
     lambda r, f: torch.cat([F.softplus(-r), F.softplus(f)]).mean(),
     "It looks like one mean over the real and fake batches pooled"),
    ("lab03.hinge_d_loss",
     lambda r, f: torch.cat([torch.relu(1 - r), torch.relu(1 + f)]).mean(),
     "It looks like one mean over the real and fake terms pooled"),
    ("lab04.matching_aware_d_loss",
     lambda r, w, f: F.softplus(-r).mean() + F.softplus(w).mean() + F.softplus(f).mean(),
     "It looks like weight 1, not 1/2, on the wrong-label and fake terms"),
    # a negative KL
    ("lab05.kl_to_prior", lambda mu, lv: -kl_to_prior(mu, lv), "It looks like a KL with its sign flipped"),
    ("lab01.kl_discrete", lambda p, q: (torch.special.xlogy(q, q) - torch.special.xlogy(q, p)).sum(-1),
     "It looks like KL(q || p): the arguments swapped"),
    # a missing - log k
    ("lab05.iwae_bound", lambda a, b, c: torch.logsumexp(a + b - c, dim=0),
     "It looks like logsumexp without the - log k"),
    # lerp for slerp
    ("lab03.slerp", lambda z0, z1, t: (1 - t) * z0 + t * z1, "It looks like the straight line (lerp)"),
    # float32 t from torch.linspace's default against float64 codes
    ("lab05.interpolate",
     lambda z0, z1, n: (1 - torch.linspace(0, 1, n)[:, None]) * z0 + torch.linspace(0, 1, n)[:, None] * z1,
     "It looks like t in float32 (torch.linspace's default dtype)"),
    ("lab06.bits_per_dim", lambda nll, dims: nll / dims, "It looks like nats per dimension"),
    ("lab01.generator_loss", lambda f: -F.softplus(f).mean(), "It looks like the saturating loss"),
])
def test_each_classic_mistake_is_named(exercise_id, wrong, words):
    text = message(exercise_id, wrong)
    assert words in text, text
    assert f"{exercise_id}, case " in text and "inputs: " in text, "the failing case and its inputs are named"


def test_the_failing_case_is_named_in_words_with_its_inputs():
    def slerp_without_fallback(z0, z1, t):  # 0/0 on identical rows
        cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
        om = torch.arccos(cos.clamp(-1, 1))
        return (torch.sin((1 - t) * om) * z0 + torch.sin(t * om) * z1) / torch.sin(om)

    text = message("lab03.slerp", slerp_without_fallback)
    assert "lab03.slerp, case 5 of 6 (identical rows, t = 0.4: the lerp fallback; inputs: (3, 8) float64" in text, text


def test_a_tuple_output_names_its_parts_not_an_index():
    def penalty_and_weight_gradient(critic, real, fake, eps):  # the penalty doubled, the gradient right
        from course_lib.labs.lab03 import penalty_and_weight_gradient as ref
        value, grad = ref(critic, real, fake, eps)
        return 2 * value, grad

    text = message("lab03.gradient_penalty", penalty_and_weight_gradient)
    assert "case 1 of 3 (a conv critic on 8x8 images; inputs: {kind: 'conv'" in text
    assert ", the penalty: 1 of 1 value(s) differ" in text and "[0]" not in text


def test_numbers_that_print_alike_are_shown_with_every_digit_and_their_dtypes():
    with pytest.raises(AssertionError) as e:
        compare_close(torch.tensor([-0.07168063521385193], dtype=torch.float32),
                      torch.tensor([-0.0716806], dtype=torch.float64), 1e-9, 1e-12)
    assert "got -0.07168063521385193 (float32), expected -0.0716806 (float64)" in str(e.value)
    with pytest.raises(AssertionError, match=r"got 1.5, expected 1.25 \(rtol"):  # different at 6 digits: short
        compare_close(1.5, 1.25, 0, 0)


def test_a_constant_factor_between_answer_and_reference_is_reported():
    register(Exercise("testlab.third", lambda: [(torch.arange(1.0, 9.0),)], lambda x: x / 3))
    with pytest.raises(AssertionError, match=r"Every value is 1/784 x the reference's: a scale or sign mistake"):
        verify(get_exercise("testlab.third"), [torch.arange(1.0, 9.0) / 3 / 784])
    with pytest.raises(AssertionError, match=r"Every value is -1 x the reference's"):
        compare_close(-torch.arange(1.0, 5.0), torch.arange(1.0, 5.0), 0, 0)
    with pytest.raises(AssertionError) as e:  # noise is not a factor
        compare_close(torch.tensor([1.0, 2.1, 2.9]), torch.tensor([1.0, 2.0, 3.0]), 0, 0)
    assert "Every value" not in str(e.value)


@pytest.mark.parametrize("make_error, words", [
    (lambda: torch.autograd.grad(torch.ones(2, requires_grad=True).sum(), torch.ones(2, requires_grad=True)),
     "the output does not depend on"),
    (lambda: torch.autograd.grad(torch.ones(2).sum(), torch.ones(2)), "not connected to the graph"),
    (lambda: torch.zeros(4, 3) @ torch.zeros(4, 3), "wrong width"),
    (lambda: torch.zeros(4) + torch.zeros(3), "do not broadcast"),
    (lambda: torch.zeros(2, dtype=torch.float64) @ torch.zeros(2, 2), "two dtypes"),
])
def test_pytorch_errors_get_the_courses_words(make_error, words):
    with pytest.raises(Exception) as e:
        make_error()
    assert words in explain_torch_error(e.value), (str(e.value), explain_torch_error(e.value))


def test_a_pytorch_error_in_a_check_carries_the_explanation_and_the_case():
    def penalty_from_detached(critic, real, fake, eps):  # the interpolates made from a detached copy: no graph to x
        x = (eps.reshape(-1, *[1] * (real.ndim - 1)) * real + (1 - eps.reshape(-1, *[1] * (real.ndim - 1))) * fake)
        out = critic(x.detach().requires_grad_(True)).sum()
        (g,) = torch.autograd.grad(out, x.requires_grad_(True), create_graph=True)
        return (g.flatten(1).norm(dim=1) - 1).pow(2).mean()

    def wrapper(critic, real, fake, eps):
        value = penalty_from_detached(critic, real, fake, eps)
        return value.detach(), torch.zeros(1)

    with pytest.raises(RuntimeError) as e:
        check("lab03.gradient_penalty", wrapper)
    notes = "\n".join(getattr(e.value, "__notes__", []))
    assert "lab03.gradient_penalty, case 1 of 3 (inputs: {kind: 'conv'" in notes
    assert "the output does not depend on" in notes


def test_the_penalty_without_create_graph_says_so():
    def no_create_graph(critic, real, fake, eps):
        e = eps.reshape(-1, *[1] * (real.ndim - 1))
        x = (e * real + (1 - e) * fake).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        return (g.flatten(1).norm(dim=1) - 1).pow(2).mean()

    def as_the_check_cell_reports(critic, real, fake, eps):  # the lab's check cell, word for word
        value = no_create_graph(critic, real, fake, eps)
        assert value.requires_grad, "the penalty cannot train the critic: pass create_graph=True to torch.autograd.grad"
        grads = torch.autograd.grad(value, list(critic.parameters()))
        return value.detach(), torch.cat([g.flatten() for g in grads])

    with pytest.raises(AssertionError, match="pass create_graph=True"):
        check("lab03.gradient_penalty", as_the_check_cell_reports)
