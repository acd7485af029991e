"""Build, train and judge ([18] item 1), lab 04: build_cgan's check trains the student's whole conditional GAN and
judges its samples (FD and class accuracy, computed by the grader), and the written questions reach the instructor."""
import nbformat
import pytest
import torch
from torch import nn

from course_lib import check
from course_lib.harness import builds_on
from course_lib.harness.lab04 import reference_condition_input, train_and_sample
from course_lib.models.cgan import CGAN, CGANConfig, concat_noise, matching_aware_d_loss, projection_logits
from course_lib.models.dcgan import DCGANConfig, Discriminator, Generator
from course_lib.notebooks import ANSWER_PLACEHOLDER, REPO_ROOT, make_lab


class LabelG(nn.Module):
    """What the solution's generator does: a DCGAN body fed [z, e(y)]; `ignore=True` feeds every sample class 0."""

    def __init__(self, width: int, ignore: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 32)
        self.body = Generator(DCGANConfig(z_dim=64 + 32, width=width, image_size=28))
        self.ignore = ignore

    def forward(self, z, labels):
        labels = torch.zeros_like(labels) if self.ignore else labels
        return self.body(concat_noise(z, self.embed(labels)))  # (B, 96) -> (B, 1, 28, 28)


class ProjectionD(nn.Module):
    """What the solution's discriminator does: DCGAN's body phi, its last conv psi, and the projection."""

    def __init__(self, width: int) -> None:
        super().__init__()
        body = Discriminator(DCGANConfig(width=width, image_size=28)).net
        self.phi, self.psi = body[:-1], body[-1]  # (B, 2w, 7, 7); (B, 1, 1, 1)
        self.embed = nn.Embedding(10, 2 * width * 7 * 7)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x, labels):
        h = self.phi(x)
        return projection_logits(self.psi(h).flatten(1)[:, 0], h.flatten(1), self.embed(labels))


def builder(ignore=False, **config):
    def build_cgan(width, seed):
        return CGAN(CGANConfig(z_dim=64, **config), seed=seed, generator=LabelG(width, ignore),
                    discriminator=ProjectionD(width), ma_loss=matching_aware_d_loss)
    return build_cgan


@pytest.mark.slow
def test_a_right_build_trains_and_passes(real_data, capsys):
    check("lab04.build_cgan", train_and_sample(builder()))
    assert "✓ lab04.build_cgan: passes" in capsys.readouterr().out


@pytest.mark.slow
def test_a_build_that_cannot_learn_fails_with_its_fds(real_data):
    with pytest.raises(AssertionError, match=r"it does not train: FD \d+\.\d untrained -> \d+\.\d after training, "
                                             r"expected below 0.6 x the untrained FD; class accuracy"):
        check("lab04.build_cgan", train_and_sample(builder(lr_g=0.0, lr_d=0.0)))


@pytest.mark.slow
def test_a_generator_that_ignores_its_labels_fails_with_its_class_accuracy(real_data):
    with pytest.raises(AssertionError, match=r"its samples do not follow their labels: class accuracy \d\.\d\d -> "
                                             r"0\.[01]\d \(chance 0.1\), expected above 0.4, though it trains"):
        check("lab04.build_cgan", train_and_sample(builder(ignore=True)))


def test_a_build_that_returns_something_else_is_named():
    with pytest.raises(TypeError, match="build_cgan must return the course's conditional GAN process"):
        check("lab04.build_cgan", train_and_sample(lambda width, seed: nn.Linear(2, 2)))


def test_build_cgan_builds_on_the_references_of_the_three_pieces():
    got = {name: (other, ref()) for name, other, ref in builds_on("lab04.build_cgan")}
    assert got["projection_logits"] == ("lab04.projection_logits", projection_logits)
    assert got["matching_aware_d_loss"] == ("lab04.matching_aware_d_loss", matching_aware_d_loss)
    other, condition_input = got["condition_input"]
    assert other == "lab04.condition_input" and condition_input is reference_condition_input
    z, labels, table = torch.randn(3, 5), torch.tensor([2, 0, 2]), nn.Embedding(4, 6)
    assert torch.equal(condition_input(z, labels, table), torch.cat([z, table(labels)], 1))  # (3, 5 + 6)


def test_the_lab_shows_a_placeholder_where_the_solution_has_a_model_answer():
    sol = nbformat.read(REPO_ROOT / "solutions" / "04_conditional_gan.ipynb", as_version=4)
    answers = [c for c in sol.cells if "answer" in c.metadata.get("course", {})]
    assert len(answers) == 2 and all(len(c.source) > 200 for c in answers)
    lab = make_lab(sol)
    shown = [c.source for c in lab.cells if "answer" in c.metadata.get("course", {})]
    assert shown == [ANSWER_PLACEHOLDER] * 2
    stub = next(c.source for c in lab.cells if c.metadata.get("course", {}).get("exercise") == "lab04.build_cgan")
    assert "NotImplementedError" in stub and "ma_loss=matching_aware_d_loss" not in stub


# -- the judge alone, on made-up outputs (no training) ----------------------------------------------------------------
def judged(after, before=None, n=256, seed=7, **changes):
    """train_compare on a made-up kernel output: `after` as the trained samples, noise as the untrained ones."""
    from course_lib.labs.lab04 import TRAIN_STEPS, TRAIN_WIDTH, train_compare

    before = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) if before is None else before
    got = {"before": before, "after": after, "labels": torch.arange(n) % 10,
           "d_loss": torch.full((15,), 1.2, dtype=torch.float64), "g_loss": torch.full((15,), 0.8, dtype=torch.float64),
           **changes}
    train_compare(got, None, (TRAIN_WIDTH, seed, TRAIN_STEPS, 8, n))


def test_the_judge_passes_real_test_images_of_the_asked_classes_and_names_copies_of_training_images(real_data):
    from course_lib.data import load_data
    from course_lib.harness.lab04 import training_pairs

    test = load_data("fashion-mnist", "test")
    wanted = torch.arange(256) % 10  # (256,): one test image of each asked class, in turn
    rows = torch.stack([torch.nonzero(test.labels == k)[i // 10, 0] for i, k in enumerate(wanted.tolist())])
    judged(test.images[rows])
    with pytest.raises(AssertionError, match=r"\d+% of the samples are copies of training images"):
        judged(training_pairs(7).images[:256])


def test_the_judge_names_diverged_losses_and_changed_labels():
    x = torch.rand(256, 1, 28, 28)
    with pytest.raises(AssertionError, match="the training losses diverged"):
        judged(x, d_loss=torch.tensor([1.0, float("nan")], dtype=torch.float64))
    with pytest.raises(AssertionError, match="were not drawn for the labels 0, 1, ..., 9"):
        judged(x, labels=torch.zeros(256, dtype=torch.long))
    with pytest.raises(AssertionError, match="expected what train_and_sample returns"):
        judged(x, g_loss=[0.5])
