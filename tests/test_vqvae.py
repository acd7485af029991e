"""The VQ-VAE (models/vqvae.py): quantisation, the straight-through gradient and the two VQ terms against autograd,
EMA and dead-code restarts, perplexity; its PixelCNN prior over codes against exhaustive enumeration and causality."""
import itertools
import math

import pytest
import torch

from course_lib.models.pixelcnn import PixelCNN, PixelCNNConfig, causality_violations
from course_lib.models.vqvae import (VQVAE, Codebook, VQVAEConfig, codebook_loss, commitment_loss, dead_codes,
                                     perplexity, straight_through)
from course_lib.train import TrainConfig, Trainer

QUIET = TrainConfig(log_every=5, progress=False)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def small(**changes):
    return VQVAEConfig(**{"width": 8, "code_dim": 4, "codebook_size": 8, **changes})


def blobs(n=32, size=28, seed=0):
    """Images (n, 1, size, size) in [0, 1]: one Gaussian blob each, at a random place and width."""
    g = gen(seed)
    centre = torch.rand(n, 2, generator=g) * (size * 0.6) + size * 0.2  # (n, 2)
    width = torch.rand(n, 1, 1, generator=g) * 3 + 2  # (n, 1, 1)
    r = torch.arange(size).float()
    d2 = (r[None, :, None] - centre[:, 0, None, None]) ** 2 + (r[None, None, :] - centre[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * width ** 2))[:, None]  # (n, 1, size, size)


def tiny_prior(K=8, size=7, variant="gated", seed=0):
    return PixelCNN(PixelCNNConfig(image_size=size, levels=K, variant=variant, channels=8, n_layers=2,
                                   first_kernel=3), seed=seed)


# -- the quantiser --------------------------------------------------------------------------------------------
def test_quantisation_picks_the_nearest_code_and_breaks_ties_by_the_lowest_index():
    book = Codebook(K=5, D=3)
    with torch.no_grad():
        book.weight.copy_(torch.randn(5, 3, generator=gen()))
    z = torch.randn(200, 3, generator=gen(1))
    want = torch.cdist(z.double(), book.weight.double()).argmin(1)
    assert torch.equal(book.nearest(z), want)

    with torch.no_grad():  # z = 0.5 lies halfway between codes 1 (at 0) and 3 (at 1); codes 0, 2, 4 far away
        book.weight.copy_(torch.tensor([[9.0], [0.0], [-9.0], [1.0], [0.0]]).expand(5, 3))
    z = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert book.nearest(z).tolist() == [1, 1, 3], "a tie goes to the lowest index (1 before 3, 1 before 4)"

    z_e = torch.randn(2, 3, 4, 4, generator=gen(2))  # (B, D, s, s)
    codes, z_q = book(z_e)
    assert codes.shape == (2, 4, 4) and codes.dtype == torch.long and z_q.shape == (2, 3, 4, 4)
    assert torch.equal(z_q, book.weight[codes].permute(0, 3, 1, 2)), "z_q holds the chosen codes' vectors"


def test_the_straight_through_gradient_is_the_identity_to_z_e_and_nothing_to_the_codebook():
    book = Codebook(K=6, D=4)
    z_e = torch.randn(2, 4, 3, 3, generator=gen()).requires_grad_()
    _, z_q = book(z_e)
    out = straight_through(z_e, z_q)
    assert torch.allclose(out, z_q, atol=1e-6), "forward: the quantised vectors (up to rounding)"
    upstream = torch.randn(out.shape, generator=gen(1))  # what the decoder sends back
    g_e, g_book = torch.autograd.grad(out, [z_e, book.weight], upstream, allow_unused=True)
    assert torch.equal(g_e, upstream), "backward: the decoder's gradient copied onto z_e"
    assert g_book is None or torch.count_nonzero(g_book) == 0, "the codebook gets no gradient through this path"


