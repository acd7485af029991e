"""The divergence explorer, headless: set a control as a slider would, then read the state."""
import math

import pytest
import torch

from course_lib import divergences as dv
from course_lib.distributions import Mixture
from course_lib.widgets import DivergenceExplorer, Explorer
from course_lib.widgets.base import CONTINUOUS_BELOW_S, LABEL_PX, PX_PER_STEP, READOUT_PX


@pytest.fixture(scope="module")
def explorer():
    return DivergenceExplorer()


def expected(p: Mixture, q: Mixture, x):
    return {"KL(p||q)": float(dv.kl_integral(p.pdf(x), q.pdf(x), x)), "KL(q||p)": float(dv.kl_integral(q.pdf(x), p.pdf(x), x)),
            "JSD": float(dv.jsd_integral(p.pdf(x), q.pdf(x), x))}


def test_initial_state_matches_library(explorer):
    x = explorer.x
    p, q = Mixture([0.5, 0.5], [-2.0, 2.0], [0.6, 0.6]), Mixture.gaussian(0.5, 1.0)
    for k, v in expected(p, q, x).items():
        assert explorer.values[k] == pytest.approx(v, abs=1e-9)
    assert torch.allclose(explorer.d_star, dv.optimal_discriminator(p.pdf(x), q.pdf(x)), atol=1e-12)
    assert explorer.error is None and explorer.image.value[:4] == b"\x89PNG"
    sliders = [c for k, c in explorer.controls.items() if not k.endswith("kind")]
    # One decision for every slider, from redraws timed at start-up (the rule is tested on a fake clock below).
    assert len({c.continuous_update for c in sliders}) == 1 and explorer.update_seconds > 0


def test_moving_a_slider_updates_values_and_image(explorer):
    before, image = dict(explorer.values), explorer.image.value
    explorer.controls["q.mu1"].value = 3.5
    assert explorer.values != before and explorer.image.value != image
    q = Mixture.gaussian(3.5, 1.0)
    p = Mixture([0.5, 0.5], [-2.0, 2.0], [0.6, 0.6])
    assert explorer.values["KL(q||p)"] == pytest.approx(expected(p, q, explorer.x)["KL(q||p)"], abs=1e-9)
    assert "KL(p" in explorer.readout.value


def test_equal_distributions_give_zero_and_half(explorer):
    c = explorer.controls
    c["q.kind"].value = "mixture"
    assert not c["q.mu2"].disabled
    for key, value in (("mu1", -2.0), ("sigma1", 0.6), ("mu2", 2.0), ("sigma2", 0.6), ("w1", 0.5)):
        c[f"q.{key}"].value = value
    assert max(abs(v) for v in explorer.values.values()) < 1e-9
    assert (explorer.d_star - 0.5).abs().max() < 1e-12
    c["q.kind"].value = "Gaussian"
    assert c["q.mu2"].disabled


def test_far_apart_jsd_saturates_kl_finite():
    e = DivergenceExplorer(p={"kind": "Gaussian", "mu1": -4.0, "sigma1": 0.2}, q={"kind": "Gaussian", "mu1": 4.0, "sigma1": 0.2})
    assert e.values["JSD"] == pytest.approx(math.log(2), abs=1e-9)
    assert math.isfinite(e.values["KL(p||q)"]) and e.values["KL(p||q)"] == pytest.approx(8.0**2 / (2 * 0.04), rel=1e-6)


class Tiny(Explorer):
    """The smallest explorer: one slider; raises when asked. `clock`: a FakeClock its redraws advance."""

    def __init__(self, clock=None, delays=()):
        import ipywidgets as W
        self.clock, self.delays = clock, list(delays)
        super().__init__({"a": W.FloatSlider(value=0.0, min=-4, max=4, step=0.1)}, figsize=(2, 1), dpi=20)
        self.widget = self.view()
        self.fig.add_subplot(1, 1, 1)
        self.start()

    def update(self):
        if self.clock is not None:  # this redraw "takes" the next delay, without sleeping
            self.clock.now += self.delays.pop(0) if self.delays else 0.0
        if self.controls["a"].value > 3:
            raise ValueError("a > 3 is not allowed")
        self.fig.axes[0].set_title(str(self.controls["a"].value))
        self.render()


def test_sliders_are_wide_enough_to_drag_step_by_step(explorer):
    for name, c in explorer.controls.items():
        if name.endswith("kind"):
            continue
        steps = round((c.max - c.min) / c.step)
        track = int(c.layout.width.removesuffix("px")) - LABEL_PX - READOUT_PX
        assert track >= min(PX_PER_STEP * steps, 400), f"{name}: {track} px of track for {steps} steps"


