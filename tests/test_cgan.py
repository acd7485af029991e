"""Conditional GANs (models/cgan.py): the discriminators and the matching-aware loss by hand, captions, training."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import PROFILES, setup
from course_lib.checkpoint import CheckpointError
from course_lib.models.captions import ATTRIBUTES, VOCAB, Captioner, attributes, caption, encode_caption, fit_thresholds
from course_lib.models.cgan import (CGAN, CGANConfig, ConcatDiscriminator, ConditionalGenerator,
                                    ProjectionDiscriminator, TextEncoder, condition_maps, matching_aware_d_loss,
                                    projection_logits, wrong_captions, wrong_labels)
from course_lib.recipes.cgan import (bench_cgan_digits, cgan_config, class_accuracy, class_grid, per_class_metrics,
                                     train_cgan)
from course_lib.models.gan import discriminator_loss
from course_lib.train import TrainConfig

QUIET = TrainConfig(log_every=5, progress=False)


def small(size=8, **changes):
    return CGANConfig(**{"image_size": size, "width": 4, "z_dim": 8, "embed_dim": 6, "map_channels": 3,
                         "dataset": "digits", **changes})


@pytest.fixture(scope="module")
def course():
    return setup(profile="smoke", quiet=True)


@pytest.fixture(scope="module")
def digits(course):
    return course.load_data("digits", "train", size=None, device="cpu")


def captioned(data, course=None):
    return Captioner(data.classes).fit(data.images, data.labels)


# -- the networks --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [8, 28])
@pytest.mark.parametrize("condition", ["label", "caption"])
def test_shapes(size, condition):
    c = small(size, condition=condition)
    cond = torch.tensor([1, 2, 3]) if condition == "label" else torch.tensor([[1, 3, 5, 9], [2, 4, 6, 10], [1, 4, 0, 0]])
    with torch.no_grad():
        x = ConditionalGenerator(c)(torch.randn(3, 8), cond)
    assert x.shape == (3, 1, size, size) and float(x.abs().max()) <= 1
    assert ConcatDiscriminator(c)(x, cond).shape == (3, 1, 1, 1)
    assert ProjectionDiscriminator(c)(x, cond).shape == (3,)
    assert condition_maps(x, torch.randn(3, 5)).shape == (3, 6, size, size)


def test_concat_d_sees_the_condition_as_constant_maps():
    x, e = torch.randn(2, 1, 8, 8), torch.randn(2, 3)
    maps = condition_maps(x, e)
    assert torch.equal(maps[:, :1], x)
    assert torch.equal(maps[:, 1:], e[:, :, None, None].expand(2, 3, 8, 8))


def test_projection_d_is_psi_plus_the_inner_product_by_hand():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(small()).eval()
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 3, 3, 7, 9])
    h = d.phi(x).flatten(1)  # (5, 2w s s)
    psi = h @ d.psi.weight.flatten() + d.psi.bias  # the last conv covers the whole map: a dot product
    by_hand = psi + (d.embed.weight[y] * h).sum(1)
    assert torch.allclose(d(x, y), by_hand, atol=1e-5)
    assert torch.allclose(projection_logits(psi, h, d.embed.weight[y]), by_hand, atol=1e-6)
    other = d(x, torch.tensor([1, 3, 3, 7, 9]))
    assert torch.allclose(other[1:], by_hand[1:], atol=1e-5) and not torch.isclose(other[0], by_hand[0])


# -- the matching-aware loss -----------------------------------------------------------------------------------
def test_matching_aware_loss_is_the_formula_in_its_minimisation_form():
    r, w, f = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.3, -2.0, 1.0]), torch.tensor([-3.0, 0.0, 1.5])
    s = torch.sigmoid
    objective = torch.log(s(r)).mean() + (torch.log(1 - s(w)).mean() + torch.log(1 - s(f)).mean()) / 2
    assert torch.allclose(matching_aware_d_loss(r, w, f), -objective, atol=1e-6), "the loss is minus GAN-CLS's objective"
    bce = F.binary_cross_entropy_with_logits
    by_bce = bce(r, torch.ones(3)) + (bce(w, torch.zeros(3)) + bce(f, torch.zeros(3))) / 2
    assert torch.allclose(matching_aware_d_loss(r, w, f), by_bce, atol=1e-6)
    average = (discriminator_loss(r, w) + discriminator_loss(r, f)) / 2  # what any other loss family uses
    assert torch.allclose(matching_aware_d_loss(r, w, f), average, atol=1e-6)


def test_matching_aware_loss_is_finite_for_huge_logits():
    big = torch.tensor([1e4, -1e4])
    loss = matching_aware_d_loss(big, -big, -big)  # D right with certainty on one, wrong on the other
    assert torch.isfinite(loss) and torch.allclose(loss, torch.tensor(1e4 / 2 * 2)), float(loss)
    assert float(matching_aware_d_loss(big.abs(), -big.abs(), -big.abs())) == 0.0


def test_wrong_labels_are_never_the_true_ones_and_cover_the_others():
    y = torch.arange(10).repeat(500)
    w = wrong_labels(y, 10, torch.Generator().manual_seed(0))
    assert not (w == y).any() and w.min() >= 0 and w.max() <= 9
    counts = torch.bincount(w[y == 0], minlength=10)
    assert counts[0] == 0 and (counts[1:] > 30).all(), counts.tolist()


def test_wrong_captions_differ_as_bags_of_words(digits):
    tokens = captioned(digits).tokens(digits.images[:256], digits.labels[:256])
    w = wrong_captions(tokens, torch.Generator().manual_seed(0))
    assert not (w.sort(1).values == tokens.sort(1).values).all(1).any()
    same = torch.tensor([[1, 3, 5, 7]] * 4)
    with pytest.raises(ValueError, match="same"):
        wrong_captions(same, torch.Generator().manual_seed(0))
    reordered = torch.tensor([[1, 3, 5, 7], [7, 5, 3, 1]])  # the same bag: not a wrong caption
    with pytest.raises(ValueError):
        wrong_captions(reordered, torch.Generator().manual_seed(0))


def test_matching_aware_phase_sees_three_scores_and_differs_from_plain(course, digits):
    batch = (digits.images[:16], digits.labels[:16])
    ma, plain = CGAN(small(), seed=1), CGAN(small(matching_aware=False), seed=1)
    out = ma.discriminator_loss(batch)
    assert {"d_loss", "score_real", "score_wrong", "score_fake"} <= set(out)
    assert "d_real" in plain.discriminator_loss(batch)


# -- captions ------------------------------------------------------------------------------------------------
def test_attributes_measure_what_they_say():
    x = torch.zeros(3, 1, 8, 8)
    x[0, 0, 2:6, 3:5] = 0.4  # a dim, small, narrow block
    x[1, 0, 1:7, 1:7] = 1.0  # a bright, large, wide block
    a = attributes(x)
    assert a["intensity"][1] > a["intensity"][0] and a["area"][1] > a["area"][0] and a["width"][1] > a["width"][0]
    assert all(torch.isfinite(v).all() for v in a.values()), "an empty image gives finite numbers"


def test_every_word_describes_about_half_of_every_class(digits):
    cap = captioned(digits)
    high = cap.tokens(digits.images, digits.labels)[:, :3] % 2 == 0  # the second word of each pair has an even id
    assert torch.equal(high, cap.high(digits.images, digits.labels))
    for k in range(10):
        share = high[digits.labels == k].float().mean(0)
        assert ((share - 0.5).abs() < 0.06).all(), (k, share.tolist())


def test_captions_are_words_of_the_vocabulary_and_match_their_tokens(digits):
    cap = captioned(digits)
    texts = cap.caption(digits.images[:20], digits.labels[:20])
    assert texts == caption(digits.images[:20], digits.labels[:20], cap.thresholds, digits.classes)
    assert all(len(t.split()) == 4 and t.split()[-1] == ("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                         "eight", "nine")[int(y)] for t, y in zip(texts, digits.labels))
    assert torch.equal(cap.encode(texts), cap.tokens(digits.images[:20], digits.labels[:20]))
    assert torch.equal(cap.thresholds, fit_thresholds(digits.images, digits.labels, 10))
    assert cap.attribute_accuracy(digits.images[:200], cap.caption(digits.images[:200], digits.labels[:200])) == 1.0
    assert "t-shirt" in VOCAB and "ankle-boot" in VOCAB and {w for _, lo, hi in ATTRIBUTES for w in (lo, hi)} < set(VOCAB)


@pytest.mark.parametrize("text", ["", "   ", "dark fluffy trouser"])
def test_bad_captions_list_the_vocabulary(text):
    with pytest.raises(ValueError, match="dark, light, small, large, narrow, wide, t-shirt, trouser"):
        encode_caption(text)
    assert encode_caption("Dark, trouser") == [VOCAB.index("dark"), VOCAB.index("trouser")]


def test_text_encoder_is_a_bag_of_words():
    enc = TextEncoder(len(VOCAB), 5)
    cap = Captioner(("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"))
    a, b = cap.encode(["dark small", "small dark"]), cap.encode(["dark small", "small dark light eight"])
    e = enc(a)
    assert torch.allclose(e[0], e[1]), '"dark small" == "small dark": the order of words is lost'
    assert torch.allclose(enc(b)[0], e[0]), "padding adds nothing"
    mean = TextEncoder(len(VOCAB), 5, pool="mean")
    assert torch.allclose(mean(b)[0], mean.embed.weight[a[0]].mean(0))


def test_caption_models_take_strings_and_label_models_refuse_them(digits):
    gan = CGAN(small(condition="caption"))
    gan.captioner.fit(digits.images, digits.labels)
    assert gan.sample(3, cond="light large wide seven").shape == (3, 1, 8, 8)
    assert gan.sample(2, cond=["dark two", "wide one"]).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="strings"):
        gan.sample(2, cond=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="labels"):
        CGAN(small()).sample(2, cond="dark two")
    assert CGAN(small()).sample(2, cond=7).shape == (2, 1, 8, 8), "one class id for every sample"
    with pytest.raises(ValueError, match="cond"):
        CGAN(small()).sample(2)


def test_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="projection"):
        small(d_kind="film")
    with pytest.raises(ValueError, match="cgan_config"):
        CGANConfig(dataset="digits", n_classes=7)
    with pytest.raises(ValueError, match="conditional"):
        small(conditional=False)


# -- the process in the loop ------------------------------------------------------------------------------------
def test_cgan_config_takes_sizes_and_classes_from_the_course(course):
    gan = CGAN(cgan_config(course, "digits"))
    assert (gan.config.image_size, gan.config.width, gan.config.n_classes) == (8, course.profile.width, 10)


def test_checkpoint_round_trip_keeps_the_thresholds(course, digits, tmp_path):
    gan = CGAN(small(condition="caption"), seed=3)
    run = train_cgan(course, gan, digits, steps=4, snapshots=2, train_config=QUIET)
    assert [s for s, _ in run.snapshots] == [0, 2, 4] and run.snapshots[-1][1].shape == (10 * 1, 1, 8, 8)
    path = run.trainer.save(tmp_path / "cgan.pt")
    back = CGAN.from_checkpoint(path)
    assert torch.equal(back.captioner.thresholds, gan.captioner.thresholds) and bool(back.captioner.fitted)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(back.eval().sample(4, g(), cond="dark one"), gan.eval().sample(4, g(), cond="dark one"))


class TinyG(torch.nn.Module):
    """z (B, 8), labels (B,) -> (B, 1, 8, 8) in [-1, 1]: a linear map of [z, e(y)], as a lab's own generator."""

    def __init__(self):
        super().__init__()
        self.embed, self.net = torch.nn.Embedding(10, 3), torch.nn.Linear(8 + 3, 64)

    def forward(self, z, labels):
        return torch.tanh(self.net(torch.cat([z, self.embed(labels)], 1))).reshape(-1, 1, 8, 8)


