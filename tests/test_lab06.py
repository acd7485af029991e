"""Lab 6's checks (course_lib/labs/lab06.py): they pass the references and fail the classic mistakes."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import check
from course_lib.exercises import get_exercise
from course_lib.harness import prepare
from course_lib.harness.lab06 import RasterLogits, conv_outputs
from course_lib.labs.lab06 import causality_cases, sample
from course_lib.models.pixelcnn import MaskedConv2d, causality_violations, mask


def order_mask(kind, k):
    """A mask written another way: the raster index of each position against the centre's."""
    order = torch.arange(k * k).reshape(k, k)
    centre = (k * k) // 2
    return (order < centre).float() if kind == "A" else (order <= centre).float()


# -- masks ----------------------------------------------------------------------------------------------------------
def test_masks_check():
    check("lab06.masks", mask)
    check("lab06.masks", order_mask)

    def swapped(kind, k):  # the centre the wrong way round: A shows it, B hides it
        return order_mask("B" if kind == "A" else "A", k)

    def rows_above_cut(kind, k):  # the right part of the rows above hidden too (a "lower-left" mask)
        m = order_mask(kind, k)
        m[: k // 2, k // 2 + 1:] = 0
        return m

    def transposed(kind, k):  # column order instead of raster order
        return order_mask(kind, k).T.contiguous()

    for fn in (swapped, rows_above_cut, transposed):
        with pytest.raises(AssertionError, match="differ"):
            check("lab06.masks", fn)


# -- the masked conv ------------------------------------------------------------------------------------------------
class ConvWithBuffer(nn.Conv2d):
    """Another right answer: the mask a buffer, F.conv2d called directly."""

    def __init__(self, c_in, c_out, k, kind):
        super().__init__(c_in, c_out, k, padding=k // 2)
        self.register_buffer("m", order_mask(kind, k))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.m, self.bias, padding=self.padding)


class MaskedAtInit(nn.Conv2d):
    """The classic mistake: the weights masked once, when built; training (or the check) can regrow them."""

    def __init__(self, c_in, c_out, k, kind):
        super().__init__(c_in, c_out, k, padding=k // 2)
        with torch.no_grad():
            self.weight *= mask(kind, k)


class NoPadding(MaskedConv2d):
    def __init__(self, c_in, c_out, k, kind):
        super().__init__(c_in, c_out, k, kind)
        self.padding = (0, 0)


class KindsSwapped(MaskedConv2d):
    def __init__(self, c_in, c_out, k, kind):
        super().__init__(c_in, c_out, k, "B" if kind == "A" else "A")


def test_masked_conv_check():
    check("lab06.masked_conv", conv_outputs(MaskedConv2d))
    check("lab06.masked_conv", conv_outputs(ConvWithBuffer))
    with pytest.raises(AssertionError, match=r"output pixel \(0, 0\) depends on itself .* mask in forward \(not once, when built\)"):
        check("lab06.masked_conv", conv_outputs(MaskedAtInit))
    with pytest.raises(AssertionError, match="depends on itself|differ"):
        check("lab06.masked_conv", conv_outputs(KindsSwapped))
    with pytest.raises(AssertionError, match=r"must keep H x W \(padding = kernel_size // 2\)"):
        check("lab06.masked_conv", conv_outputs(NoPadding))
    with pytest.raises(AssertionError, match="subclass nn.Conv2d"):
        check("lab06.masked_conv", conv_outputs(lambda c_in, c_out, k, kind: nn.Identity()))


def test_the_masked_conv_check_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    check("lab06.masked_conv", conv_outputs(MaskedConv2d))
    get_exercise("lab06.causality_check").cases()
    assert torch.equal(torch.get_rng_state(), state)


def test_a_conv_masked_at_init_regrows_under_training_and_one_masked_in_forward_does_not():
    torch.manual_seed(0)
    for cls, causal in ((MaskedConv2d, True), (MaskedAtInit, False)):
        conv = cls(1, 4, 3, "A")
        opt = torch.optim.Adam(conv.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            conv(torch.randn(2, 1, 5, 5)).pow(2).mean().backward()
            opt.step()
        assert (causality_violations(conv, (1, 5, 5)) == []) == causal


# -- bits per dimension ---------------------------------------------------------------------------------------------
def test_bits_per_dim_check():
    check("lab06.bits_per_dim", lambda nll, d: nll / d / math.log(2))
    check("lab06.bits_per_dim", lambda nll, d: nll * math.log2(math.e) / d)
    wrong = {"nats per dim, no ln 2": lambda nll, d: nll / d,
             "divided by D twice": lambda nll, d: nll / (d * d * math.log(2)),
             "log base 10": lambda nll, d: nll / (d * math.log(10)),
             "a mean over the batch": lambda nll, d: (nll / (d * math.log(2))).mean()}
    for name, fn in wrong.items():
        with pytest.raises(AssertionError, match="differ|expected shape|value"):
            check("lab06.bits_per_dim", fn)


# -- sampling -------------------------------------------------------------------------------------------------------
def exp_sampler(logits_fn, n, shape, levels, generator):
    """Another right answer: unnormalised exp weights (multinomial normalises), a float64 canvas."""
    h, w = shape
    x = torch.zeros(n, 1, h, w, dtype=torch.float64)
    for i, j in itertools.product(range(h), range(w)):
        logits = logits_fn(x)[:, :, i, j]
        x[:, 0, i, j] = torch.multinomial((logits - logits.max(1, keepdim=True).values).exp(), 1,
                                          generator=generator)[:, 0].double() / (levels - 1)
    return x


def one_pass(logits_fn, n, shape, levels, generator):  # every pixel drawn from the blank canvas's logits
    probs = torch.softmax(logits_fn(torch.zeros(n, 1, *shape)), 1)  # (n, L, H, W)
    flat = probs.permute(0, 2, 3, 1).reshape(-1, levels)
    return (torch.multinomial(flat, 1, generator=generator).reshape(n, 1, *shape) / (levels - 1))


def per_row(logits_fn, n, shape, levels, generator):  # the logits computed once per row
    h, w = shape
    x = torch.zeros(n, 1, h, w)
    for i in range(h):
        logits = logits_fn(x)
        for j in range(w):
            x[:, 0, i, j] = torch.multinomial(torch.softmax(logits[:, :, i, j], 1), 1, generator=generator)[:, 0] / (levels - 1)
    return x


def levels_not_unit(logits_fn, n, shape, levels, generator):  # returns the levels k, not k / (L - 1)
    return sample(logits_fn, n, shape, levels, generator) * (levels - 1)


def column_order(logits_fn, n, shape, levels, generator):  # down the columns instead of along the rows
    h, w = shape
    x = torch.zeros(n, 1, h, w)
    for j, i in itertools.product(range(w), range(h)):
        x[:, 0, i, j] = torch.multinomial(torch.softmax(logits_fn(x)[:, :, i, j], 1), 1, generator=generator)[:, 0] / (levels - 1)
    return x


def test_sampling_check():
    check("lab06.sampling_loop", sample)
    check("lab06.sampling_loop", exp_sampler)
    for fn in (one_pass, per_row, levels_not_unit, column_order):
        with pytest.raises(AssertionError, match="differ"):
            check("lab06.sampling_loop", fn)


def test_raster_logits_are_causal_and_the_sampler_draws_from_their_chain_rule_density():
    g = torch.Generator().manual_seed(0)
    fn = RasterLogits(2, 3.0, 1, torch.randn(2, 2, 2, generator=g))
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4))).reshape(16, 1, 2, 2)
    logits = fn(images)  # (16, 2, 2, 2)
    for p in range(4):  # the logits of pixel p do not change when pixels p, p + 1, ... do
        i, j = divmod(p, 2)
        later = images.clone().flatten(1)
        later[:, p:] = 1 - later[:, p:]
        assert torch.equal(fn(later.reshape(16, 1, 2, 2))[:, :, i, j], logits[:, :, i, j])
    log_p = torch.log_softmax(logits, 1).gather(1, images.long()).flatten(1).sum(1)  # the chain rule: (16,)
    draws = sample(fn, 20_000, (2, 2), 2, torch.Generator().manual_seed(1))
    index = (draws.flatten(1) * torch.tensor([8.0, 4, 2, 1])).sum(1).long()  # image id, as enumerated above
    freq = torch.bincount(index, minlength=16) / len(index)
    assert float((freq - log_p.exp()).abs().sum()) / 2 < 0.02, "total variation between samples and p(x)"


