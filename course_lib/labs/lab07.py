"""Lab 7 checks: the VQ-VAE's pieces, against the library's (course_lib.models.vqvae).

Nearest codes are compared with a float64 argmin, and a code that is only a rounding error farther than the
reference's is accepted, except on exact ties: the cases with integer codes and vectors at their midpoints (or a
code listed twice) have equal distances in any precision, and a tie goes to the lowest index. The codebooks' codes
have different norms, so the largest dot product picks other codes than the smallest distance. The straight-through
estimator and the two VQ terms are checked with their gradients: the lab's check cells report the output and what
autograd leaves on z_e and on z_q (zeros where nothing arrives), so the value alone earns nothing and a stop-gradient
on the wrong side fails. The adaptive weight's cases are losses at a decoder's last layer (course_lib.harness.lab07
builds them from plain data); the check cell takes their gradients with autograd and hands them to the student's
function, and the reference is the library's adaptive_weight on the same losses. build_vqvae is judged by what its
model does (course_lib.harness.lab07.train_and_reconstruct trains it in the kernel; the errors and the perplexity are
computed here). Every case is drawn from a seeded generator, fresh on each call, other sizes when graded.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..exercises import (Exercise, case_generator, case_random, case_seed, graded, no_reference, register,
                         returned_samples)
from ..models.vqvae import adaptive_weight, codebook_loss, commitment_loss, perplexity, straight_through

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return case_generator(seed)  # `seed` at home; mixed with the grader's secret salt when graded


# -- nearest codes --------------------------------------------------------------------------------------------
def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N,) long: the index of the nearest code by squared distance, in float64; ties to the lowest
    index (torch.argmin returns the first minimum)."""
    d = (z.to(F64)[:, None, :] - codebook.to(F64)[None]).pow(2).sum(-1)  # (N, K)
    return d.argmin(1)