class TinyD(torch.nn.Module):
    """images (B, 1, 8, 8), labels (B,) -> logits (B,): a linear projection discriminator."""

    def __init__(self):
        super().__init__()
        self.embed, self.psi = torch.nn.Embedding(10, 64), torch.nn.Linear(64, 1)

    def forward(self, x, labels):
        h = x.flatten(1)  # (B, 64)
        return projection_logits(self.psi(h)[:, 0], h, self.embed(labels))


def test_networks_of_your_own_train_sample_and_checkpoint(course, digits, tmp_path):
    torch.manual_seed(0)
    G, D = TinyG(), TinyD()
    start = {k: v.clone() for k, v in G.state_dict().items()}
    calls = []

    def ma_loss(r, w, f):
        calls.append((r.shape, w.shape, f.shape))
        return matching_aware_d_loss(r, w, f)

    gan = CGAN(small(ema=0.9), seed=2, generator=G, discriminator=D, ma_loss=ma_loss)
    assert gan.G is G and gan.D is D and all(torch.equal(v, start[k]) for k, v in G.state_dict().items()), \
        "networks passed in keep their own weights (the seed draws only the config's networks)"
    run = train_cgan(course, gan, digits, steps=4, snapshots=0, train_config=QUIET)
    assert calls and calls[0][0] == calls[0][1] == calls[0][2], "the matching-aware loss got real, wrong, fake logits"
    assert not torch.equal(G.net.weight, start["net.weight"]) and gan.G_ema is not None
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x = gan.eval().sample(5, g(), cond=torch.arange(5))
    assert x.shape == (5, 1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(TypeError, match="has no `embed` and `from_embedding"):
        gan.embed(3)
    path = run.trainer.save(tmp_path / "own.pt")
    back = CGAN.from_checkpoint(path, generator=TinyG(), discriminator=TinyD())
    assert torch.equal(back.eval().sample(5, g(), cond=torch.arange(5)), x)
    with pytest.raises(CheckpointError, match=r"pass them: CGAN.from_checkpoint\(path, generator=G"):
        CGAN.from_checkpoint(path)


def test_class_grid_rows_are_classes_and_columns_share_noise(course):
    gan = CGAN(small()).eval()
    grid = class_grid(gan, torch.randn(3, 8))
    assert grid.shape == (30, 1, 8, 8) and grid.min() >= 0 and grid.max() <= 1
    rows = grid.reshape(10, 3, -1)
    assert not torch.allclose(rows[0], rows[1]), "rows differ by class"


def test_embeddings_between_classes_reach_the_generator(course):
    gan = CGAN(small(), seed=1).eval().requires_grad_(False)
    z, e = torch.randn(4, 8), gan.embed([2, 2, 7, 7])
    assert e.shape == (4, 6) and torch.equal(e[0], gan.G.embed.weight[2])
    assert torch.allclose(gan.generate_embedded(z, e), gan.to_data(gan.generate(z, gan.condition([2, 2, 7, 7]))))
    mid = gan.generate_embedded(z[:1], 0.5 * (e[:1] + e[2:3]))  # halfway between two classes: a valid image
    assert mid.shape == (1, 1, 8, 8) and 0 <= float(mid.min()) and float(mid.max()) <= 1
    cap = CGAN(small(condition="caption")).eval()
    cap.captioner.fit(torch.rand(20, 1, 8, 8), torch.arange(20) % 10)
    same = cap.embed(["dark small narrow two", "narrow two small dark"])
    assert torch.allclose(same[0], same[1], atol=1e-6)  # a bag of words: the order is lost


def test_per_class_metrics_see_a_collapse_inside_one_class(course, digits):
    test = course.load_data("digits", "test", device="cpu")
    x, y = digits.images[:300], digits.labels[:300]
    honest = per_class_metrics(x, y, test)
    assert len(honest) == 10 and all(m["recall"] > 0.5 and m["fd"] < 50 for m in honest)
    collapsed = x.clone()
    threes = torch.nonzero(y == 3).flatten()
    collapsed[threes] = x[threes[0]]  # every 3 is one and the same 3
    broken = per_class_metrics(collapsed, y, test)
    assert broken[3]["recall"] < 0.2 and broken[3]["fd"] > 3 * honest[3]["fd"]
    assert all(broken[k] == honest[k] for k in range(10) if k != 3)
    with pytest.raises(ValueError, match="need more than 5"):
        per_class_metrics(x[:20], y[:20], test)


def test_class_accuracy_of_real_images_is_the_classifiers(digits):
    assert class_accuracy(digits.images[:300], digits.labels[:300], "digits") > 0.95
    assert class_accuracy(digits.images[:300], (digits.labels[:300] + 1) % 10, "digits") < 0.1


def test_a_short_run_on_digits_learns_the_classes(course, digits):
    gan = CGAN(cgan_config(course, "digits"), seed=0)  # smoke width, matching-aware projection D
    train_cgan(course, gan, digits, steps=150, snapshots=0, train_config=QUIET)
    labels = torch.arange(300) % 10
    acc = class_accuracy(gan.sample(300, generator=torch.Generator().manual_seed(1), cond=labels), labels, "digits")
    assert acc > 0.6, f"class accuracy {acc:.2f}: chance is 0.1 (seeds 0-3 gave 1.0 in 150 steps)"


def test_bench_in_smoke_returns_the_figures():
    # smoke's 150 steps (at 60 the captions are not learned yet), on 128 images instead of 256
    course = setup(profile=PROFILES["smoke"].scaled(eval_size=128), quiet=True)
    out = bench_cgan_digits(course)
    keys = {"train_seconds", "images_per_second", "fd", "fd_floor", "class_accuracy", "classifier_accuracy",
            "fd_class_worst", "fd_class_median", "recall_class_worst", "recall_class_median", "precision", "recall",
            "attribute_accuracy", "eval_n"}
    assert keys <= set(out), keys - set(out)
    assert out["eval_n"] == 128 and out["steps"] == 150
    # Chance is 0.1 for the class and about 0.5 for an attribute (each word fits half of a class); 150 steps
    # gave 0.99, 0.91 (the caption model's class) and 0.60.
    assert out["class_accuracy"] > 0.5 and out["caption_class_accuracy"] > 0.3, out
    assert out["attribute_accuracy"] > 0.5, out
    assert out["fd_class_median"] <= out["fd_class_worst"] and out["fd_floor"] < out["fd"]


def test_minibatch_std_adds_the_batch_spread_as_one_constant_map():
    from course_lib.models.cgan import MinibatchStd
    h = torch.randn(6, 3, 4, 4)
    out = MinibatchStd()(h)
    assert out.shape == (6, 4, 4, 4) and torch.equal(out[:, :3], h)
    assert torch.allclose(out[:, 3], h.std(0, unbiased=False).mean().expand(6, 4, 4))
    assert float(MinibatchStd()(h[:1].expand(6, -1, -1, -1))[:, 3].abs().max()) == 0  # copies: no spread
    assert ProjectionDiscriminator(small()).psi.in_channels == 2 * 4 + 1
    assert ProjectionDiscriminator(small(minibatch_std=False)).psi.in_channels == 2 * 4


def test_mode_seeking_pays_g_for_images_that_differ_with_the_noise(digits):
    batch = (digits.images[:16], digits.labels[:16])
    on, off = CGAN(small(mode_seeking=1.0), seed=0), CGAN(small(mode_seeking=0.0), seed=0)  # the same weights and noise
    out_on, out_off = on.generator_loss(batch), off.generator_loss(batch)
    assert "mode_seeking" not in out_off and float(out_on["mode_seeking"]) > 0
    assert torch.allclose(out_on["g_loss"], out_off["g_loss"] - out_on["mode_seeking"], atol=1e-6)
    out_on["g_loss"].backward()
    assert all(p.grad is not None for p in on.G.parameters() if p.requires_grad)
