"""Lab 7's checks (course_lib/labs/lab07.py): they pass right answers written several ways and fail the classic
mistakes with the message that names them; the gradient-reporting wrappers are the lab's check cells, word for word."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import check
from course_lib.exercises import _run, draw_cases, get_exercise, salted, verify
from course_lib.harness import prepare

IDS = ("lab07.nearest_code", "lab07.straight_through", "lab07.vq_losses", "lab07.perplexity", "lab07.adaptive_weight")


def message(exercise_id, fn) -> str:
    with pytest.raises(AssertionError) as e:
        check(exercise_id, fn)
    return str(e.value)


# -- the check cells' wrappers, as the solution notebook has them ------------------------------------------------
def reports_straight_through(straight_through):
    def straight_through_and_gradients(z_e, z_q, upstream):
        z_e, z_q = z_e.clone().requires_grad_(True), z_q.clone().requires_grad_(True)
        out = straight_through(z_e, z_q)
        assert out.requires_grad, "the output is cut from the graph: no gradient can reach the encoder"
        g_e, g_q = torch.autograd.grad(out, [z_e, z_q], upstream, allow_unused=True)
        return (out.detach(), torch.zeros_like(z_e) if g_e is None else g_e,
                torch.zeros_like(z_q) if g_q is None else g_q)
    return straight_through_and_gradients


def reports_vq_losses(vq_losses):
    def vq_losses_and_gradients(z_e, z_q, beta):
        z_e, z_q = z_e.clone().requires_grad_(True), z_q.clone().requires_grad_(True)
        terms = vq_losses(z_e, z_q, beta)
        assert all(isinstance(t, torch.Tensor) for t in terms), "return the two terms as tensors (no .item())"
        grads = []
        for t in terms:
            g_e, g_q = torch.autograd.grad(t, [z_e, z_q], allow_unused=True, retain_graph=True) if t.requires_grad \
                else (None, None)
            grads += [torch.zeros_like(z_e) if g_e is None else g_e, torch.zeros_like(z_q) if g_q is None else g_q]
        return tuple([t.detach() for t in terms] + grads)
    return vq_losses_and_gradients


def reports_adaptive_weight(adaptive_weight):
    def adaptive_weight_from_losses(rec_loss, gan_loss, last_layer_weight, delta):
        (rec_grad,) = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)
        (gan_grad,) = torch.autograd.grad(gan_loss, last_layer_weight)
        return adaptive_weight(rec_grad, gan_grad, delta)
    return adaptive_weight_from_losses


# -- nearest codes --------------------------------------------------------------------------------------------
def expanded(z, book):
    return (z.pow(2).sum(1, keepdim=True) - 2 * z @ book.T + book.pow(2).sum(1)).argmin(1)


def test_nearest_code_check_passes_right_answers_and_names_the_dot_product():
    check("lab07.nearest_code", expanded)
    check("lab07.nearest_code", lambda z, book: (z[:, None] - book[None]).pow(2).sum(-1).argmin(1))
    check("lab07.nearest_code", lambda z, book: torch.cdist(z, book).argmin(1))  # float32 cdist: rounding accepted
    text = message("lab07.nearest_code", lambda z, book: (z @ book.T).argmax(1))
    assert "It looks like the largest dot product z . e_j instead of the smallest distance" in text, text


def test_nearest_code_check_wants_the_lowest_index_on_exact_ties_and_long_indices():
    def last_of_ties(z, book):  # the last minimum: argmin over the codes in reverse order
        d = (z[:, None] - book[None]).pow(2).sum(-1)
        return len(book) - 1 - d.flip(1).argmin(1)

    text = message("lab07.nearest_code", last_of_ties)
    assert "a tie goes to the lowest index" in text and "exactly as near" in text, text
    assert "return the codes as a tensor of integer indices" in message(
        "lab07.nearest_code", lambda z, book: expanded(z, book).float())
    assert "expected one code per vector" in message(
        "lab07.nearest_code", lambda z, book: (z[:, None] - book[None]).pow(2).sum(-1).argmin(0))


def test_the_tie_cases_are_exact_in_float32():
    ex = get_exercise("lab07.nearest_code")
    for z, book in ex.cases()[-2:]:
        d = (z[:, None] - book[None]).pow(2).sum(-1)  # (N, K) float32
        assert bool(((d == d.min(1, keepdim=True).values).sum(1) > 1).any()), "these cases must hold exact ties"
        assert torch.equal(expanded(z, book), ex.reference(z, book)), "exact in any order of operations"


# -- straight through -----------------------------------------------------------------------------------------
def test_straight_through_check_passes_right_answers_and_names_the_mistakes():
    check("lab07.straight_through", reports_straight_through(lambda z_e, z_q: z_e + (z_q - z_e).detach()))
    check("lab07.straight_through", reports_straight_through(lambda z_e, z_q: z_q.detach() + z_e - z_e.detach()))
    for wrong in (lambda z_e, z_q: z_q, lambda z_e, z_q: z_e + z_q - z_e):
        text = message("lab07.straight_through", reports_straight_through(wrong))
        assert "It looks like z_q returned as it is, or z_e + z_q - z_e without a detach" in text, text
        assert "the gradient it sends to z_e" in text
    text = message("lab07.straight_through", reports_straight_through(lambda z_e, z_q: z_q + (z_e - z_q).detach()))
    assert "It looks like the roles swapped" in text, text
    with pytest.raises(AssertionError, match="cut from the graph"):
        check("lab07.straight_through", reports_straight_through(lambda z_e, z_q: (z_e + (z_q - z_e)).detach()))


# -- the VQ terms ---------------------------------------------------------------------------------------------
def right_vq(z_e, z_q, beta):
    return (z_e.detach() - z_q).pow(2).mean(), beta * (z_e - z_q.detach()).pow(2).mean()


def test_vq_losses_check_passes_right_answers_and_names_the_mistakes():
    check("lab07.vq_losses", reports_vq_losses(right_vq))
    check("lab07.vq_losses", reports_vq_losses(lambda e, q, b: (F.mse_loss(q, e.detach()), b * F.mse_loss(e, q.detach()))))
    wrong = {"the stop-gradients on the wrong sides": lambda e, q, b: ((e - q.detach()).pow(2).mean(),
                                                                      b * (e.detach() - q).pow(2).mean()),
             "no stop-gradient at all": lambda e, q, b: ((e - q).pow(2).mean(), b * (e - q).pow(2).mean()),
             "beta on the codebook term": lambda e, q, b: (b * (e.detach() - q).pow(2).mean(),
                                                           (e - q.detach()).pow(2).mean())}
    for words, fn in wrong.items():
        text = message("lab07.vq_losses", reports_vq_losses(fn))
        assert f"It looks like {words}" in text, text
    text = message("lab07.vq_losses", reports_vq_losses(lambda e, q, b: tuple(t * e.numel() for t in right_vq(e, q, b))))
    assert "the codebook term: 1 of 1 value(s) differ" in text and "It looks like sums over the elements" in text, text


# -- perplexity -----------------------------------------------------------------------------------------------
def test_perplexity_check_passes_right_answers_and_names_the_mistakes():
    def clamped(codes, K):
        p = torch.bincount(codes.flatten(), minlength=K).float() / codes.numel()
        return torch.exp(-(p * p.clamp_min(1e-12).log()).sum())

    def bits(codes, K):  # 2^H with H in bits: right too
        p = torch.bincount(codes.flatten(), minlength=K).double() / codes.numel()
        return 2 ** -torch.special.xlogy(p, p).div(torch.log(torch.tensor(2.0, dtype=torch.float64))).sum()

    check("lab07.perplexity", clamped)
    check("lab07.perplexity", bits)

    def entropy(codes, K, log=torch.log):
        p = torch.bincount(codes.flatten(), minlength=K).float() / codes.numel()
        return -(p * log(p.clamp_min(1e-12))).sum()

    wrong = {"the entropy itself, without the exp": entropy,
             "e to the power of the entropy in bits": lambda c, K: torch.exp(entropy(c, K, torch.log2)),
             "2 to the power of the entropy in nats": lambda c, K: 2 ** entropy(c, K),
             "nan where a code is unused": lambda c, K: torch.exp(-(lambda p: (p * p.log()).sum())(
                 torch.bincount(c.flatten(), minlength=K).float() / c.numel()))}
    for words, fn in wrong.items():
        text = message("lab07.perplexity", fn)
        assert f"It looks like {words}" in text, text


# -- the adaptive weight --------------------------------------------------------------------------------------
def test_adaptive_weight_check_passes_right_answers_and_names_the_mistakes():
    check("lab07.adaptive_weight", reports_adaptive_weight(lambda r, g, d=1e-4: r.norm() / (g.norm() + d)))
    check("lab07.adaptive_weight", reports_adaptive_weight(
        lambda r, g, d=1e-4: (r.pow(2).sum().sqrt() / (torch.linalg.vector_norm(g) + d)).detach()))
    wrong = {"the ratio upside down": lambda r, g, d=1e-4: g.norm() / (r.norm() + d),
             "no delta in the denominator": lambda r, g, d=1e-4: r.norm() / g.norm(),
             "squared norms": lambda r, g, d=1e-4: r.pow(2).sum() / (g.pow(2).sum() + d)}
    for words, fn in wrong.items():
        text = message("lab07.adaptive_weight", reports_adaptive_weight(fn))
        assert f"It looks like {words}" in text, text
    text = message("lab07.adaptive_weight", reports_adaptive_weight(lambda r, g, d=1e-4: r.norm() / (g.norm() + 1e-4)))
    assert "delta = 1e-2" in text, "a fixed delta fails the case with another delta: " + text


def test_the_adaptive_weight_reference_is_the_librarys_below_its_cap():
    from course_lib.models.vqvae import adaptive_weight

    ex = get_exercise("lab07.adaptive_weight")
    assert ex.reference is adaptive_weight
    for salt in (0, 17, 2**40 + 3):
        with salted(salt):
            for case in ex.cases():
                rec, gan, w, delta = prepare(ex.id, case)
                g_rec, g_gan = (torch.autograd.grad(x, w, retain_graph=True)[0] for x in (rec, gan))
                want = g_rec.norm() / (g_gan.norm() + delta)
                assert float(want) < 1e4, "a case above the library's cap would fail the uncapped formula"
                assert torch.isclose(adaptive_weight(rec, gan, w, delta), want)


# -- every check ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exercise_id", IDS)
def test_blank_stub_fails_and_cases_are_fresh_and_salted(exercise_id):
    def stub(*args):
        raise NotImplementedError(f"Exercise {exercise_id}: ...")

    with pytest.raises(NotImplementedError):
        check(exercise_id, stub)
    ex = get_exercise(exercise_id)
    a, b = ex.cases(), ex.cases()
    assert all(x is not y for u, v in zip(a, b) for x, y in zip(u, v) if isinstance(x, torch.Tensor))
    home = draw_cases(ex)
    with salted(0xC0FFEE):
        secret = draw_cases(ex)
        assert verify(ex, _run(exercise_id, ex.reference, secret)) == len(secret)
    assert any(not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
                    and torch.equal(x, y)) for u, v in zip(home, secret) for x, y in zip(u, v))


# -- build and train (the whole model's checks are in tests/test_build_and_train.py) -----------------------------
def test_a_blank_build_vqvae_fails_and_its_secret_cases_are_other_images_and_seeds(real_data):
    from course_lib.harness.lab07 import train_and_reconstruct

    def build_vqvae(width, K, D, beta, seed):
        raise NotImplementedError("Exercise lab07.build_vqvae: ...")

    with pytest.raises(NotImplementedError):
        check("lab07.build_vqvae", train_and_reconstruct(build_vqvae))
    ex = get_exercise("lab07.build_vqvae")
    assert ex.judged
    (home,) = draw_cases(ex)
    with salted(0xC0FFEE):
        (secret,) = draw_cases(ex)
    assert home[4] != secret[4] and not torch.equal(home[6], secret[6]) and not torch.equal(home[7], secret[7])
    assert home[6].shape == (128, 1, 28, 28) and sorted(home[7].tolist()) == list(range(128))


def test_the_build_part_has_two_more_written_questions_and_the_lab_shows_placeholders():
    import nbformat

    from course_lib.notebooks import ANSWER_PLACEHOLDER, REPO_ROOT, make_lab

    sol = nbformat.read(REPO_ROOT / "solutions" / "07_vq_vae.ipynb", as_version=4)
    meta = [c.metadata.get("course", {}) for c in sol.cells]
    questions = [m["question"] for m in meta if "question" in m]
    assert questions == ["lab07.q_codes", "lab07.q_adaptive", "lab07.q_build", "lab07.q_bits"]
    assert [m["answer"] for m in meta if "answer" in m] == questions
    assert all(len(c.source) > 200 for c in sol.cells if "answer" in c.metadata.get("course", {}))
    lab = make_lab(sol)
    assert [c.source for c in lab.cells if "answer" in c.metadata.get("course", {})] == [ANSWER_PLACEHOLDER] * 4
