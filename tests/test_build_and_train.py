"""Build, train and judge ([18] item 1): lab 03's build_gan check trains the student's whole GAN and judges its
samples, and the written questions reach the instructor (collected by the grader, never scored)."""
import json

import nbformat
import pytest
import torch

from course_lib import check
from course_lib.harness.lab03 import reference_discriminator, reference_generator, train_and_sample
from course_lib.models.gan import GAN, GANConfig, hinge_discriminator_loss, hinge_generator_loss
from course_lib.notebooks import ANSWER_PLACEHOLDER, REPO_ROOT, make_lab


def builder(**config):
    def build_gan(width, seed):
        return GAN(reference_generator(64, width, 28), reference_discriminator(width, 28),
                   GANConfig(z_dim=64, loss="hinge", **config), seed=seed,
                   d_loss=hinge_discriminator_loss, g_loss=hinge_generator_loss)
    return build_gan


@pytest.mark.slow
def test_a_right_build_trains_and_passes(real_data, capsys):
    check("lab03.build_gan", train_and_sample(builder()))
    assert "✓ lab03.build_gan" in capsys.readouterr().out


@pytest.mark.slow
def test_a_build_that_cannot_learn_fails_with_its_fds(real_data):
    with pytest.raises(AssertionError, match=r"it does not train: FD \d+\.\d untrained -> \d+\.\d after training, "
                                             r"expected below 0.8 x the untrained FD"):
        check("lab03.build_gan", train_and_sample(builder(lr_g=0.0, lr_d=0.0)))


def test_a_build_that_returns_something_else_is_named():
    with pytest.raises(TypeError, match="build_gan must return the course's GAN process"):
        check("lab03.build_gan", train_and_sample(lambda width, seed: torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("name", ["03_dcgan", "05_vae", "06_pixelcnn"])
def test_the_lab_shows_a_placeholder_where_the_solution_has_a_model_answer(name):
    sol = nbformat.read(REPO_ROOT / "solutions" / f"{name}.ipynb", as_version=4)
    answers = [c for c in sol.cells if "answer" in c.metadata.get("course", {})]
    questions = [c.metadata["course"]["question"] for c in sol.cells if "question" in c.metadata.get("course", {})]
    assert [c.metadata["course"]["answer"] for c in answers] == questions
    assert len(answers) == 2 and all(len(c.source) > 200 for c in answers)
    lab = make_lab(sol)
    shown = [c.source for c in lab.cells if "answer" in c.metadata.get("course", {})]
    assert shown == [ANSWER_PLACEHOLDER] * 2


def test_the_grader_collects_written_answers_for_the_instructor(tmp_path):
    from course_lib.grading.judge import Grade, Outcome, written_answers
    from course_lib.grading.reference import load_reference
    from course_lib.grading.report import write_reports

    ref = load_reference(REPO_ROOT / "solutions" / "03_dcgan.ipynb")
    assert ref.questions == ("lab03.q_hinge", "lab03.q_zoo")
    nb = make_lab(nbformat.read(REPO_ROOT / "solutions" / "03_dcgan.ipynb", as_version=4))
    cell = next(c for c in nb.cells if c.metadata.get("course", {}).get("answer") == "lab03.q_hinge")
    cell.source = "At 2 every score is 0."
    got = written_answers(nb, ref.questions)
    assert got == {"lab03.q_hinge": "At 2 every score is 0.", "lab03.q_zoo": ""}
    grade = Grade("ada", "ada.ipynb", {ex.id: Outcome(0.0, ex.points) for ex in ref.exercises}, 1.0, answers=got)
    csv_path, json_path = write_reports(ref, [grade], tmp_path / "grades", 1.0)
    assert json.loads(json_path.read_text())["submissions"][0]["answers"] == got
    assert csv_path.read_text().splitlines()[1].endswith(",1 of 2")
    md = (tmp_path / "grades.answers.md").read_text()
    assert "## lab03.q_hinge" in md and "At 2 every score is 0." in md and "*(no answer)*" in md


def test_review_flags_data_loaded_in_an_exercise_cell():
    from course_lib.grading.reference import Cell
    from course_lib.grading.review import review

    forged = Cell("def build_gan(width, seed):\n    real = load_data('fashion-mnist', 'train').images\n"
                  "    return real", "exercise", "lab03.build_gan")
    assert "loads data in an exercise cell" in review([forged])
    assert review([Cell("data = course.load_data('fashion-mnist', 'train')", "context")]) == ""


# -- lab 05: the student's VAE ------------------------------------------------------------------------------------
def vae_builder(lr=3e-3):
    from course_lib.harness.lab05 import elbo_loss, kl_to_prior, reparameterize
    from course_lib.models.vae import VAE, VAEConfig

    class Loss(VAE):  # the library's networks, the loss from the lab's pieces (their references)
        def loss(self, batch):
            x = self.prepare(batch)
            mu, logvar = self.encode(x)
            z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=self.noise_stream()))
            return {"loss": elbo_loss(self.decoder(z), x, mu, logvar), "kl": kl_to_prior(mu, logvar).mean().detach()}

    def build_vae(z_dim, width, seed):
        return Loss(VAEConfig(z_dim=z_dim, width=width, likelihood="bernoulli", lr=lr), seed=seed)
    return build_vae