def _tie_case(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes on a grid (one listed twice) and vectors at their midpoints: exact ties in any precision."""
    grid = torch.tensor([[0, 0], [2, 0], [0, 2], [2, 2], [-2, 0], [0, -2]])
    book = grid[torch.randperm(len(grid), generator=g)]  # the order decides which of two tied codes wins
    book = torch.cat([book, book[torch.randint(len(book), (1,), generator=g)]])  # a duplicate: always a tie
    scale = int(torch.randint(1, 4, (1,), generator=g))  # integers times integers: exact
    shift = torch.randint(-3, 4, (2,), generator=g)
    z = torch.tensor([[1, 0], [0, 1], [1, 1], [2, 1], [-1, 0], [1, 2], [0, -1], [2, 0], [0, 0], [-1, -1]])
    return (z * scale + shift).float(), (book * scale + shift).float()


def nearest_cases() -> list[tuple]:
    g = _gen(700)
    sizes = [(64, 4, 8), (7, 16, 64), (300, 2, 3), (1, 8, 16)]  # (N, D, K)
    if graded():  # the grader's secret cases: other sizes
        r = case_random(700)
        sizes = [(r.randint(1, 300), r.choice([1, 2, 4, 8, 16, 32]), r.choice([2, 3, 8, 16, 64, 128])) for _ in sizes]
    out = []
    for n, d, k in sizes:
        norms = 0.3 + 2.5 * torch.rand(k, 1, generator=g)  # codes of unequal lengths: a dot product is no distance
        book = F.normalize(torch.randn(k, d, generator=g), dim=1) * norms  # (K, D)
        out.append((1.5 * torch.randn(n, d, generator=g), book))
    return out + [_tie_case(g), _tie_case(g)]


def nearest_compare(got, want, args) -> None:
    """Each row's code must be the reference's, or one at a distance only rounding away from it; an exact tie
    goes to the lowest index."""
    z, book = args
    n, k = len(z), len(book)
    where = f"lab07.nearest_code, {n} vector(s) of D = {z.shape[1]} against K = {k} codes"
    if not isinstance(got, torch.Tensor) or got.dtype.is_floating_point or got.dtype == torch.bool:
        raise AssertionError(f"{where}: return the codes as a tensor of integer indices (torch.argmin gives a long "
                             f"tensor), got {got.dtype if isinstance(got, torch.Tensor) else type(got).__name__}.")
    if tuple(got.shape) != (n,):
        raise AssertionError(f"{where}: expected one code per vector, shape ({n},), got {tuple(got.shape)}; reduce the "
                             f"(N, K) distances over the codes, dim 1.")
    got, want = got.long(), want.long()
    if n and (int(got.min()) < 0 or int(got.max()) >= k):
        raise AssertionError(f"{where}: codes must lie in 0..{k - 1}, got {int(got.min())}..{int(got.max())}.")
    d = (z.to(F64)[:, None, :] - book.to(F64)[None]).pow(2).sum(-1)  # (N, K)
    d_got, d_want = d.gather(1, got[:, None])[:, 0], d.gather(1, want[:, None])[:, 0]
    tol = 1e-5 * (z.to(F64).pow(2).sum(1) + book.to(F64).pow(2).sum(1).max() + 1)  # float32 rounding of the distances
    tie = (got != want) & (d_got == d_want)
    far = (got != want) & ((d_got - d_want).abs() > tol)
    if bool(tie.any()):
        i = int(tie.nonzero()[0])
        raise AssertionError(f"{where}: vector {i} is exactly as near to codes {int(want[i])} and {int(got[i])} (squared "
                             f"distance {float(d_want[i]):.6g}); a tie goes to the lowest index, {int(want[i])}, as "
                             f"torch.argmin over the distances gives. {int(tie.sum())} row(s) differ so.")
    if bool(far.any()):
        i = int(far.nonzero()[0])
        raise AssertionError(f"{where}: {int(far.sum())} of {n} code(s) differ from the reference, e.g. vector {i} got code "
                             f"{int(got[i])} at squared distance {float(d_got[i]):.6g}, expected code {int(want[i])} at "
                             f"{float(d_want[i]):.6g}.")


def _largest_dot_product(z, book):
    return (z.to(F64) @ book.to(F64).T).argmax(1)


# -- the straight-through estimator -----------------------------------------------------------------------------
def straight_through_and_gradients(z_e: torch.Tensor, z_q: torch.Tensor, upstream: torch.Tensor) -> tuple:
    """The reference, as the lab's check cell reports the student's: the output, and the gradients the upstream
    gradient (what the decoder sends back) leaves on z_e and on z_q, zeros where none arrives."""
    z_e, z_q = z_e.clone().requires_grad_(True), z_q.clone().requires_grad_(True)
    out = straight_through(z_e, z_q)
    g_e, g_q = torch.autograd.grad(out, [z_e, z_q], upstream, allow_unused=True)
    return (out.detach(), torch.zeros_like(z_e) if g_e is None else g_e,
            torch.zeros_like(z_q) if g_q is None else g_q)


def straight_through_cases() -> list[tuple]:
    g = _gen(701)
    shapes = [(2, 4, 3, 3), (5, 16), (1, 8, 7, 7), (3, 2, 2, 2)]
    if graded():
        r = case_random(701)
        shapes = [(r.randint(1, 4), r.choice([2, 4, 8, 16]), s, s) for s in (r.choice([2, 3, 7]) for _ in range(3))]
        shapes.append((r.randint(2, 9), r.choice([3, 5, 16])))
    out = []
    for shape in shapes:
        z_e = torch.randn(shape, generator=g)
        z_q = z_e + 0.5 * torch.randn(shape, generator=g)  # a nearby code's vector
        out.append((z_e, z_q, torch.randn(shape, generator=g)))
    return out


# -- the codebook and commitment terms ----------------------------------------------------------------------------
def _terms_and_gradients(z_e: torch.Tensor, z_q: torch.Tensor, terms) -> tuple:
    out, grads = [t.detach() for t in terms], []
    for t in terms:
        g_e, g_q = torch.autograd.grad(t, [z_e, z_q], allow_unused=True, retain_graph=True) if t.requires_grad \
            else (None, None)
        grads += [torch.zeros_like(z_e) if g_e is None else g_e, torch.zeros_like(z_q) if g_q is None else g_q]
    return tuple(out + grads)


def vq_losses_and_gradients(z_e: torch.Tensor, z_q: torch.Tensor, beta: float) -> tuple:
    """The reference, as the lab's check cell reports the student's: (codebook term, beta x commitment term, then the
    gradient of each with respect to z_e and to z_q), from the library's codebook_loss and commitment_loss."""
    z_e, z_q = z_e.clone().requires_grad_(True), z_q.clone().requires_grad_(True)
    return _terms_and_gradients(z_e, z_q, (codebook_loss(z_e, z_q), beta * commitment_loss(z_e, z_q)))


def _vq_variant(codebook_term, commitment_term):
    """A wrong vq_losses, reported as the check cell reports one: codebook_term(z_e, z_q), commitment_term(...)."""
    def variant(z_e, z_q, beta):
        z_e, z_q = z_e.clone().requires_grad_(True), z_q.clone().requires_grad_(True)
        return _terms_and_gradients(z_e, z_q, (codebook_term(z_e, z_q, beta), commitment_term(z_e, z_q, beta)))
    return variant


def vq_cases() -> list[tuple]:
    g = _gen(702)
    settings = [((4, 8, 7, 7), 0.25), ((2, 4, 3, 3), 1.0), ((16, 6), 0.25), ((3, 16, 2, 2), 2.0)]
    if graded():
        r = case_random(702)
        settings = [((r.randint(1, 5), r.choice([2, 4, 8, 16]), s, s), r.choice([0.1, 0.25, 0.5, 2.0]))
                    for s in (r.choice([2, 3, 7]) for _ in range(3))] + [((r.randint(4, 20), r.choice([3, 8])), 0.25)]
    out = []
    for shape, beta in settings:
        z_e = torch.randn(shape, generator=g)
        out.append((z_e, z_e + 0.3 * torch.randn(shape, generator=g), beta))
    return out


# -- perplexity -------------------------------------------------------------------------------------------------
def perplexity_cases() -> list[tuple]:
    g = _gen(703)
    ks = [16, 64, 8, 512]
    if graded():
        r = case_random(703)
        ks = [r.choice([4, 16, 32, 100]), r.choice([32, 64, 128]), r.choice([5, 8, 12]), r.choice([256, 300, 1024])]
    k0, k1, k2, k3 = ks
    skewed = torch.softmax(2.0 * torch.randn(k1, generator=g), 0)  # (K,): some codes common, some rare
    return [(torch.arange(k0).repeat(3), k0),  # every code equally often: K
            (torch.full((5, 7, 7), int(torch.randint(k1, (1,), generator=g))), k1),  # one code: 1
            (torch.multinomial(skewed, 8 * 49, replacement=True, generator=g).view(8, 7, 7), k1),
            (torch.randint(0, k2 // 2, (4, 7, 7), generator=g), k2),  # half the codes unused
            (torch.randint(0, k3, (2, 7, 7), generator=g), k3)]  # more codes than positions: most unused


def _entropy(codes: torch.Tensor, K: int, log) -> torch.Tensor:
    p = torch.bincount(codes.flatten(), minlength=K).float() / codes.numel()
    return -(p * log(p.clamp_min(1e-12))).sum()


def _nan_perplexity(codes, K):
    p = torch.bincount(codes.flatten(), minlength=K).float() / codes.numel()
    return torch.exp(-(p * torch.log(p)).sum())  # 0 * log 0 = nan where a code is unused


# -- VQGAN's adaptive weight ----------------------------------------------------------------------------------
def adaptive_cases() -> list[tuple]:
    """(h, W, x, critic, gan_scale, delta): the losses at a decoder's last layer (course_lib.harness.lab07)."""
    g = _gen(704)
    settings = [(16, 12, 4, 1.0, 1e-4), (8, 6, 10, 20.0, 1e-4), (32, 3, 5, 0.05, 1e-4), (4, 8, 3, 0.0, 1e-4),
                (10, 5, 5, 1.0, 1e-2)]  # (B, C, F, gan_scale, delta); gan_scale 0: the discriminator off
    if graded():
        r = case_random(704)
        settings = [(r.randint(2, 32), r.randint(2, 16), r.randint(2, 10), scale, delta)
                    for scale, delta in ((1.0, 1e-4), (r.choice([5.0, 20.0, 50.0]), 1e-4), (r.choice([0.02, 0.1]), 1e-4),
                                         (0.0, 1e-4), (1.0, r.choice([1e-3, 1e-2])))]
    out = []
    for b, c, f, scale, delta in settings:
        out.append((torch.randn(b, f, generator=g), torch.randn(c, f, generator=g) / math.sqrt(f),
                    torch.rand(b, c, generator=g), torch.randn(c, generator=g), scale, delta))
    return out


def _grads(rec_loss, gan_loss, w):
    return (torch.autograd.grad(rec_loss, w, retain_graph=True)[0], torch.autograd.grad(gan_loss, w, retain_graph=True)[0])


def _aw_variant(formula):
    def variant(rec_loss, gan_loss, w, delta):
        g_rec, g_gan = _grads(rec_loss, gan_loss, w)
        return formula(g_rec, g_gan, delta)
    return variant



# -- build and train: the student's whole VQ-VAE, judged by its reconstructions and its codes -------------------------
TRAIN = dict(width=16, K=32, D=8, beta=0.25, steps=150, n=128)  # 3-5 s on one CPU core
# A right build (three seeds) went from a test MSE of 0.150-0.178 untrained to 0.026-0.028 (ratio 0.16-0.18), its
# logged loss to 0.17-0.26 of its first value, and its codes of the 128 test images used 29-32 of the 32 codes at a
# perplexity of 18.6-23.3. Decoding z_q instead of the straight-through value: ratio 0.62, perplexity 3.3; the codes
# all 0: ratio 0.60; no codebook term: the loss rose to 31 times its first value.
TRAIN_FACTOR, LOSS_FACTOR, COPY_MSE = 0.4, 0.8, 1e-4


def perplexity_floor(K: int) -> float:
    return K / 8  # 4 of K = 32: a right build is far above it, a collapsed codebook (a handful of codes) below


def build_vqvae_cases() -> list[tuple]:
    """(width, K, D, beta, seed, steps, images, perm): n test images to reconstruct and an order to decode their codes
    in, with the seeds, drawn with the grader's secret salt in a grading run."""
    from ..data import load_data

    t, g = TRAIN, _gen(705)
    test = load_data("fashion-mnist", "test").images
    images = test[torch.randperm(len(test), generator=g)[:t["n"]]]  # (n, 1, 28, 28) in [0, 1]
    perm = torch.randperm(t["n"], generator=g)  # (n,)
    return [(t["width"], t["K"], t["D"], t["beta"], case_seed(706) % 2**31, t["steps"], images, perm)]


def train_compare(got, want, args) -> None:
    """It trains as a VQ-VAE: gradients reach the encoder (through the straight-through path), the codebook and the
    decoder; the reconstructions are decoded from the codes; the loss falls; the codes are not collapsed; and the
    grader's test images are reconstructed better than by the untrained model. Errors and perplexity computed here."""
    width, K, D, beta, _, steps, images, perm = args
    n, s = len(images), images.shape[-1] // 4
    where = f"lab07.build_vqvae, {steps} steps with width {width}, K = {K} codes of D = {D}"
    returned_samples(got, ("before", "after", "codes", "permuted", "grads", "loss"), where,
                     "lab07:train_and_reconstruct", n,
                     "Does decode(codes) turn (B, s, s) codes into images (B, 1, 28, 28) in [0, 1]?")
    codes = got["codes"]
    if codes.dtype.is_floating_point or tuple(codes.shape) != (n, s, s) or int(codes.min()) < 0 or int(codes.max()) >= K:
        raise AssertionError(f"{where}: quantize(encode(x)) must give integer codes in 0..{K - 1} of shape ({n}, {s}, "
                             f"{s}); got {codes.dtype}, shape {tuple(codes.shape)}. Does your quantize reshape the (B, D, "
                             f"s, s) grid to (B s s, D) vectors before nearest_code, and back to (B, s, s)?")
    loss, grads = got["loss"].flatten(), got["grads"].flatten()
    if len(loss) < 2 or not bool(torch.isfinite(loss).all()) or not bool(torch.isfinite(grads).all()):
        raise AssertionError(f"{where}: the training loss is not finite ({loss[:5].tolist()} ...).")
    encoder, codebook, decoder = (float(x) for x in grads[:3])
    if not decoder > 0:
        raise AssertionError(f"{where}: no gradient reaches the decoder: your loss must hold the reconstruction error "
                             f"of the decoder's output, (sigmoid(decoder(...)) - x)^2 averaged, on the graph (no .item(), "
                             f"no .detach()).")
    if not encoder > 0:
        raise AssertionError(f"{where}: with beta = 0 no gradient reaches the encoder, so it only ever learns from the "
                             f"commitment term. It looks like no straight-through: the decoder is fed z_q, whose gradient "
                             f"stops at the argmin; feed it straight_through(z_e, z_q).")
    if not codebook > 0:
        raise AssertionError(f"{where}: no gradient reaches the codebook, so the codes never move from where they "
                             f"started. It looks like the codebook term is missing from the loss, or z_q is taken from a "
                             f"detached codebook; z_q = self.codebook.lookup(codes), and add both of your vq_losses terms.")
    moved = float((got["permuted"] - got["after"][perm.long()]).abs().max())
    if moved > 1e-4:
        raise AssertionError(f"{where}: decoding the same codes in another order gives other images (up to {moved:.3g} "
                             f"apart): the reconstructions are not decode(codes). Keep the check cell as given, and let "
                             f"decode depend on the codes alone.")
    mse = {k: float((got[k].double() - images.double()).pow(2).mean()) for k in ("before", "after")}
    if mse["after"] < COPY_MSE:
        raise AssertionError(f"{where}: the reconstructions are the images themselves (MSE {mse['after']:.2g}): "
                             f"{s * s} codes of {K} cannot carry a grey 28 x 28 image so exactly.")
    first, last = float(loss[0]), float(loss[-3:].mean())
    falls = last < LOSS_FACTOR * first
    fell = (f"{where}: the loss does not fall: {first:.4f} at the start, {last:.4f} at the end (mean of the last three "
            f"logged), expected below {LOSS_FACTOR:g} x the first.")
    if not falls and last <= first / LOSS_FACTOR:
        raise AssertionError(f"{fell} It stays where it began: that looks like a learning rate of 0, or a loss cut from "
                             f"the graph (.item(), .detach(), torch.tensor(...)).")
    ppl = float(perplexity(codes.long(), K))
    used = int(codes.unique().numel())
    if not ppl >= perplexity_floor(K):
        raise AssertionError(f"{where}: the codes have collapsed: the {n} test images use {used} of the {K} codes, "
                             f"perplexity {ppl:.2f}, expected at least {perplexity_floor(K):g}. Does your quantize pick "
                             f"the nearest code of each grid position (nearest_code on (B s s, D) vectors, then "
                             f"view(B, s, s)), and does the codebook term pull the chosen codes towards the encoder?")
    if not falls:
        raise AssertionError(f"{fell} It grows: that looks like an encoder drifting away from codes that do not "
                             f"follow it; the codebook term must pull the chosen codes towards the encoder outputs.")
    if not mse["after"] < TRAIN_FACTOR * mse["before"]:
        raise AssertionError(f"{where}: its reconstructions do not improve: test MSE {mse['before']:.4f} untrained -> "
                             f"{mse['after']:.4f} after training, expected below {TRAIN_FACTOR:g} x the untrained error. "
                             f"Is the reconstruction error in the loss, and the decoder's output the sigmoid of its "
                             f"logits?")


register(Exercise("lab07.nearest_code", nearest_cases, nearest_code, compare=nearest_compare,
                  describe="N, D, K of several sizes, codes of unequal lengths, exact ties to the lowest index",
                  names=("64 vectors, K = 8", "7 vectors against 64 codes", "300 vectors in 2-D, K = 3", "one vector",
                         "integer codes, vectors at their midpoints (exact ties), one code listed twice",
                         "another order of the tied codes"),
                  mistakes=(("the largest dot product z . e_j instead of the smallest distance: the two agree only when "
                             "every code has the same length, and ||e_j||^2 in ||z - e_j||^2 = ||z||^2 - 2 z . e_j + "
                             "||e_j||^2 is what tells them apart", _largest_dot_product),)))
register(Exercise("lab07.straight_through", straight_through_cases, straight_through_and_gradients,
                  rtol=1e-5, atol=1e-6, describe="the value of z_q; the gradient copied onto z_e, none to z_q",
                  outputs=("the output", "the gradient it sends to z_e", "the gradient it sends to z_q"),
                  mistakes=(("z_q returned as it is, or z_e + z_q - z_e without a detach (the z_e terms cancel in the "
                             "gradient too): the value is right, but the decoder's gradient goes to z_q and none reaches "
                             "z_e, so the encoder never learns; detach the difference: z_e + (z_q - z_e).detach()",
                             lambda z_e, z_q, up: (z_q, torch.zeros_like(z_e), up)),
                            ("the roles swapped, z_q + (z_e - z_q).detach(): the value of z_e and the gradient to z_q",
                             lambda z_e, z_q, up: (z_e, torch.zeros_like(z_e), up)))))
register(Exercise("lab07.vq_losses", vq_cases, vq_losses_and_gradients, rtol=1e-5, atol=1e-8,
                  describe="both terms' values, and their gradients reach only z_q (codebook) and only z_e (commitment)",
                  outputs=("the codebook term", "the commitment term", "the codebook term's gradient w.r.t. z_e",
                           "the codebook term's gradient w.r.t. z_q", "the commitment term's gradient w.r.t. z_e",
                           "the commitment term's gradient w.r.t. z_q"),
                  mistakes=(("the stop-gradients on the wrong sides: the values are right, but the codebook term's "
                             "gradient reaches z_e (the encoder) and the commitment term's reaches z_q (the codes); the "
                             "codebook term is ||sg[z_e] - z_q||^2, with z_e.detach(), the commitment term "
                             "beta ||z_e - sg[z_q]||^2, with z_q.detach()",
                             _vq_variant(lambda e, q, b: (e - q.detach()).pow(2).mean(),
                                         lambda e, q, b: b * (e.detach() - q).pow(2).mean())),
                            ("no stop-gradient at all: each term's gradient reaches both z_e and z_q, so the codes and "
                             "the encoder chase each other; detach z_e in the codebook term and z_q in the commitment term",
                             _vq_variant(lambda e, q, b: (e - q).pow(2).mean(), lambda e, q, b: b * (e - q).pow(2).mean())),
                            ("beta on the codebook term instead of the commitment term",
                             _vq_variant(lambda e, q, b: b * (e.detach() - q).pow(2).mean(),
                                         lambda e, q, b: (e - q.detach()).pow(2).mean())),
                            ("sums over the elements instead of means: the terms would grow with the batch and the "
                             "grid, against a reconstruction error that is a mean",
                             _vq_variant(lambda e, q, b: (e.detach() - q).pow(2).sum(),
                                         lambda e, q, b: b * (e - q.detach()).pow(2).sum())))))
register(Exercise("lab07.perplexity", perplexity_cases, perplexity, rtol=1e-5, atol=1e-6,
                  describe="uniform use: K; one code: 1; unused codes count 0, without NaN",
                  names=("every code equally often: K", "one code everywhere: 1", "a skewed use of the codes",
                         "half the codes unused", "more codes than positions"),
                  mistakes=(("the entropy itself, without the exp: the perplexity is e^H, the number of equally used "
                             "codes with the same entropy (K for a uniform use)",
                             lambda c, K: _entropy(c, K, torch.log)),
                            ("e to the power of the entropy in bits (torch.log2): the base of the log and of the power "
                             "must match, e^H with H in nats or 2^H with H in bits",
                             lambda c, K: torch.exp(_entropy(c, K, torch.log2))),
                            ("2 to the power of the entropy in nats: the base of the log and of the power must match",
                             lambda c, K: 2 ** _entropy(c, K, torch.log)),
                            ("nan where a code is unused: 0 * log 0 is nan in floating point, though its limit is 0; "
                             "clamp p before the log (p.clamp_min(1e-12)) or use torch.special.xlogy(p, p)",
                             _nan_perplexity))))
register(Exercise("lab07.adaptive_weight", adaptive_cases, adaptive_weight, rtol=1e-5, atol=1e-7,
                  describe="the library's adaptive_weight on the same losses; a GAN term off and two deltas",
                  names=("balanced terms", "a strong GAN term", "a weak GAN term",
                         "the discriminator off (its loss weighed 0): ||g_rec|| / delta", "delta = 1e-2"),
                  mistakes=(("the ratio upside down, ||grad GAN|| / ||grad rec||: lambda must grow when the GAN "
                             "gradient is the weaker one",
                             _aw_variant(lambda r, g, d: g.norm() / (r.norm() + d))),
                            ("no delta in the denominator: lambda is infinite when the GAN loss does not reach the last "
                             "layer (a discriminator switched off)",
                             _aw_variant(lambda r, g, d: r.norm() / g.norm())),
                            ("squared norms: lambda = ||grad rec|| / (||grad GAN|| + delta), the norms themselves",
                             _aw_variant(lambda r, g, d: r.pow(2).sum() / (g.pow(2).sum() + d))))))
register(Exercise("lab07.build_vqvae", build_vqvae_cases, no_reference, compare=train_compare, judged=True,
                  describe=f"trained {TRAIN['steps']} steps on Fashion-MNIST: gradients reach encoder, codebook and "
                           f"decoder, perplexity at least {perplexity_floor(TRAIN['K']):g} of K = {TRAIN['K']}, test MSE "
                           f"below {TRAIN_FACTOR:g} x the untrained one"))