class FakeClock:
    """Stands in for widgets.base's `time`: redraws take exactly what a test says, however busy the CPU."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.mark.parametrize("delays, follows", [
    ([0.0, 0.01, 0.02], True),                         # fast redraws
    ([0.0, 0.2, 0.3], False),                          # both timed redraws slow
    ([5.0, 0.01, 0.01], True),                         # the first draw's one-off costs are not counted
    ([0.0, 0.2, 0.01], True),                          # the faster of the two timed redraws decides
    ([0.0, CONTINUOUS_BELOW_S, CONTINUOUS_BELOW_S], False),  # the threshold itself is slow
])
def test_sliders_follow_the_mouse_only_when_a_redraw_is_fast(monkeypatch, delays, follows):
    import course_lib.widgets.base as base  # Explorer times its redraws there

    clock = FakeClock()
    monkeypatch.setattr(base, "time", clock)
    e = Tiny(clock, delays)
    assert e.controls["a"].continuous_update is follows, f"redraws of {delays} s"
    assert e.update_seconds == pytest.approx(delays[-1])


def test_error_stands_above_a_figure_marked_stale():
    e = Tiny()
    children = list(e.widget.children)
    assert children.index(e.errors) < children.index(e.image), "the error must show above the figure"
    good = e.image.value
    e.controls["a"].value = 3.5  # update raises
    assert isinstance(e.error, ValueError) and e.image.layout.border == Explorer.STALE and e.image.value == good
    e.controls["a"].value = 1.0
    assert e.error is None and e.image.layout.border == Explorer.FRESH and e.image.value != good


def test_errors_are_shown_not_raised(monkeypatch):
    e = DivergenceExplorer()

    def broken():
        raise ValueError("boom")
    monkeypatch.setattr(e, "update", broken)
    e.controls["p.mu1"].value = 1.0  # must not raise
    assert isinstance(e.error, ValueError)
    monkeypatch.undo()
    e.controls["p.mu1"].value = 0.0
    assert e.error is None


def test_static_bundle_of_saved_state_shows_final_figure_and_numbers():
    import base64

    import ipywidgets as W
    import ipywidgets.embed
    import nbformat

    from course_lib.notebooks import WIDGET_STATE, WIDGET_VIEW, add_static_fallbacks, static_bundle

    e = DivergenceExplorer()
    e.controls["q.mu1"].value = 1.5
    bar = W.HBox([W.HTML("train: 100%"), W.FloatProgress(value=279, max=279), W.HTML(" 279/279 [00:03&lt;00:00]")])
    state = ipywidgets.embed.dependency_state([e.widget, bar])  # the format nbclient saves in the notebook
    bundle = static_bundle(state, e.widget.model_id)
    assert base64.b64decode(bundle["image/png"]) == e.image.value  # the figure of the final state
    assert "VBox(" not in bundle["text/plain"] and f"{e.values['JSD']:.4f}" in bundle["text/plain"]
    assert "mean 1: 1.5" in bundle["text/plain"] and "q: Gaussian" in bundle["text/plain"]
    assert static_bundle(state, bar.model_id) == {"text/plain": "train: 100%|██████████| 279/279 [00:03<00:00]"}

    stale = {"text/plain": "train:   0%|          | 0/279"}
    nb = nbformat.v4.new_notebook(metadata={"widgets": {WIDGET_STATE: {"state": state}}})
    nb.cells = [nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={**stale, WIDGET_VIEW: {"model_id": m, "version_major": 2, "version_minor": 0}})])
        for m in (bar.model_id, e.widget.model_id, "not-saved")]
    assert add_static_fallbacks(nb) == 2
    texts = [c.outputs[0].data["text/plain"] for c in nb.cells]
    assert texts[0].startswith("train: 100%|") and "image/png" in nb.cells[1].outputs[0].data
    assert texts[2] == stale["text/plain"]  # no saved state: left as it was


# -- the latent explorers, on a fixed random "generator" -----------------------------------------------------
from course_lib.latent import lerp, slerp  # noqa: E402
from course_lib.widgets import ArithmeticExplorer, InterpolationExplorer  # noqa: E402

D = 16
_W = torch.randn(D, 64, generator=torch.Generator().manual_seed(0))


def decode(z):  # (n, D) -> (n, 1, 8, 8) in [0, 1]
    return torch.sigmoid(z @ _W).reshape(-1, 1, 8, 8)


def test_interpolation_endpoints_and_paths():
    e = InterpolationExplorer(decode, D, seeds=(3, 7))
    za, zb = (torch.randn(1, D, generator=torch.Generator().manual_seed(s)) for s in (3, 7))
    assert torch.equal(e.z_a, za) and torch.equal(e.z_b, zb) and e.error is None
    assert torch.allclose(e.z_t, slerp(za, zb, 0.5))
    assert torch.allclose(e.frames[0], decode(za)) and torch.allclose(e.frames[-1], decode(zb))
    spherical = e.values["|z_t|"]
    e.controls["path"].value = "linear"
    assert torch.allclose(e.z_t, lerp(za, zb, 0.5)) and e.values["|z_t|"] < spherical  # inside the shell
    e.controls["t"].value = 1.0
    assert torch.allclose(e.z_t, zb) and e.values["|z_t| / sqrt(d)"] == pytest.approx(float(zb.norm()) / math.sqrt(D))
    assert f"{e.values['|z_t|']:.4f}" in e.readout.value


def test_interpolation_buttons_draw_new_endpoints_never_equal():
    e = InterpolationExplorer(decode, D, seeds=(0, 1))
    before = e.image.value
    e.buttons["A"].click()  # 0 -> 1 is B's seed: skipped
    assert e.controls["seed A"].value == 2 and e.image.value != before
    e.controls["seed B"].value = 99
    e.buttons["B"].click()  # wraps around to 0
    assert e.controls["seed B"].value == 0 and not torch.equal(e.z_a, e.z_b)


def test_interpolation_bad_decoder_and_arguments_explained():
    e = InterpolationExplorer(lambda z: decode(z).flatten(1), D)
    assert isinstance(e.error, ValueError) and "(n, C, H, W)" in str(e.error) and e.image.layout.border == e.STALE
    with pytest.raises(ValueError, match="path must be one of"):
        InterpolationExplorer(decode, D, path="straight")
    with pytest.raises(ValueError, match=r"seeds must lie in \[0, 99\]"):
        InterpolationExplorer(decode, D, seeds=(0, 100))


def classify3(images):  # (n, 1, 8, 8) -> (n, 3) probabilities
    return torch.softmax(images.flatten(1)[:, :3] * 10, dim=1)


def test_arithmetic_is_a_plus_amount_c_minus_b_on_the_shell():
    latents = {name: torch.randn(D, generator=torch.Generator().manual_seed(i)) for i, name in enumerate("pqrs")}
    e = ArithmeticExplorer(decode, latents, classify3, ["x", "y", "z"], start=("p", "q", "r"), radius=math.sqrt(D))
    expect = latents["p"] + (latents["r"] - latents["q"])
    assert torch.allclose(e.z[0], expect / expect.norm() * math.sqrt(D), atol=1e-6)
    assert torch.allclose(e.images[3:], decode(e.z)) and torch.allclose(e.probs, classify3(decode(e.z))[0])
    e.controls["amount"].value = 0.0  # the result is A itself, rescaled
    assert torch.allclose(e.images[3], decode((latents["p"] / latents["p"].norm() * math.sqrt(D))[None])[0], atol=1e-6)
    e.controls["A"].value, e.controls["amount"].value = "s", 1.0
    assert e.values["cos(z, C)"] == pytest.approx(float(torch.cosine_similarity(e.z, latents["r"][None]).squeeze()))
    assert e.error is None and f"{e.values['p(top class)']:.4f}" in e.readout.value


def test_arithmetic_errors_say_what_to_pass():
    latents = {"p": torch.randn(D), "q": torch.randn(D)}
    with pytest.raises(ValueError, match="not among the latents"):
        ArithmeticExplorer(decode, latents, classify3, ["x", "y", "z"], start=("p", "q", "nope"))
    with pytest.raises(ValueError, match="at least two"):
        ArithmeticExplorer(decode, {"p": torch.randn(D)}, classify3, ["x", "y", "z"])
    e = ArithmeticExplorer(decode, latents, classify3, ["x", "y"])  # 3 probabilities for 2 classes
    assert isinstance(e.error, ValueError) and "(n, 2)" in str(e.error)


# -- the VAE explorers (lecture 05), on fixed random maps --------------------------------------------------------
from course_lib.widgets import LatentExplorer, PairInterpolationExplorer  # noqa: E402

_W2 = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))


def decode2(z):  # (n, 2) -> (n, 1, 8, 8) in [0, 1]
    return torch.sigmoid(z @ _W2).reshape(-1, 1, 8, 8)


def encode16(images):  # (n, 1, 8, 8) -> (n, D)
    return images.flatten(1) @ _W.T


def test_latent_explorer_decodes_the_slider_point_and_finds_the_nearest_code():
    codes = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]])
    e = LatentExplorer(decode2, codes, torch.tensor([0, 1, 2]), ["a", "b", "c"], z=(0.5, 0.5))
    assert e.error is None and torch.allclose(e.decoded, decode2(torch.tensor([[0.5, 0.5]])))
    before = e.image.value
    e.controls["z1"].value, e.controls["z2"].value = -1.8, 0.4
    assert torch.equal(e.z, torch.tensor([[-1.8, 0.4]])) and e.nearest == 2 and e.image.value != before
    assert e.values["log p(z)"] == pytest.approx(-0.5 * (1.8 ** 2 + 0.4 ** 2) - math.log(2 * math.pi))
    assert e.values["nearest code"] == pytest.approx(math.hypot(0.2, 0.1), abs=1e-6)
    assert all(f"{v:.4f}" in e.readout.value for v in e.values.values()) and "a c" in e.readout.value


def test_latent_explorer_explains_bad_codes_and_decoders():
    with pytest.raises(ValueError, match=r"\(N, 2\) latents"):
        LatentExplorer(decode2, torch.zeros(3, 4), torch.zeros(3), ["a"])
    with pytest.raises(ValueError, match="sliders' range"):
        LatentExplorer(decode2, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), ["a"], z=(5.0, 0.0))
    e = LatentExplorer(lambda z: decode2(z).flatten(1), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), ["a"])
    assert isinstance(e.error, ValueError) and "(n, C, H, W)" in str(e.error)


def test_pair_interpolation_walks_between_the_two_encodings():
    images = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    e = PairInterpolationExplorer(encode16, decode, images, pair=(3, 7), t=0.25)
    za, zb = encode16(images[3:4]), encode16(images[7:8])
    assert e.error is None and torch.allclose(e.z_a, za) and torch.allclose(e.z_b, zb)
    assert torch.allclose(e.z_t, 0.75 * za + 0.25 * zb, atol=1e-6)
    assert torch.allclose(e.frames[0], decode(za), atol=1e-6) and torch.allclose(e.frames[-1], decode(zb), atol=1e-6)
    assert e.values["|z_A - z_B|"] == pytest.approx(float((za - zb).norm()), rel=1e-5)
    before, values = e.image.value, dict(e.values)
    e.controls["t"].value = 1.0
    assert torch.allclose(e.z_t, zb, atol=1e-6) and e.image.value != before and e.values != values
    assert all(f"{v:.4f}" in e.readout.value for v in e.values.values())


def test_pair_interpolation_button_draws_a_new_distinct_pair():
    images = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    e = PairInterpolationExplorer(encode16, decode, images, pair=(0, 1))
    for _ in range(20):
        old, picture = (e.controls["image A"].value, e.controls["image B"].value), e.image.value
        e.button.click()
        new = (e.controls["image A"].value, e.controls["image B"].value)
        assert new != old and new[0] != new[1] and e.image.value != picture and e.error is None
    with pytest.raises(ValueError, match="must index the 5 images"):
        PairInterpolationExplorer(encode16, decode, images, pair=(0, 5))


# -- the conditional-GAN explorers (lecture 04), on fixed random maps ----------------------------------------------
from course_lib.widgets import CaptionExplorer, ClassExplorer  # noqa: E402

K_EMB = 4
_TABLE = torch.randn(3, K_EMB, generator=torch.Generator().manual_seed(2))
_WE = torch.randn(K_EMB, 64, generator=torch.Generator().manual_seed(3))


def embed3(labels):  # (n,) -> (n, K_EMB)
    return _TABLE[labels]


def decode_ze(z, e):  # (n, D), (n, K_EMB) -> (n, 1, 8, 8) in [0, 1]
    return torch.sigmoid(z @ _W + 3 * e @ _WE).reshape(-1, 1, 8, 8)


def test_class_explorer_mixes_the_two_embeddings_with_the_noise_fixed():
    e = ClassExplorer(embed3, decode_ze, D, ["x", "y", "z"], classify3, start=(0, 2), t=0.0, n=4, seed=5)
    z = torch.randn(4, D, generator=torch.Generator().manual_seed(5))
    assert torch.equal(e.z, z) and torch.allclose(e.images, decode_ze(z, _TABLE[[0, 0, 0, 0]])) and e.error is None
    assert torch.allclose(e.probs, classify3(e.images).mean(0)) and e.values["p(A)"] == pytest.approx(float(e.probs[0]))
    e.controls["t"].value = 1.0  # class B, the same noise
    assert torch.allclose(e.images, decode_ze(z, _TABLE[[2, 2, 2, 2]]), atol=1e-6) and torch.equal(e.z, z)
    e.controls["t"].value = 0.5
    assert torch.allclose(e.e, 0.5 * (_TABLE[0] + _TABLE[2])[None], atol=1e-6)
    assert f"{e.values['p(B)']:.4f}" in e.readout.value


def test_class_explorer_directions_are_orthonormal_and_move_the_noise():
    e = ClassExplorer(embed3, decode_ze, D, ["x", "y", "z"], classify3, n=3, directions=3)
    assert torch.allclose(e.directions @ e.directions.T, torch.eye(3), atol=1e-5)
    before, png = e.z.clone(), e.image.value
    e.controls["direction 2"].value = 1.5
    assert torch.allclose(e.z - before, 1.5 * e.directions[1].expand(3, -1), atol=1e-5) and e.image.value != png
    e.controls["seed"].value = 99
    e.button.click()  # wraps around
    assert e.controls["seed"].value == 0


def test_class_explorer_explains_bad_arguments_and_functions():
    with pytest.raises(ValueError, match="must name two of the 3 classes"):
        ClassExplorer(embed3, decode_ze, D, ["x", "y", "z"], classify3, start=(0, 3))
    with pytest.raises(ValueError, match="directions must be between 1"):
        ClassExplorer(embed3, decode_ze, D, ["x", "y", "z"], classify3, directions=0)
    e = ClassExplorer(lambda y: _TABLE[y][:, None], decode_ze, D, ["x", "y", "z"], classify3)
    assert isinstance(e.error, ValueError) and "(n, k) embeddings" in str(e.error)
    e = ClassExplorer(embed3, lambda z, c: decode_ze(z, c).flatten(1), D, ["x", "y", "z"], classify3)
    assert isinstance(e.error, ValueError) and "(m, C, H, W)" in str(e.error)


WORDS = ["dark", "light", "cat", "dog"]


def caption_generate(text, z):  # a caption of known words -> (n, 1, 8, 8); brightness from "light"
    words = text.split()
    if not words or any(w not in WORDS for w in words):
        raise ValueError(f"unknown word(s) in {text!r}. Captions are made of these words: {', '.join(WORDS)}.")
    return torch.sigmoid(z @ _W + (2.0 if "light" in words else -2.0)).reshape(-1, 1, 8, 8)


def test_caption_explorer_draws_for_the_typed_caption_and_shows_errors_in_place():
    score = lambda images, text: {"bright": float((images.mean((1, 2, 3)) > 0.5).double().mean())}  # noqa: E731
    e = CaptionExplorer(caption_generate, D, "dark cat", WORDS, score=score, n=5, seed=2)
    z = torch.randn(5, D, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(e.images, caption_generate("dark cat", z)) and e.error is None
    dark = e.values["mean intensity"]
    e.controls["caption"].value = "light cat"
    assert e.values["mean intensity"] > dark and e.values["bright"] > 0.5 and f"{e.values['bright']:.4f}" in e.readout.value
    png = e.image.value
    e.controls["caption"].value = "light cow"  # an unknown word: the error is shown, the figure kept and marked stale
    assert isinstance(e.error, ValueError) and "cat, dog" in str(e.error)
    assert e.image.value == png and e.image.layout.border == e.STALE
    e.controls["caption"].value = ""
    assert isinstance(e.error, ValueError)
    e.controls["caption"].value = "dog light"
    assert e.error is None and e.image.layout.border == e.FRESH
    e.button.click()
    assert e.controls["seed"].value == 3
    e = CaptionExplorer(caption_generate, D, "dark cat", WORDS, examples=["dark cat", "light dog"], n=3)
    e.controls["example"].value = "light dog"  # the menu types its choice into the box
    assert e.controls["caption"].value == "light dog" and torch.allclose(e.images, caption_generate("light dog", e.z))
    e.controls["caption"].value = "dark dog"  # typed, not an example: the menu names nothing
    assert e.controls["example"].value is None and e.error is None
    e.controls["caption"].value = "dark cat"
    assert e.controls["example"].value == "dark cat"
    with pytest.raises(ValueError, match=r"seed must lie in \[0, 99\]"):
        CaptionExplorer(caption_generate, D, "cat", WORDS, seed=100)


# -- the completion explorer (lecture 06), on a fake sampler ------------------------------------------------------
from course_lib.widgets import CompletionExplorer  # noqa: E402


def fake_complete(x, visible_rows, temperature, generator):  # keeps the visible rows, fills the rest with noise ** (1/T)
    out = x.clone()
    out[..., visible_rows:, :] = torch.rand(out[..., visible_rows:, :].shape, generator=generator) ** (1 / temperature)
    return out


def fake_bits(x):  # (m, C, H, W) -> (m, H, W): a "model" that finds bright pixels costly
    return 1 + 7 * x.mean(1)


def test_completion_explorer_keeps_the_visible_rows_and_draws_the_rest():
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    e = CompletionExplorer(fake_complete, images, bits_fn=fake_bits, index=2, visible_rows=5, n=3, seed=7)
    want = fake_complete(images[2:3].expand(3, -1, -1, -1), 5, 1.0, torch.Generator().manual_seed(7))
    assert e.error is None and torch.equal(e.original, images[2:3]) and torch.allclose(e.completions, want)
    assert torch.equal(e.completions[..., :5, :], images[2:3, :, :5].expand(3, -1, -1, -1))
    assert e.values["|completion - original| (hidden rows)"] == pytest.approx(float((want - images[2:3])[..., 5:, :].abs().mean()))
    assert e.values["spread between completions"] == pytest.approx(float(want[..., 5:, :].std(0).mean()))
    assert e.values["bits/dim, visible rows"] == pytest.approx(float(fake_bits(images[2:3])[0, :5].mean()))
    assert e.values["bits/dim, completed rows"] == pytest.approx(float(fake_bits(want)[:, 5:].mean()))
    assert all(f"{v:.4f}" in e.readout.value for v in e.values.values())
    for name, value in (("image", 4), ("visible rows", 2), ("temperature", 0.5)):  # every control changes both
        before, png = dict(e.values), e.image.value
        e.controls[name].value = value
        assert e.error is None and e.values != before and e.image.value != png, name
    assert e.values["temperature"] == 0.5 and torch.equal(e.completions[..., :2, :], images[4:5, :, :2].expand(3, -1, -1, -1))
    before, png, seed = dict(e.values), e.image.value, e.seed
    e.button.click()  # new samples: the next seed, the same image and rows
    assert e.seed == seed + 1 and e.values != before and e.image.value != png
    e.controls["visible rows"].value = 0  # nothing visible: unconditional samples, no visible-rows figure
    assert e.error is None and "bits/dim, visible rows" not in e.values


def test_completion_explorer_explains_bad_arguments_and_functions():
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*unsqueeze"):
        CompletionExplorer(fake_complete, images[:, 0])
    with pytest.raises(ValueError, match="must pick one of the 3 images"):
        CompletionExplorer(fake_complete, images, index=3)
    with pytest.raises(ValueError, match=r"visible_rows must be between 0 .* and 7"):
        CompletionExplorer(fake_complete, images, visible_rows=8)
    with pytest.raises(ValueError, match=r"temperature must lie in \(0, 2.0\]"):
        CompletionExplorer(fake_complete, images, temperature=0.0)
    with pytest.raises(ValueError, match="n .* must be >= 1"):
        CompletionExplorer(fake_complete, images, n=0)
    e = CompletionExplorer(lambda x, r, t, g: fake_complete(x, r, t, g)[:, 0], images)
    assert isinstance(e.error, ValueError) and "must return completions of x's shape" in str(e.error)
    e = CompletionExplorer(lambda x, r, t, g: torch.rand(x.shape, generator=g), images)
    assert isinstance(e.error, ValueError) and "changed the 4 visible rows" in str(e.error)
    e = CompletionExplorer(fake_complete, images, bits_fn=lambda x: fake_bits(x).flatten(1))
    assert isinstance(e.error, ValueError) and "bits per pixel (m, H, W)" in str(e.error)
    e.controls["image"].value = 1  # the error stays shown, the figure marked stale, the widget usable
    assert e.image.layout.border == e.STALE


# -- the code-grid explorer (lecture 07), on a tiny untrained VQ-VAE and prior --------------------------------------
import ipywidgets as W  # noqa: E402

from course_lib.models.pixelcnn import PixelCNN  # noqa: E402
from course_lib.models.vqvae import VQVAE, VQVAEConfig  # noqa: E402
from course_lib.widgets import CodeGridExplorer  # noqa: E402


@pytest.fixture(scope="module")
def vq():
    """s = 4 (16x16 images), K = 8 codes, a small untrained prior; its images and their codes."""
    model = VQVAE(VQVAEConfig(image_size=16, width=8, code_dim=4, codebook_size=8), seed=0)
    model.prior = PixelCNN(model.prior_config(channels=8, n_layers=2), seed=0)
    model.eval()
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(6))
    return model, images, model.to_codes(images)


def grid_explorer(vq, **changes):
    model, images, codes = vq
    kwargs = dict(conditional=model.code_conditional, complete=lambda c, rows, g: model.complete_codes(c, rows, g),
                  joint_bits=lambda c: -model.prior.log_prob_levels(c[:, None]) / (16 * math.log(2)), images=images)
    return CodeGridExplorer(model.decode, codes, 8, **{**kwargs, **changes})


def buttons_in_page_order(widget):
    """Every Button under `widget`, depth first: the order a browser shows (and the browser test clicks) them."""
    if isinstance(widget, W.Button):
        return [widget]
    return [b for child in getattr(widget, "children", ()) for b in buttons_in_page_order(child)]


def test_code_grid_explorer_selects_a_cell_and_the_code_slider_edits_only_that_cell(vq):
    model, images, codes = vq
    e = grid_explorer(vq, index=1)
    assert e.error is None and e.selected == (2, 2) and torch.equal(e.grid, codes[1]) and torch.equal(e.base, codes[1])
    assert e.controls["code"].value == int(codes[1, 2, 2]) and e.values["edited cells"] == 0
    assert [b.description for row in e.cells for b in row] == [str(k) for k in codes[1].flatten().tolist()]
    assert torch.allclose(e.decoded, model.decode(codes[1:2]).detach())
    before, png = dict(e.values), e.image.value
    e.cells[0][3].click()  # select: the slider follows, nothing is edited
    assert e.selected == (0, 3) and e.controls["code"].value == int(codes[1, 0, 3]) and torch.equal(e.grid, codes[1])
    assert e.values["row"] == 0 and e.values["column"] == 3 and e.values != before and e.image.value != png
    new = (int(codes[1, 0, 3]) + 3) % 8
    e.controls["code"].value = new
    assert e.error is None and (e.grid != codes[1]).nonzero().tolist() == [[0, 3]] and int(e.grid[0, 3]) == new
    assert e.values["edited cells"] == 1 and e.values["code"] == new and e.cells[0][3].description == str(new)
    edited = codes[1:2].clone()
    edited[0, 0, 3] = new
    assert torch.allclose(e.decoded, model.decode(edited).detach())
    assert e.values["mean |edited - unedited| (pixels)"] == pytest.approx(
        float((model.decode(edited) - model.decode(codes[1:2])).abs().mean().detach()), rel=1e-5)
    log_p = model.code_conditional(edited, 0, 3)[0]
    assert e.values["log2 p(code | rest)"] == pytest.approx(float(log_p[new]) / math.log(2), rel=1e-5)
    assert e.values["bits per code"] == pytest.approx(
        float(-model.prior.log_prob_levels(edited[:, None]).detach()) / (16 * math.log(2)), rel=1e-5)
    assert all(f"{v:.4f}" in e.readout.value for v in e.values.values())
    e.cells[3][0].click()  # selecting another cell keeps the edit
    assert int(e.grid[0, 3]) == new and e.controls["code"].value == int(codes[1, 3, 0]) and e.values["edited cells"] == 1
    e.controls["image"].value = 4  # another starting grid: the edits are dropped, the slider follows
    assert torch.equal(e.grid, codes[4]) and e.controls["code"].value == int(codes[4, 3, 0])
    assert e.values["edited cells"] == 0 and e.error is None


def test_code_grid_explorer_resamples_a_cell_and_the_bottom_half_and_resets(vq):
    model, images, codes = vq
    e = grid_explorer(vq)
    for _ in range(6):  # always another code, at the selected cell only
        old = e.grid.clone()
        e.buttons["resample cell"].click()
        assert e.error is None and (e.grid != old).nonzero().tolist() == [[2, 2]]
        assert e.controls["code"].value == int(e.grid[2, 2])
    e.cells[3][1].click()
    old, seed = e.grid.clone(), e.seed
    e.buttons["resample bottom half"].click()  # s = 4: the top 2 rows kept, the next seed
    assert e.error is None and e.visible_rows == 2 and torch.equal(e.grid[:2], old[:2]) and not torch.equal(e.grid, old)
    want = model.complete_codes(old[None], 2, torch.Generator().manual_seed(seed + 1))[0]
    assert e.seed == seed + 1 and torch.equal(e.grid, want), "the next seed, given the edited top rows"
    assert e.controls["code"].value == int(e.grid[3, 1])
    e.buttons["reset"].click()
    assert torch.equal(e.grid, codes[0]) and e.values["edited cells"] == 0 and e.selected == (3, 1)
    assert e.values["mean |edited - unedited| (pixels)"] == 0


def test_every_button_in_page_order_changes_the_picture_and_the_numbers(vq):
    e = grid_explorer(vq)
    e.controls["image"].value = 2  # as the browser test does before the buttons: sliders first
    e.controls["code"].value = (e.controls["code"].value + 1) % 8
    e.controls["image"].value = 3
    buttons = buttons_in_page_order(e.widget)
    assert len(buttons) == 3 + 16 and buttons[:3] == list(e.buttons.values())
    for button in buttons:
        before, png = dict(e.values), e.image.value
        button.click()
        assert e.error is None and e.values != before and e.image.value != png, button.description


def test_code_grid_explorer_without_the_prior_disables_its_buttons_and_says_why(vq):
    model, images, codes = vq
    e = CodeGridExplorer(model.decode, codes, 8)
    assert e.error is None and set(e.values) == {"row", "column", "code", "edited cells",
                                                 "mean |edited - unedited| (pixels)"}
    assert e.buttons["resample cell"].disabled and "conditional=" in e.buttons["resample cell"].tooltip
    assert e.buttons["resample bottom half"].disabled and "complete=" in e.buttons["resample bottom half"].tooltip
    assert not e.buttons["reset"].disabled
    e.cells[0][0].click()
    e.controls["code"].value = (int(codes[0, 0, 0]) + 1) % 8
    assert e.values["edited cells"] == 1 and e.error is None


def test_code_grid_explorer_explains_bad_arguments_and_shows_errors_of_its_functions(vq):
    model, images, codes = vq
    with pytest.raises(ValueError, match=r"\(N, s, s\).*to_codes"):
        CodeGridExplorer(model.decode, codes[0], 8)
    with pytest.raises(ValueError, match=r"integer codes.*\.long\(\)"):
        CodeGridExplorer(model.decode, codes.float(), 8)
    with pytest.raises(ValueError, match=r"0\.\.3 \(K = 4\), got values in \[\d, 7\].*codebook_size"):
        CodeGridExplorer(model.decode, torch.cat([codes.clamp(max=3), torch.full((1, 4, 4), 7)]), 4)
    with pytest.raises(ValueError, match="K is the number of codes"):
        CodeGridExplorer(model.decode, codes, 1)
    with pytest.raises(ValueError, match="the 5 originals"):
        CodeGridExplorer(model.decode, codes, 8, images=images[:3])
    with pytest.raises(ValueError, match=r"pick one of the 5 grids \(0 to 4\)"):
        CodeGridExplorer(model.decode, codes, 8, index=5)

    def broken(c):
        raise RuntimeError("decoder on fire")
    e = CodeGridExplorer(broken, codes, 8)  # shown, not raised; the widget stays usable
    assert isinstance(e.error, RuntimeError) and e.image.layout.border == e.STALE
    e.cells[0][0].click()
    assert isinstance(e.error, RuntimeError)
    e = CodeGridExplorer(lambda c: model.decode(c)[:, 0], codes, 8)
    assert isinstance(e.error, ValueError) and "images (n, C, H, W)" in str(e.error)
    e = grid_explorer(vq, conditional=lambda c, r, k: torch.zeros(1, 8))
    assert isinstance(e.error, ValueError) and "log_softmax" in str(e.error)
    e = grid_explorer(vq, complete=lambda c, rows, g: torch.zeros_like(c))
    assert e.error is None
    e.buttons["resample bottom half"].click()
    assert isinstance(e.error, ValueError) and "changed the top 2 rows" in str(e.error)
    e.buttons["reset"].click()  # the next update works again
    assert e.error is None and e.image.layout.border == e.FRESH