@pytest.mark.slow
def test_lab05_a_right_build_trains_and_passes(real_data, capsys):
    from course_lib.harness.lab05 import train_and_sample as vae_run

    check("lab05.build_vae", vae_run(vae_builder()))
    assert "✓ lab05.build_vae" in capsys.readouterr().out


@pytest.mark.slow
def test_lab05_a_build_that_cannot_learn_fails_on_its_loss(real_data):
    from course_lib.harness.lab05 import train_and_sample as vae_run

    with pytest.raises(AssertionError, match=r"the loss does not fall: \d+\.\d at the start, \d+\.\d at the end"):
        check("lab05.build_vae", vae_run(vae_builder(lr=0.0)))


def test_lab05_samples_that_do_not_improve_fail_with_their_fds(real_data):
    from course_lib.labs.lab05 import build_vae_cases, train_compare

    args = build_vae_cases()[0]
    noise = torch.rand(args[5], 1, 28, 28, generator=torch.Generator().manual_seed(0))
    falling = torch.linspace(500, 250, 15, dtype=torch.float64)  # a loss that falls, samples that stay noise
    with pytest.raises(AssertionError, match=r"its samples do not improve: FD \d+\.\d untrained -> \d+\.\d after"):
        train_compare({"before": noise, "after": noise.clone(), "loss": falling}, None, args)


def test_lab05_a_build_that_returns_something_else_is_named():
    from course_lib.harness.lab05 import train_and_sample as vae_run

    with pytest.raises(TypeError, match="build_vae must return the course's VAE process"):
        check("lab05.build_vae", vae_run(lambda z_dim, width, seed: torch.nn.Linear(2, 2)))


# -- lab 06: the student's PixelCNN --------------------------------------------------------------------------------
class Stack(torch.nn.Module):
    def __init__(self, channels, n_layers, levels, first="A"):
        super().__init__()
        from course_lib.models.pixelcnn import MaskedConv2d

        self.convs = torch.nn.ModuleList([MaskedConv2d(1, channels, 7, first)] +
                                         [MaskedConv2d(channels, channels, 3, "B") for _ in range(n_layers - 1)])
        self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(channels, levels, 1))

    def forward(self, x, labels=None):
        h = x
        for n, conv in enumerate(self.convs):
            h = conv(h if n == 0 else torch.relu(h))
        return self.head(h)


def pixelcnn_builder(first="A", lr_scale=1.0):
    from course_lib.models.pixelcnn import PixelCNN, PixelCNNConfig

    def build_pixelcnn(channels, n_layers, levels, lr, seed):
        config = PixelCNNConfig(image_size=28, variant="plain", levels=levels, channels=channels, n_layers=n_layers,
                                lr=lr * lr_scale)
        return PixelCNN(config, seed=seed, net=Stack(channels, n_layers, levels, first))
    return build_pixelcnn


@pytest.mark.slow
def test_lab06_a_right_build_trains_and_passes(real_data, capsys):
    from course_lib.harness.lab06 import train_and_score

    check("lab06.build_pixelcnn", train_and_score(pixelcnn_builder()))
    assert "✓ lab06.build_pixelcnn" in capsys.readouterr().out


@pytest.mark.slow
def test_lab06_a_type_b_first_layer_is_caught_as_not_causal(real_data):
    from course_lib.harness.lab06 import train_and_score

    with pytest.raises(AssertionError, match=r"not causal: the prediction for pixel \(\d+, \d+\) changes .* It looks "
                                             r"like a type-B \(or unmasked\) first layer"):
        check("lab06.build_pixelcnn", train_and_score(pixelcnn_builder(first="B")))


@pytest.mark.slow
def test_lab06_a_build_that_cannot_learn_fails_with_its_bits(real_data):
    from course_lib.harness.lab06 import train_and_score

    with pytest.raises(AssertionError, match=r"it does not train: \d\.\d+ bits/dim untrained -> \d\.\d+ after"):
        check("lab06.build_pixelcnn", train_and_score(pixelcnn_builder(lr_scale=0.0)))


def test_lab06_predictions_that_are_not_distributions_fail(real_data):
    from course_lib.labs.lab06 import build_pixelcnn_cases, train_compare

    args = build_pixelcnn_cases()[0]
    n, L = len(args[6]), args[2]
    zeros = torch.zeros(n, 28, 28)  # log p = 0 at every pixel: 0 bits/dim, which no distribution over L levels gives
    with pytest.raises(AssertionError, match="not a distribution over the 16 levels"):
        train_compare({"before": zeros - 2.77, "after": zeros, "at": torch.zeros(n, L), "at_probe": torch.zeros(n, L)},
                      None, args)


