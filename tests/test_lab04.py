"""Lab 4's checks (course_lib/labs/lab04.py): they pass the references and fail the classic mistakes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import check
from course_lib.exercises import compare_close, get_exercise, to_plain
from course_lib.harness import prepare
from course_lib.labs.lab04 import class_accuracy, class_accuracy_cases, condition_input_and_gradient, matching_aware_cases
from course_lib.models.cgan import concat_noise, matching_aware_d_loss, projection_logits


def one_case(ex_id, fn, k):
    """Compare fn with the reference on case k alone (a case where a mistake raises no error)."""
    ex = get_exercise(ex_id)
    args = prepare(ex_id, ex.cases()[k])  # the kernel's arguments, built from the case's plain data
    compare_close(to_plain(fn(*args)), to_plain(ex.reference(*prepare(ex_id, ex.cases()[k]))), ex.rtol, ex.atol)


def reported(fn):
    """As the lab's check cell reports a condition_input: G's input, and d(its sum)/d table."""
    def both(z, labels, embedding):
        out = fn(z, labels, embedding)
        assert out.requires_grad, "the input does not depend on the embedding table"
        (grad,) = torch.autograd.grad(out.sum(), embedding.weight)
        return out.detach(), grad
    return both


def test_condition_input_check():
    check("lab04.condition_input", condition_input_and_gradient)
    check("lab04.condition_input", reported(lambda z, y, e: torch.cat([z, e.weight[y]], 1)))  # indexing is fine
    with pytest.raises(AssertionError, match="does not depend on the embedding"):  # a one-hot code
        check("lab04.condition_input", reported(lambda z, y, e: torch.cat([z, F.one_hot(y, e.num_embeddings).float()], 1)))
    with pytest.raises(AssertionError, match="does not depend on the embedding"):  # a detached copy of e(y)
        check("lab04.condition_input", reported(lambda z, y, e: torch.cat([z, e(y).detach()], 1)))
    over_batch = reported(lambda z, y, e: torch.cat([z, e(y)], 0))  # concatenated over the batch
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        check("lab04.condition_input", over_batch)
    with pytest.raises(AssertionError, match=r"expected shape \(4, 8\), got \(8, 4\)"):  # z_dim = k = B: no error
        one_case("lab04.condition_input", over_batch, 2)
    with pytest.raises(AssertionError, match="differ"):  # the embedding first
        check("lab04.condition_input", reported(lambda z, y, e: torch.cat([e(y), z], 1)))


def test_projection_check():
    check("lab04.projection_logits", projection_logits)
    check("lab04.projection_logits", lambda psi, h, e: psi + torch.einsum("bd,bd->b", h, e))
    with pytest.raises(AssertionError, match="differ"):  # psi forgotten
        check("lab04.projection_logits", lambda psi, h, e: (h * e).sum(1))
    over_batch = lambda psi, h, e: psi + (h * e).sum(0)  # noqa: E731  summed over the batch
    with pytest.raises(RuntimeError, match="must match"):
        check("lab04.projection_logits", over_batch)
    with pytest.raises(AssertionError, match="differ"):  # B = d: the right shape, no error
        one_case("lab04.projection_logits", over_batch, 1)
    with pytest.raises(AssertionError, match="expected shape"):  # psi broadcast against (B, 1)
        check("lab04.projection_logits", lambda psi, h, e: psi + (h * e).sum(1, keepdim=True))


def test_matching_aware_check_and_its_cases():
    check("lab04.matching_aware_d_loss", matching_aware_d_loss)
    bce = F.binary_cross_entropy_with_logits
    check("lab04.matching_aware_d_loss", lambda r, w, f: bce(r, torch.ones_like(r))
          + 0.5 * (bce(w, torch.zeros_like(w)) + bce(f, torch.zeros_like(f))))
    wrong = {"weights 1 on the wrong and fake terms": lambda r, w, f: F.softplus(-r).mean() + F.softplus(w).mean()
             + F.softplus(f).mean(),
             "the wrong and fake logits pooled": lambda r, w, f: F.softplus(-r).mean() + F.softplus(torch.cat([w, f])).mean(),
             "naive log sigmoid": lambda r, w, f: -torch.log(torch.sigmoid(r)).mean()
             - 0.5 * (torch.log(1 - torch.sigmoid(w)).mean() + torch.log(1 - torch.sigmoid(f)).mean()),
             "the wrong pairs called real": lambda r, w, f: F.softplus(-r).mean() + 0.5 * (F.softplus(-w).mean()
                                                                                         + F.softplus(f).mean())}
    for name, fn in wrong.items():
        with pytest.raises(AssertionError, match="differ"):
            check("lab04.matching_aware_d_loss", fn)
    r, w, f = matching_aware_cases()[2]  # the huge logits: the naive form is inf there, the reference finite
    assert r.dtype == torch.float32 and torch.isinf(wrong["naive log sigmoid"](r, w, f))
    assert torch.isfinite(matching_aware_d_loss(r, w, f))


def test_class_accuracy_reference_against_sklearn_and_the_cases_are_unbalanced():
    from sklearn.metrics import accuracy_score, recall_score

    n_absent = 0
    for logits, labels, k in class_accuracy_cases():
        overall, per_class = class_accuracy(logits, labels, k)
        pred, true = logits.argmax(1).numpy(), labels.numpy()
        assert overall == pytest.approx(accuracy_score(true, pred))
        present = np.isin(np.arange(k), true)
        recall = recall_score(true, pred, labels=np.arange(k)[present], average=None, zero_division=0)
        assert np.allclose(per_class.numpy()[present], recall) and torch.isnan(per_class[~torch.from_numpy(present)]).all()
        n_absent += int((~present).sum())
        if len(labels) > 1 and present.sum() > 1:  # the mean over classes is not the mean over samples
            assert abs(float(np.nanmean(per_class.numpy())) - overall) > 0.02
    assert n_absent >= 3


def test_class_accuracy_check():
    check("lab04.class_accuracy", class_accuracy)
    check("lab04.class_accuracy", lambda a, y, k: (float((a.argmax(1) == y).float().mean()),
                                                   torch.stack([(a.argmax(1) == y)[y == c].float().mean() for c in range(k)])))

    def per_class_zero(a, y, k):  # 0 instead of NaN for a class with no samples
        hits = (a.argmax(1) == y).float()
        return float(hits.mean()), torch.stack([hits[y == c].mean() if (y == c).any() else torch.tensor(0.0) for c in range(k)])

    def mean_of_classes(a, y, k):  # the overall accuracy as the mean of the per-class ones
        per = class_accuracy(a, y, k)[1]
        return float(per.nanmean()), per

    for fn in (per_class_zero, mean_of_classes):
        with pytest.raises(AssertionError, match="differ"):
            check("lab04.class_accuracy", fn)


def test_the_embedding_case_is_a_real_table():  # freshness and determinism: tests/test_exercises.py, every lab
    e = prepare("lab04.condition_input", get_exercise("lab04.condition_input").cases()[0])[2]  # the table, as the kernel gets it
    assert torch.equal(concat_noise(torch.zeros(1, 2), e(torch.tensor([3])))[0, 2:], e.weight[3].detach())