# -- causality ------------------------------------------------------------------------------------------------------
def jacobian_violations(model_fn, shape):
    """Another right answer: the full Jacobian, summed over channels."""
    c, h, w = shape
    x = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(3))
    jac = torch.autograd.functional.jacobian(lambda t: model_fn(t), x)  # (1, K, H, W, 1, C, H, W)
    dep = jac.abs().sum((0, 1, 4, 5)).reshape(h * w, h * w) != 0  # (output pixel, input pixel)
    return [(divmod(p, w), divmod(q, w)) for p, q in (dep & torch.ones_like(dep).triu()).nonzero().tolist()]


def strictly_later(model_fn, shape):  # forgets that a pixel must not see itself
    return [(o, i) for o, i in causality_violations(model_fn, shape) if o != i]


def test_causality_check():
    check("lab06.causality_check", causality_violations)
    check("lab06.causality_check", jacobian_violations)
    with pytest.raises(AssertionError, match=r"not found, e.g. output pixel \(0, 0\) depends on input pixel \(0, 0\)"):
        check("lab06.causality_check", strictly_later)
    with pytest.raises(AssertionError, match="not found"):
        check("lab06.causality_check", lambda fn, shape: [])
    with pytest.raises(AssertionError, match="not violations"):  # every dependence reported, earlier pixels too
        check("lab06.causality_check", lambda fn, shape: [((i, j), (k, l)) for i, j, k, l in
                                                          itertools.product(*[range(s) for s in shape[1:]] * 2)])
    with pytest.raises(AssertionError, match="expected a list of"):
        check("lab06.causality_check", lambda fn, shape: True)


def test_the_causality_cases_are_what_they_say_for_any_input():
    cases = [prepare("lab06.causality_check", case) for case in causality_cases()]
    for model_fn, shape in cases:
        for seed in (0, 1, 2):
            got = causality_violations(model_fn, shape, torch.Generator().manual_seed(seed))
            assert got == causality_violations(model_fn, shape), "the violations must not depend on the input"
    kinds = [len(causality_violations(*case)) for case in cases]
    assert kinds[0] == kinds[3] == kinds[4] == 0 and kinds[1] == 25 and kinds[2] > 25 and kinds[5] == 9