def test_lab06_a_build_that_returns_something_else_is_named(real_data):
    from course_lib.harness.lab06 import train_and_score

    with pytest.raises(TypeError, match="build_pixelcnn must return the course's PixelCNN process"):
        check("lab06.build_pixelcnn", train_and_score(lambda *args: torch.nn.Linear(2, 2)))


# -- lab 07: the student's VQ-VAE ----------------------------------------------------------------------------------
def vqvae_builder(mistake=None, lr=2e-3):
    """The library's networks, the quantiser and the loss from the lab's pieces (their references); `mistake` makes
    one of the classic wrong builds."""
    from course_lib.harness.lab07 import nearest_code, vq_losses
    from course_lib.models.vqvae import VQVAE, VQVAEConfig, perplexity, straight_through

    class Yours(VQVAE):
        def quantize(self, z_e):
            b, d, s, _ = z_e.shape
            codes = nearest_code(z_e.permute(0, 2, 3, 1).reshape(-1, d), self.codebook.weight).view(b, s, s)
            return torch.zeros_like(codes) if mistake == "one_code" else codes

        def loss(self, batch):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            z_e = self.encode(x)
            codes = self.quantize(z_e)
            z_q = self.codebook.lookup(codes)
            x_hat = torch.sigmoid(self.decoder(z_q if mistake == "no_straight_through" else straight_through(z_e, z_q)))
            reconstruction = (x_hat - x).pow(2).mean()
            codebook, commitment = vq_losses(z_e, z_q, self.config.beta)
            if mistake == "no_codebook_term":
                codebook = codebook.detach()
            return {"loss": reconstruction + codebook + commitment, "reconstruction": reconstruction.detach(),
                    "perplexity": perplexity(codes, self.config.codebook_size)}

    def build_vqvae(width, K, D, beta, seed):
        return Yours(VQVAEConfig(width=width, codebook_size=K, code_dim=D, beta=beta, lr=lr), seed=seed)
    return build_vqvae


@pytest.mark.slow
def test_lab07_a_right_build_trains_and_passes(real_data, capsys):
    from course_lib.harness.lab07 import train_and_reconstruct

    check("lab07.build_vqvae", train_and_reconstruct(vqvae_builder()))
    assert "✓ lab07.build_vqvae" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("mistake, words", [
    ("no_straight_through", r"with beta = 0 no gradient reaches the encoder.* It looks like no straight-through"),
    ("no_codebook_term", r"no gradient reaches the codebook, so the codes never move.* codebook term is missing"),
    ("one_code", r"the codes have collapsed: the 128 test images use 1 of the 32 codes, perplexity 1.00"),
])
def test_lab07_each_wrong_build_fails_with_the_mistake_it_looks_like(real_data, mistake, words):
    from course_lib.harness.lab07 import train_and_reconstruct

    with pytest.raises(AssertionError, match=words):
        check("lab07.build_vqvae", train_and_reconstruct(vqvae_builder(mistake)))


@pytest.mark.slow
def test_lab07_a_build_that_cannot_learn_fails_on_its_loss(real_data):
    from course_lib.harness.lab07 import train_and_reconstruct

    with pytest.raises(AssertionError, match=r"the loss does not fall: \d\.\d+ at the start, \d\.\d+ at the end .* "
                                             r"It stays where it began"):
        check("lab07.build_vqvae", train_and_reconstruct(vqvae_builder(lr=1e-12)))


def test_lab07_forged_returns_are_refused(real_data):
    """What a kernel could hand back without a model that learns: the images themselves, reconstructions that are no
    function of the codes, and reconstructions that stay as bad as the untrained ones."""
    from course_lib.labs.lab07 import build_vqvae_cases, train_compare

    args = build_vqvae_cases()[0]
    images, perm = args[6], args[7]
    n = len(images)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, args[1], (n, 7, 7), generator=g)
    honest = {"codes": codes, "grads": torch.tensor([1e-3, 0.05, 0.07], dtype=torch.float64),
              "loss": torch.linspace(0.15, 0.03, 15, dtype=torch.float64), "before": torch.full_like(images, 0.5)}
    with pytest.raises(AssertionError, match=r"the reconstructions are the images themselves"):
        train_compare({**honest, "after": images.clone(), "permuted": images[perm].clone()}, None, args)
    noisy = (images + 0.01 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    with pytest.raises(AssertionError, match=r"decoding the same codes in another order gives other images"):
        train_compare({**honest, "after": noisy, "permuted": noisy.clone()}, None, args)
    grey = torch.full_like(images, 0.45)
    with pytest.raises(AssertionError, match=r"its reconstructions do not improve: test MSE \d\.\d+ untrained"):
        train_compare({**honest, "after": grey, "permuted": grey[perm]}, None, args)


def test_lab07_a_build_that_returns_something_else_is_named(real_data):
    from course_lib.harness.lab07 import train_and_reconstruct

    with pytest.raises(TypeError, match="build_vqvae must return the course's VQ-VAE process"):
        check("lab07.build_vqvae", train_and_reconstruct(lambda *args: torch.nn.Linear(2, 2)))