def test_the_codebook_term_trains_only_the_codes_and_the_commitment_term_only_the_encoder():
    book = Codebook(K=6, D=4)
    z_e = torch.randn(2, 4, 3, 3, generator=gen()).requires_grad_()
    _, z_q = book(z_e)
    g_e, g_book = torch.autograd.grad(codebook_loss(z_e, z_q), [z_e, book.weight], allow_unused=True)
    assert g_e is None and torch.count_nonzero(g_book) > 0
    g_e, g_book = torch.autograd.grad(commitment_loss(z_e, z_q), [z_e, book.weight], allow_unused=True)
    assert g_book is None and torch.allclose(g_e, 2 * (z_e - z_q).detach() / z_e.numel()), "d/dz_e of a mean square"
    assert torch.allclose(codebook_loss(z_e, z_q), ((z_e - z_q) ** 2).mean()), "the same value, other gradients"


def test_an_ema_step_moves_each_used_code_to_the_mean_of_its_vectors():
    z = torch.randn(300, 2, generator=gen())
    book = Codebook(K=4, D=2, ema=True, decay=0.0, eps=1e-9)
    assert not book.weight.requires_grad, "an EMA codebook is not trained by gradient"
    with torch.no_grad():
        book.weight.copy_(torch.tensor([[1.0, 1], [-1, 1], [-1, -1], [1, -1]]))  # one code per quadrant
    codes = book.nearest(z)
    book.ema_update(z, codes)
    for i in range(4):
        assert torch.allclose(book.weight[i], z[codes == i].mean(0), atol=1e-5)

    slow = Codebook(K=4, D=2, ema=True, decay=0.9)  # with decay, repeated steps converge to the same means
    with torch.no_grad():
        slow.weight.copy_(torch.tensor([[1.0, 1], [-1, 1], [-1, -1], [1, -1]]))
        slow.total.copy_(slow.weight)
    for _ in range(200):
        slow.ema_update(z, codes)
    assert torch.allclose(slow.weight, book.weight, atol=1e-3)


@pytest.mark.parametrize("ema", [False, True])
def test_a_restart_moves_the_unused_codes_onto_encoder_outputs_and_they_are_used_again(ema):
    book = Codebook(K=6, D=2, ema=ema)
    with torch.no_grad():
        book.weight.copy_(torch.tensor([[0.0, 0], [50, 50], [0.1, 0], [60, 60], [0, 0.1], [70, 70]]))
    z = torch.randn(64, 2, generator=gen())
    codes = book.nearest(z)
    book.count_usage(codes)
    assert dead_codes(codes, 6) == 3
    assert book.restart(z, gen(1)) == 3 and book.usage.sum() == 0
    moved = book.weight[[1, 3, 5]]
    assert all((moved[i] == z).all(1).any() for i in range(3)), "each dead code now sits on an encoder output"
    assert len({tuple(v.tolist()) for v in moved}) == 3, "on three different outputs"
    assert dead_codes(book.nearest(z), 6) == 0, "and each is the nearest code of at least its own output"
    assert torch.equal(book.weight[[0, 2, 4]], torch.tensor([[0.0, 0], [0.1, 0], [0, 0.1]])), "live codes stay"


def test_perplexity_is_k_for_a_uniform_histogram_and_1_for_a_single_code():
    assert float(perplexity(torch.arange(16).repeat(3), 16)) == pytest.approx(16, rel=1e-5)
    assert float(perplexity(torch.full((5, 7, 7), 3), 16)) == pytest.approx(1.0)
    codes = torch.tensor([0, 0, 1, 1])  # two codes of 8, equally often: e^(ln 2) = 2
    assert float(perplexity(codes, 8)) == pytest.approx(2.0) and dead_codes(codes, 8) == 6


