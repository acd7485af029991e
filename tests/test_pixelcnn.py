"""PixelCNN (models/pixelcnn.py): masks and causality against autograd, log p(x) against exhaustive enumeration."""
import itertools
import math

import pytest
import torch

from course_lib import PROFILES, setup
from course_lib.models.pixelcnn import (GatedBlock, MaskedConv2d, PixelCNN, PixelCNNConfig, causality_violations,
                                        check_causal, mask, receptive_field)
from course_lib.recipes.pixelcnn import evaluate_bpd, pixelcnn_config, train_pixelcnn
from course_lib.train import TrainConfig

QUIET = TrainConfig(log_every=5, progress=False)
VARIANTS = [("plain", None), ("gated", None), ("plain", 3), ("gated", 3)]


def small(variant="gated", size=8, n_classes=None, **changes):
    return PixelCNNConfig(**{"image_size": size, "variant": variant, "levels": 16, "channels": 8, "n_layers": 3,
                             "first_kernel": 3, "n_classes": n_classes, **changes})


def images(n=8, size=8, levels=256, seed=0):
    """Random images on the grid k / (levels - 1), as course_lib.data gives them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, 1, size, size), generator=g).float() / (levels - 1)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def net_fn(model, label=1):
    """The network as causality_violations takes it: images on [-1, 1] -> logits, a fixed class if conditional."""
    if model.config.n_classes is None:
        return model.net
    return lambda x: model.net(x, torch.full((len(x),), label))


# -- masks and causality, checked with autograd ---------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_masks_keep_exactly_the_pixels_before_the_centre_in_raster_order(k):
    centre = (k // 2) * k + k // 2  # the centre's raster index
    order = torch.arange(k * k).reshape(k, k)
    assert torch.equal(mask("A", k), (order < centre).float())
    assert torch.equal(mask("B", k), (order <= centre).float())
    assert torch.equal(mask("A", 3), torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))


def test_a_masked_conv_of_type_a_is_causal_and_type_b_in_the_first_layer_is_not():
    with torch.no_grad():
        a, b = MaskedConv2d(1, 4, 5, "A"), MaskedConv2d(1, 4, 5, "B")
    assert causality_violations(a, (1, 6, 6)) == []
    bad = causality_violations(b, (1, 6, 6))
    assert len(bad) == 36 and all(out == inp for out, inp in bad), "type B first: every pixel sees itself, only itself"
    with pytest.raises(AssertionError, match=r"output pixel \(0, 0\) depends on itself \(36 such pairs"):
        check_causal(b, (1, 6, 6))
    assert a(torch.randn(2, 1, 6, 6)).shape == (2, 4, 6, 6), "padding k // 2 keeps H and W"


@pytest.mark.parametrize("variant, n_classes", VARIANTS)
def test_every_pixelcnn_variant_is_causal(variant, n_classes):
    model = PixelCNN(small(variant, n_classes=n_classes), seed=0)
    check_causal(net_fn(model), (1, 8, 8))
    model = PixelCNN(small(variant, size=6, n_classes=n_classes, first_kernel=5, kernel_size=5, n_layers=2), seed=1)
    assert causality_violations(net_fn(model, label=2), (1, 6, 6)) == []


def test_broken_networks_are_caught():
    plain = PixelCNN(small("plain"), seed=0)
    plain.net.convs[0].mask = mask("B", 3)  # type B in the first layer: x_i sees itself
    with pytest.raises(AssertionError, match=r"output pixel \(0, 0\) depends on itself"):
        check_causal(plain.net, (1, 8, 8))
    plain.net.convs[1].mask = torch.ones(3, 3)  # an unmasked later layer: pixels below and right leak
    bad = causality_violations(plain.net, (1, 8, 8))
    assert any(inp > out for out, inp in bad), "later pixels leak in"

    gated = PixelCNN(small("gated"), seed=0)
    with torch.no_grad():
        gated.net.blocks[0] = GatedBlock(1, 8, 3, first=False)  # a horizontal stack that shows the centre
    with pytest.raises(AssertionError, match="depends on itself"):
        check_causal(gated.net, (1, 8, 8))
    gated = PixelCNN(small("gated"), seed=0)
    block = gated.net.blocks[1]
    block.down = lambda f: block.v_to_h(f)  # the vertical stack without its down-shift: the row's right part leaks
    bad = causality_violations(gated.net, (1, 8, 8))
    assert ((3, 3), (3, 4)) in bad and ((3, 3), (3, 3)) in bad, "the pixel itself and the one to its right"


def test_check_causal_takes_any_function_and_names_the_leak():
    ahead = lambda x: torch.roll(x, -1, dims=3)  # noqa: E731  output (i, j) = input (i, j + 1): it peeks ahead
    leak = r"output pixel \(0, 0\) depends on input pixel \(0, 1\), which comes after"
    with pytest.raises(AssertionError, match=leak):
        check_causal(ahead, (1, 4, 4))
    behind = lambda x: torch.cat([torch.zeros_like(x[..., :1]), x[..., :-1]], dim=3)  # noqa: E731  (i, j - 1)
    assert causality_violations(behind, (1, 4, 4)) == []
    assert causality_violations(lambda x: 2 * x, (1, 4, 4)) == [((i, j), (i, j)) for i in range(4) for j in range(4)]


def test_the_plain_pixelcnn_has_a_blind_spot_and_the_gated_one_does_not():
    i, j = 5, 3
    plain = PixelCNN(small("plain", n_layers=4), seed=0)
    seen = receptive_field(plain.net, (1, 8, 8), (i, j)) != 0  # (8, 8) bool
    assert seen[i - 2, j + 2] and seen[i - 3, j + 3], "3x3 layers reach up and right, one column per row ..."
    assert not seen[i - 1, j + 2] and not seen[i - 1, j + 3], "... but not two columns right on the row above"

    gated = PixelCNN(small("gated", n_layers=3), seed=0)
    r = gated.net.reach  # 1 + 2 x 1: the first 3x3 kernel and two more
    want = torch.zeros(8, 8, dtype=torch.bool)
    want[max(0, i - 1 - r):i, max(0, j - r):j + r + 1] = True  # every pixel of the rows above within reach
    want[i, max(0, j - r):j] = True  # and the pixels to the left on its own row
    assert torch.equal(receptive_field(gated.net, (1, 8, 8), (i, j)) != 0, want)


@pytest.mark.parametrize("variant, n_classes", VARIANTS)
def test_the_samplers_pixel_logits_equal_the_full_forward_pass(variant, n_classes):
    model = PixelCNN(small(variant, n_classes=n_classes, n_layers=4), seed=0)
    x, y = torch.rand(3, 1, 8, 8, generator=gen()) * 2 - 1, (torch.tensor([0, 2, 1]) if n_classes else None)
    with torch.no_grad():
        full = model.net(x, y)  # (3, L, 8, 8)
        for i in range(8):
            state = model.net.begin_row(x, i, y)
            for j in range(8):
                assert torch.allclose(model.net.pixel_logits(x, i, j, state, y), full[:, :, i, j], atol=1e-5), (i, j)


# -- the likelihood -------------------------------------------------------------------------------------------------
def every_image(levels, size=2):
    """All levels^(size^2) images (N, 1, size, size), in [0, 1]."""
    grid = torch.tensor(list(itertools.product(range(levels), repeat=size * size))).float()
    return grid.reshape(-1, 1, size, size) / (levels - 1)


@pytest.mark.parametrize("variant, n_classes", VARIANTS)
@pytest.mark.parametrize("levels", [2, 3])
def test_log_prob_sums_to_one_over_every_image(variant, n_classes, levels):
    model = PixelCNN(small(variant, size=2, n_classes=n_classes, levels=levels), seed=0)
    x = every_image(levels)  # 16 or 81 images of 2x2 pixels
    with torch.no_grad():
        log_p = model.log_prob(x, 1 if n_classes else None).double()
    assert float(torch.logsumexp(log_p, 0).exp()) == pytest.approx(1.0, abs=1e-5)
    assert float(log_p.std()) > 0.01, "an untrained net is not uniform: the sum is a real check"


def test_samples_follow_log_prob():
    model = PixelCNN(small("gated", size=2, levels=2), seed=3)
    x = every_image(2)
    with torch.no_grad():
        p = model.log_prob(x).exp()  # (16,)
    draws = model.sample(20_000, generator=gen(1))
    index = (draws.flatten(1).round().long() * torch.tensor([8, 4, 2, 1])).sum(1)  # the image's number in every_image
    freq = torch.bincount(index, minlength=16).double() / len(draws)
    assert float((freq - p.double()).abs().sum() / 2) < 0.02, "total variation between the sampler and exp(log_prob)"


@pytest.mark.parametrize("levels", [256, 16])
def test_bits_per_dim_of_a_uniform_model_is_log2_levels(levels):
    model = PixelCNN(small(levels=levels), seed=0)
    x = images(4, levels=levels)
    with torch.no_grad():
        assert torch.allclose(model.bits_per_dim(x), -model.log_prob(x) / (64 * math.log(2)))
        last = model.net.head.net[-1]
        last.weight.zero_(), last.bias.zero_()  # equal logits: every level has probability 1 / L
        assert torch.allclose(model.bits_per_dim(x), torch.full((4,), math.log2(levels)))
        assert torch.allclose(model.log_prob(x), torch.full((4,), -64 * math.log(levels)))


def test_levels_recover_8_bit_data_exactly():
    model = PixelCNN(small(levels=256), seed=0)
    k = torch.arange(256).reshape(4, 1, 8, 8)
    assert torch.equal(model.to_levels(k.float() / 255), k)
    assert torch.equal(PixelCNN(small(levels=16), seed=0).to_levels(torch.tensor([0.0, 0.49, 1.0])),
                       torch.tensor([0, 7, 15]))


# -- the process ----------------------------------------------------------------------------------------------------
def test_the_loss_is_nats_and_reports_bits_per_dim():
    """(The process contract, seeding and bf16 are tested for every family in test_models.py.)"""
    model = PixelCNN(small(), seed=3)
    out = model.phases()[0].loss_fn(images(6))
    assert set(out) == {"loss", "bpd"} and all(v.ndim == 0 for v in out.values())
    assert float(out["bpd"]) == pytest.approx(float(out["loss"].detach()) / (64 * math.log(2)), rel=1e-6)


def test_samples_have_the_shape_range_and_grid_and_repeat_with_a_generator():
    model = PixelCNN(small(levels=16), seed=0)
    state = torch.get_rng_state()
    a = model.sample(5, generator=gen(1))
    assert torch.equal(state, torch.get_rng_state()), "a seeded draw leaves the global random state alone"
    assert a.shape == (5, 1, 8, 8) and a.dtype == torch.float32 and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.allclose(a * 15, torch.round(a * 15)), "samples lie on the levels k / (L - 1)"
    assert torch.equal(a, model.sample(5, generator=gen(1), progress=True))
    assert not torch.equal(a, model.sample(5, generator=gen(2)))
    cold = model.sample(200, generator=gen(3), temperature=0.05)
    with torch.no_grad():
        assert float(model.log_prob(cold).mean()) > float(model.log_prob(model.sample(200, generator=gen(3))).mean()), \
            "a low temperature draws the likelier images"


def test_complete_keeps_the_visible_rows_exactly_and_samples_the_rest():
    model = PixelCNN(small(levels=16), seed=0)
    x = torch.rand(4, 1, 8, 8, generator=gen())  # off the level grid: the visible rows are still kept as given
    out = model.complete(x, visible_rows=3, generator=gen(1))
    assert out.shape == x.shape and torch.equal(out[:, :, :3], x[:, :, :3])
    assert torch.allclose(out[:, :, 3:] * 15, torch.round(out[:, :, 3:] * 15)), "the rest is sampled on the levels"
    assert torch.equal(out, model.complete(x, visible_rows=3, generator=gen(1)))
    assert torch.equal(model.complete(x, visible_rows=8), x), "every row visible: nothing to sample"
    assert model.complete(x, visible_rows=0, generator=gen(1)).shape == x.shape


def test_a_conditional_model_samples_and_scores_per_class():
    model = PixelCNN(small(n_classes=3), seed=0)
    a = model.sample(6, generator=gen(1), cond=torch.arange(6) % 3)
    assert a.shape == (6, 1, 8, 8)
    draw = lambda n, c: model.sample(n, generator=gen(1), cond=c)  # noqa: E731
    assert torch.equal(draw(2, 2), draw(2, [2, 2])), "one class id conditions every sample"
    assert not torch.equal(draw(4, 0), draw(4, 1)), "the class changes the samples"
    x = images(3)
    with torch.no_grad():
        assert not torch.allclose(model.log_prob(x, 0), model.log_prob(x, 1)), "the class changes the likelihood"
        assert torch.equal(model.loss((x, torch.tensor([0, 1, 2])))["loss"], -model.log_prob(x, [0, 1, 2]).mean())
    assert model.complete(x, 4, generator=gen(1), cond=[0, 1, 2]).shape == x.shape


def test_errors_say_how_to_fix():
    with pytest.raises(ValueError, match=r"Choose one of \['gated', 'plain'\]"):
        PixelCNNConfig(variant="pixelsnail")
    with pytest.raises(ValueError, match="levels must be between 2 and 256"):
        PixelCNNConfig(levels=512)
    with pytest.raises(ValueError, match="must be odd"):
        PixelCNNConfig(kernel_size=4)
    with pytest.raises(ValueError, match="kind must be 'A'"):
        mask("C", 3)
    model = PixelCNN(small(), seed=0)
    with pytest.raises(ValueError, match=r"images \(B, 1, 8, 8\), got \(2, 8, 8\). Add .unsqueeze\(1\)"):
        model.log_prob(images(2)[:, 0])
    with pytest.raises(ValueError, match=r"PixelCNNConfig\(image_size=...\)"):
        model.log_prob(images(2, size=28))
    with pytest.raises(ValueError, match="divide by 255"):
        model.log_prob(images(2) * 255)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        model.loss(images(2) * 2 - 1)
    for rows in (-1, 9):
        with pytest.raises(ValueError, match="visible_rows .* between 0 .* and 8"):
            model.complete(images(2), rows)
    with pytest.raises(ValueError, match="temperature .* must be > 0"):
        model.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match=r"unconditional \(n_classes=None\): leave cond=None"):
        model.sample(2, cond=3)
    conditional = PixelCNN(small(n_classes=3), seed=0)
    with pytest.raises(ValueError, match="class-conditional .* pass cond="):
        conditional.sample(2)
    with pytest.raises(ValueError, match=r"each in 0..2"):
        conditional.sample(2, cond=3)
    with pytest.raises(ValueError, match="one class id or 2 of them"):
        conditional.log_prob(images(2), [0, 1, 2])


# -- training, checkpoints and the bench ----------------------------------------------------------------------------
def test_pixelcnn_config_takes_sizes_from_the_profile():
    course = setup(profile="smoke", quiet=True)
    c = pixelcnn_config(course, "digits", variant="plain", levels=17)
    assert (c.image_size, c.variant, c.levels, c.channels, c.n_layers, c.lr) == (8, "plain", 17, 16, 4, 1e-2)
    assert pixelcnn_config(course).image_size == 28 and pixelcnn_config(course).levels == 256


def test_a_short_run_on_digits_lowers_bits_per_dim_clearly():
    course = setup(profile="smoke", quiet=True)
    train, test = course.load_data("digits", "train"), course.load_data("digits", "test")
    model = PixelCNN(pixelcnn_config(course, "digits"), seed=0)
    before = evaluate_bpd(model, test)
    run = train_pixelcnn(course, model, train, steps=120, snapshots=2, n_show=4, train_config=QUIET)
    after = evaluate_bpd(model, test)
    assert before > 7.5, f"an untrained 256-level model is close to uniform (8 bits), got {before:.2f}"
    assert after < 3.5, f"bits/dim must fall clearly: {before:.2f} -> {after:.2f}"
    assert [s for s, _ in run.snapshots] == [0, 60, 120] and run.snapshots[-1][1].shape == (4, 1, 8, 8)


def test_from_checkpoint_and_load_or_train_round_trip(tmp_path):
    course = setup(profile="smoke", quiet=True)
    data = course.load_data("digits", "train", size=128)
    config = small(n_classes=10)
    path = tmp_path / "runs" / "pixelcnn.pt"
    first = train_pixelcnn(course, PixelCNN(config, seed=2), data, steps=3, checkpoint=path, snapshots=1,
                           n_show=3, train_config=QUIET)
    again = PixelCNN.from_checkpoint(path)
    assert type(again) is PixelCNN and again.config == config and again.seed == 2
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.state_dict().values()))
    assert torch.equal(first.model.sample(3, gen(5), cond=1), again.sample(3, gen(5), cond=1))
    loaded = train_pixelcnn(course, PixelCNN(config, seed=2), data, steps=3, checkpoint=path, snapshots=1,
                            n_show=3, train_config=QUIET)
    assert loaded.trainer.status == "loaded" and torch.equal(loaded.snapshots[-1][1], first.snapshots[-1][1])


def test_pixelcnn_benches_are_found_and_report_the_figures():
    from course_lib.bench import find_benchmarks
    from course_lib.recipes.pixelcnn import bench_pixelcnn_digits

    assert {"pixelcnn", "pixelcnn-digits"} <= set(find_benchmarks())
    # smoke, shortened: 60 steps and 128 samples (sampling is the slow part: 64 network steps per batch)
    course = setup(profile=PROFILES["smoke"].scaled(min_steps=60, eval_size=128), quiet=True)
    out = bench_pixelcnn_digits(course)
    for key in ("test_bpd", "levels", "train_seconds", "images_per_second", "sample_seconds_per_image", "fd",
                "fd_floor", "precision", "recall", "coverage", "eval_n"):
        assert key in out, key
    assert out["levels"] == 256 and out["steps"] == course.profile.min_steps == 60 and out["eval_n"] == 128
    # Untrained, the network is near uniform over the 256 levels: 8 bits/dim. 60 steps reach about 2.3.
    assert 0 < out["test_bpd"] < 4, f"{out['test_bpd']} bits/dim: not under half of a uniform model's 8"
    assert out["fd_floor"] < out["fd"] < float("inf") and out["sample_seconds_per_image"] > 0


def test_the_sampling_progress_bar_stays_when_done(capsys):
    """A finished bar is left in place: in a notebook, a closed bar (leave=False) left its saved output at '0%'."""
    model = PixelCNN(small(levels=16), seed=0)
    model.complete(images(2), visible_rows=4, generator=gen(1), progress=True)
    last = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert "32/32" in last and "100%" in last, f"the bar's last state: {last!r}"