# -- the process ----------------------------------------------------------------------------------------------
def test_the_shapes_from_image_to_codes_and_back():
    vq = VQVAE(small(), seed=0)
    x = blobs(3)
    z_e = vq.encode(x)
    codes = vq.quantize(z_e)
    assert z_e.shape == (3, 4, 7, 7) and codes.shape == (3, 7, 7) and codes.dtype == torch.long
    out = vq.decode(codes)
    assert out.shape == (3, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(vq.reconstruct(x), out) and torch.equal(vq.to_codes(x, batch_size=2), codes)
    terms = vq.loss(x)
    assert set(terms) == {"loss", "reconstruction", "codebook", "commitment", "perplexity"}
    assert all(v.ndim == 0 and v.dtype == torch.float32 for v in terms.values())
    assert terms["loss"].requires_grad and not any(terms[k].requires_grad for k in terms if k != "loss")
    assert float(terms["commitment"]) == pytest.approx(0.25 * float(terms["codebook"]), rel=1e-5)


@pytest.mark.parametrize("changes", [{}, {"ema": True, "restart_dead": True, "restart_window": 5}])
def test_a_few_training_steps_on_blobs_reduce_the_loss(changes):
    vq = VQVAE(small(lr=3e-3, **changes), seed=0)
    x = blobs(64)
    with torch.no_grad():  # no gradients: an evaluation, which leaves the codebook alone
        before = float(vq.loss(x)["reconstruction"])
    trainer = Trainer(vq, train_config=QUIET)
    trainer.fit([(x[:32],), (x[32:],)] * 15, steps=30)
    vq.eval()
    with torch.no_grad():
        after = vq.loss(x)
    assert float(after["reconstruction"]) < 0.7 * before, (before, float(after["reconstruction"]))
    assert trainer.history["loss"][-1] < trainer.history["loss"][0]
    if changes:
        assert int(vq.codebook.steps) == 30 and float(after["perplexity"]) > 1


def test_losses_are_float32_under_bf16_autocast_and_the_codes_are_the_float32_ones():
    vq = VQVAE(small(), seed=0)
    x = blobs(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = vq.loss(x)
        codes = vq.quantize(vq.encode(x))
    assert all(v.dtype == torch.float32 for v in terms.values()), {k: v.dtype for k, v in terms.items()}
    z_e = vq.encode(x).permute(0, 2, 3, 1).reshape(-1, 4)  # (B 7 7, D), float32
    want = torch.cdist(z_e.double(), vq.codebook.weight.double()).argmin(1).view(4, 7, 7)
    assert (codes == want).float().mean() > 0.9, "distances in float32: bf16 encoder outputs move few codes"


def test_the_codebook_trains_by_gradient_or_by_ema_not_both():
    vq = VQVAE(small())
    trained = {id(p) for g in vq.phases()[0].optimizer.param_groups for p in g["params"]}
    assert id(vq.codebook.weight) in trained
    vq = VQVAE(small(ema=True))
    trained = {id(p) for g in vq.phases()[0].optimizer.param_groups for p in g["params"]}
    assert id(vq.codebook.weight) not in trained and id(vq.encoder.net[0].weight) in trained


def test_the_model_rebuilds_itself_from_a_checkpoint_and_keeps_its_prior_out(tmp_path):
    vq = VQVAE(small(ema=True), seed=4, prior=tiny_prior())
    trainer = Trainer(vq, train_config=QUIET)
    trainer.fit([blobs(8)], steps=2)
    assert not any(k.startswith("prior") for k in vq.state_dict()), "the prior is saved on its own"
    again = VQVAE.from_checkpoint(trainer.save(tmp_path / "vq.pt"))
    assert again.config == vq.config and again.seed == 4 and again.prior is None
    assert all(torch.equal(a, b) for a, b in zip(vq.state_dict().values(), again.state_dict().values()))


# -- the prior ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["plain", "gated"])
def test_a_pixelcnn_over_codes_is_a_distribution_over_all_grids_and_causal(variant):
    prior = tiny_prior(K=3, size=2, variant=variant)
    grids = torch.tensor(list(itertools.product(range(3), repeat=4))).view(81, 1, 2, 2)  # every 2x2 grid of 3 codes
    with torch.no_grad():
        total = torch.logsumexp(prior.log_prob_levels(grids).double(), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-5), "the probabilities of the 81 grids sum to one"
    assert causality_violations(tiny_prior(K=8, variant=variant).net, (1, 7, 7)) == []
    with torch.no_grad():  # levels and images in [0, 1] are one model: k / (K - 1) scores the same
        assert torch.allclose(prior.log_prob(grids.float() / 2), prior.log_prob_levels(grids))


def test_the_prior_trains_on_integer_codes_and_samples_them():
    prior = tiny_prior(K=8)
    codes = torch.randint(0, 8, (4, 1, 7, 7), generator=gen())
    terms = prior.loss(codes)
    assert torch.allclose(terms["loss"], -prior.log_prob_levels(codes).mean())
    assert float(terms["bpd"]) == pytest.approx(float(terms["loss"].detach()) / (49 * math.log(2))), "bits per code"
    k = prior.sample_levels(3, gen(1))
    assert k.shape == (3, 1, 7, 7) and k.dtype == torch.long and 0 <= k.min() and k.max() < 8
    assert torch.equal(prior.sample(3, gen(1)), k.float() / 7), "sample is sample_levels on the image grid"
    with pytest.raises(ValueError, match="levels in 0..7"):
        prior.log_prob_levels(torch.full((1, 1, 7, 7), 8))
    with pytest.raises(ValueError, match="integer levels"):
        prior.log_prob_levels(torch.zeros(1, 1, 7, 7))


def test_sampling_needs_a_prior_and_with_one_draws_images_in_0_1():
    vq = VQVAE(small(), seed=0)
    with pytest.raises(RuntimeError, match="no prior over its codes.*vq.prior = prior"):
        vq.sample(2)
    vq.prior = PixelCNN(vq.prior_config(channels=8, n_layers=2, first_kernel=3), seed=0)
    assert "prior" not in dict(vq.named_children())
    a = vq.sample(3, generator=gen(1))
    assert a.shape == (3, 1, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, vq.sample(3, generator=gen(1))), "a seeded draw repeats"
    with pytest.raises(ValueError, match="unconditional"):
        vq.sample(2, cond=torch.arange(2))
    with torch.no_grad():
        bits = vq.bits_per_code(blobs(2))
    assert bits.shape == (2,) and torch.all(bits > 0)
    assert float(bits.mean()) < 2 * math.log2(8), "an untrained prior is near log2 K bits per code"
    with pytest.raises(ValueError, match="levels=8"):
        vq.prior = tiny_prior(K=16)
    with pytest.raises(TypeError, match="PixelCNN"):
        vq.prior = torch.nn.Linear(2, 2)


@pytest.mark.parametrize("changes, match", [
    ({"image_size": 30}, "multiple of 4"), ({"codebook_size": 1}, "between 2 and 256"),
    ({"codebook_size": 512}, "between 2 and 256"), ({"beta": -1}, "beta"), ({"ema_decay": 1.0}, "ema_decay"),
    ({"ema_eps": 0}, "ema_eps"), ({"code_dim": 0}, "code_dim"), ({"restart_window": 0}, "restart_window"),
    ({"lr": 0}, "lr"),
])
def test_bad_configs_say_what_to_change(changes, match):
    with pytest.raises(ValueError, match=match):
        VQVAEConfig(**changes)
    with pytest.raises(ValueError, match="leave them out"):
        VQVAE(small()).prior_config(levels=4)



# -- VQGAN's adaptive weight ----------------------------------------------------------------------------------
from course_lib.models.vqvae import adaptive_weight  # noqa: E402


def test_the_adaptive_weight_is_the_ratio_of_the_gradient_norms_at_the_last_layer_and_keeps_the_graphs():
    layer = torch.nn.Linear(6, 4)
    h, x = torch.randn(5, 6, generator=gen()), torch.rand(5, 4, generator=gen(1))
    critic = torch.randn(4, generator=gen(2))

    def losses():  # a decoder's last layer W: images sigmoid(h W^T + b), an MSE and a linear critic's G loss
        x_hat = torch.sigmoid(layer(h))  # (5, 4)
        return (x_hat - x).pow(2).mean(), -(x_hat @ critic).mean()

    rec, gan = losses()
    w = layer.weight
    g_rec = torch.autograd.grad(rec, w, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, w, retain_graph=True)[0]
    lam = adaptive_weight(rec, gan, w)
    assert lam.shape == () and not lam.requires_grad and lam.dtype == torch.float32
    assert float(lam) == pytest.approx(float(g_rec.norm() / (g_gan.norm() + 1e-4)), rel=1e-6)
    weighted = torch.autograd.grad(lam * gan, w, retain_graph=True)[0]  # lambda balances the two pushes on W
    assert float(weighted.norm()) == pytest.approx(float(g_rec.norm()), rel=1e-3)
    (rec + lam * gan).backward()  # the graphs survived both gradients
    assert layer.weight.grad is not None and layer.bias.grad is not None

    rec, gan = losses()
    assert float(adaptive_weight(rec, 0 * gan, w, delta=0.5)) == pytest.approx(float(g_rec.norm()) / 0.5, rel=1e-5), \
        "the discriminator off (GAN loss weighed 0): ||g_rec|| / delta"
    assert float(adaptive_weight(rec, torch.zeros(()), w, delta=0.5)) == pytest.approx(float(g_rec.norm()) / 0.5,
                                                                                       rel=1e-5), "a GAN loss off W"
    assert float(adaptive_weight(1e6 * rec, gan, w, max_weight=10.0)) == 10.0, "clamped to max_weight"


# -- editing a grid of codes under the prior (the code-grid explorer of lecture 07) -----------------------------
def tiny_vq_with_prior(K=4, image_size=8, seed=0):
    """A VQ-VAE with s = image_size / 4 and K codes, and a small untrained PixelCNN prior over them."""
    vq = VQVAE(small(image_size=image_size, codebook_size=K), seed=seed)
    vq.prior = PixelCNN(vq.prior_config(channels=8, n_layers=2), seed=seed)
    return vq


def test_the_conditional_of_one_code_is_the_joint_ratio_over_every_grid():
    vq = tiny_vq_with_prior(K=4)  # s = 2: 4^4 = 256 grids, few enough to score them all
    grids = torch.tensor(list(itertools.product(range(4), repeat=4))).view(256, 2, 2)
    with torch.no_grad():
        log_joint = vq.prior.log_prob_levels(grids[:, None]).double()  # (256,)
    codes = grids[[7, 100, 201]]  # three grids, (3, 2, 2)
    for row, col in itertools.product(range(2), range(2)):
        log_p = vq.code_conditional(codes, row, col)
        assert log_p.shape == (3, 4) and log_p.dtype == torch.float32
        assert torch.allclose(log_p.double().exp().sum(1), torch.ones(3, dtype=torch.float64), atol=1e-5)
        for b, grid in enumerate(codes):
            index = []  # the 4 grids equal to this one except at (row, col), in the order of the code there
            for j in range(4):
                g = grid.clone()
                g[row, col] = j
                index.append(int((grids == g).flatten(1).all(1).nonzero()))
            brute = log_joint[index] - torch.logsumexp(log_joint[index], 0)  # log p(j | rest) by enumeration
            assert torch.allclose(log_p[b].double(), brute, atol=1e-5), (row, col, b)
    assert vq.prior.training, "the prior's mode is restored"
    with pytest.raises(RuntimeError, match="vq.prior = prior"):
        VQVAE(small(image_size=8, codebook_size=4)).code_conditional(codes, 0, 0)


def test_the_conditional_sees_the_codes_after_the_cell_not_only_those_before_it():
    vq = tiny_vq_with_prior(K=8, image_size=12)  # s = 3
    codes = torch.randint(0, 8, (2, 3, 3), generator=gen())
    log_p = vq.code_conditional(codes, 1, 1)
    assert torch.allclose(log_p.exp().sum(1), torch.ones(2), atol=1e-5)
    with torch.no_grad():  # the network's own softmax at (1, 1): the codes before it only
        own = torch.log_softmax(vq.prior._logits(codes[:, None], None)[:, :, 1, 1], dim=1)
    assert not torch.allclose(log_p, own, atol=1e-3), "p(j | rest) differs from p(j | codes before)"
    changed = codes.clone()
    changed[:, 2, 2] = (changed[:, 2, 2] + 1) % 8  # a code after (1, 1) in raster order
    assert not torch.allclose(vq.code_conditional(changed, 1, 1), log_p, atol=1e-4)


def test_completed_codes_keep_the_visible_rows_and_repeat_with_a_seeded_generator():
    vq = tiny_vq_with_prior(K=8, image_size=16)  # s = 4
    codes = torch.randint(0, 8, (5, 4, 4), generator=gen())
    out = vq.complete_codes(codes, 2, generator=gen(3))
    assert out.shape == (5, 4, 4) and out.dtype == torch.long and 0 <= out.min() and out.max() < 8
    assert torch.equal(out[:, :2], codes[:, :2]), "the visible rows are kept exactly"
    assert torch.equal(out, vq.complete_codes(codes, 2, generator=gen(3))), "a seeded draw repeats"
    assert not torch.equal(out[:, 2:], vq.complete_codes(codes, 2, generator=gen(4))[:, 2:]), "another seed"
    assert torch.equal(vq.complete_codes(codes, 4, generator=gen(3)), codes), "all rows visible: nothing drawn"
    assert vq.prior.training and torch.equal(codes, torch.randint(0, 8, (5, 4, 4), generator=gen())), \
        "the prior's mode is restored and the input is not written"
    assert vq.decode(out).shape == (5, 1, 16, 16)


@pytest.mark.parametrize("call, error, match", [
    (lambda vq, c: vq.code_conditional(c[:, 0], 0, 0), ValueError, r"\(B, 2, 2\).*to_codes"),
    (lambda vq, c: vq.code_conditional(c.float(), 0, 0), ValueError, r"integer codes.*\.long\(\)"),
    (lambda vq, c: vq.code_conditional(c + 4, 0, 0), ValueError, r"codes in 0..3"),
    (lambda vq, c: vq.code_conditional(c, 2, 0), ValueError, r"cell of the 2x2 grid \(each in 0..1\)"),
    (lambda vq, c: vq.code_conditional(c, 0, -1), ValueError, r"row=0, col=-1"),
    (lambda vq, c: vq.code_conditional(c, 0.5, 0), ValueError, r"row must be an integer"),
    (lambda vq, c: vq.complete_codes(c, 3), ValueError, r"between 0 .* and 2"),
    (lambda vq, c: vq.complete_codes(c, 1, temperature=0), ValueError, r"temperature"),
    (lambda vq, c: vq.complete_codes(c, 1, cond=0), ValueError, r"unconditional"),
])
def test_editing_codes_explains_bad_arguments(call, error, match):
    vq = tiny_vq_with_prior(K=4)
    with pytest.raises(error, match=match):
        call(vq, torch.zeros(2, 2, 2, dtype=torch.long))


# -- dead-code restarts: counted on the host, resumed at the same steps ------------------------------------------
class _CountedReads(torch.Tensor):
    """A tensor that counts how often its value is read back to Python (each read a GPU sync on CUDA)."""
    reads = 0

    def __int__(self):
        _CountedReads.reads += 1
        return super().__int__()

    def __bool__(self):
        _CountedReads.reads += 1
        return super().__bool__()

    def item(self):
        _CountedReads.reads += 1
        return super().item()


def test_dead_code_restarts_do_not_read_the_step_count_from_the_device_every_step():
    vq = VQVAE(small(restart_dead=True, restart_window=4), seed=0)
    vq.codebook.steps = torch.zeros((), dtype=torch.long).as_subclass(_CountedReads)
    _CountedReads.reads = 0
    Trainer(vq, train_config=QUIET).fit([blobs(8, seed=i) for i in range(3)], steps=12)
    assert int(vq.codebook.steps) == 12 and vq.codebook._steps == 12
    assert _CountedReads.reads <= 2, f"the step buffer was read {_CountedReads.reads - 1} times in 12 steps"


def test_a_resumed_run_restarts_dead_codes_at_the_same_steps_as_an_unbroken_one(tmp_path, monkeypatch):
    restarted = []
    restart = Codebook.restart

    def recorded(self, z, generator=None):
        restarted.append(int(self.steps))
        return restart(self, z, generator)
    monkeypatch.setattr(Codebook, "restart", recorded)
    config, data = small(restart_dead=True, restart_window=3), [blobs(8, seed=i) for i in range(4)]
    Trainer(VQVAE(config, seed=0), train_config=QUIET).fit(data, steps=10)
    unbroken, restarted[:] = list(restarted), []
    first = Trainer(VQVAE(config, seed=0), train_config=QUIET)
    first.fit(data, steps=4)
    path = first.save(tmp_path / "vq.pt")
    second = Trainer(VQVAE(config, seed=0), train_config=QUIET).load(path)  # a fresh process, steps from the file
    assert int(second.model.codebook.steps) == 4
    second.fit(data, steps=6)
    assert unbroken == [3, 6, 9] and restarted == unbroken, (unbroken, restarted)
    assert int(second.model.codebook.steps) == second.model.codebook._steps == 10
    first.fit(data, steps=4)  # on to step 8 (its host count too), then back to the checkpoint's step 4
    restarted[:] = []
    first.load(path).fit(data, steps=6)
    assert restarted == [6, 9] and first.model.codebook._steps == 10, "the host count follows a load_state_dict"
