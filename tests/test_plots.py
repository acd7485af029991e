import math

import matplotlib
import pytest
import torch

from course_lib.plots import LivePlot, image_grid, plot_history, show_images


@pytest.fixture(autouse=True)
def close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_grid_shape_with_padding():
    grid = image_grid(torch.rand(6, 1, 8, 10), nrow=3, padding=2)
    assert grid.shape == (3, 2 + 2 * (8 + 2), 2 + 3 * (10 + 2))  # 2 rows x 3 columns, 3 channels


def test_grid_default_is_square_ish():
    assert image_grid(torch.rand(9, 1, 4, 4), padding=0).shape == (3, 12, 12)
    assert image_grid(torch.rand(10, 3, 4, 4), padding=0).shape == (3, 12, 16)  # 4 per row, 3 rows


def test_grid_places_each_image_and_pads_white():
    images = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 0.25, 0.5, 0.75)])
    grid = image_grid(images, nrow=2, padding=1)
    assert grid.shape == (3, 7, 7)
    for i, v in enumerate((0.0, 0.25, 0.5, 0.75)):
        r, c = divmod(i, 2)
        tile = grid[:, 1 + 3 * r:3 + 3 * r, 1 + 3 * c:3 + 3 * c]
        assert torch.all(tile == v), (i, tile)
    assert torch.all(grid[:, 0, :] == 1.0) and torch.all(grid[:, :, 0] == 1.0)  # padding is white


def test_grid_value_range_maps_and_clamps():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 1, 2, 2)
    grid = image_grid(x, value_range=(-1, 1), padding=0)
    torch.testing.assert_close(grid[0], torch.tensor([[0.0, 0.5], [1.0, 1.0]]))
    assert grid.min() >= 0 and grid.max() <= 1
    clamped = image_grid(torch.tensor([-0.5, 2.0]).view(2, 1, 1, 1), padding=0)
    assert clamped.min() == 0 and clamped.max() == 1


def test_three_dim_input_is_one_channel():
    x = torch.rand(4, 5, 5)
    torch.testing.assert_close(image_grid(x, padding=0), image_grid(x.unsqueeze(1), padding=0))


def test_uint8_input_is_scaled_from_0_255():
    x = torch.tensor([0, 51, 255, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    torch.testing.assert_close(image_grid(x, padding=0)[0], torch.tensor([[0.0, 0.2], [1.0, 1.0]]))


def test_rgb_kept_and_input_untouched():
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    before = x.detach().clone()
    grid = image_grid(x, nrow=2, padding=0)
    assert not grid.requires_grad and grid.device.type == "cpu"
    torch.testing.assert_close(grid[:, :, :4], before[0])
    assert torch.equal(x.detach(), before)


@pytest.mark.parametrize("bad,match", [
    (torch.rand(2, 2, 4, 4), r"C = 1 or 3.*\(2, 2, 4, 4\)"),
    (torch.rand(2, 4, 4, 4), r"C = 1 or 3"),
    (torch.rand(4, 4), r"\(N, C, H, W\).*got \(4, 4\).*unsqueeze\(0\)"),
    (torch.rand(1, 1, 1, 4, 4), r"\(N, C, H, W\)"),
    (torch.rand(0, 1, 4, 4), "empty"),
    (torch.rand(0, 4, 4), "empty"),
])
def test_bad_shapes_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        image_grid(bad)


@pytest.mark.parametrize("bad", [[[0.0, 1.0]], None, "img"])
def test_non_tensors_raise(bad):
    with pytest.raises(TypeError, match="must be a torch.Tensor.*got"):
        image_grid(bad)


def test_numpy_input_names_the_type():
    import numpy as np

    with pytest.raises(TypeError, match="ndarray"):
        image_grid(np.zeros((2, 1, 4, 4)))


def test_bad_value_range():
    with pytest.raises(ValueError, match="high > low"):
        image_grid(torch.rand(1, 1, 2, 2), value_range=(1, 1))


def test_show_images_returns_axes_with_the_grid():
    ax = show_images(torch.rand(5, 1, 6, 6), title="samples")
    assert ax.get_title() == "samples" and not ax.axison
    (im,) = ax.get_images()
    assert im.get_array().shape == image_grid(torch.rand(5, 1, 6, 6)).permute(1, 2, 0).shape
    import matplotlib.pyplot as plt

    _, given = plt.subplots()
    assert show_images(torch.rand(2, 3, 4, 4), ax=given, value_range=(-1, 1)) is given


def test_show_images_rejects_bad_input():
    with pytest.raises(ValueError, match="C = 1 or 3"):
        show_images(torch.rand(2, 5, 4, 4))


def trainer_history():
    return {"step": [25.0, 50.0, 75.0], "time": [0.1, 0.2, 0.3],
            "d_loss": [1.0, 0.8, 0.7], "g_loss": [2.0, math.nan, 1.5]}


def test_plot_history_draws_each_loss():
    ax = plot_history(trainer_history(), title="GAN", logy=True)
    lines = {l.get_label(): l for l in ax.get_lines()}
    assert set(lines) == {"d_loss", "g_loss"}  # not step or time
    assert list(lines["d_loss"].get_xdata()) == [25.0, 50.0, 75.0]
    assert list(lines["d_loss"].get_ydata()) == [1.0, 0.8, 0.7]
    assert ax.get_yscale() == "log" and ax.get_title() == "GAN" and ax.get_xlabel() == "step"
    assert ax.get_legend() is not None


def test_plot_history_selected_keys_and_ragged_columns():
    h = trainer_history()
    h["new"] = [0.5]  # a column shorter than step (a key that appeared late is padded, but be lenient)
    ax = plot_history(h, keys=["new", "g_loss"])
    assert [l.get_label() for l in ax.get_lines()] == ["new", "g_loss"]
    assert list(ax.get_lines()[0].get_xdata()) == [25.0]


def test_plot_history_from_a_real_trainer():
    from torch import nn

    from course_lib import Phase, TrainConfig, Trainer

    model = nn.Linear(1, 1)
    trainer = Trainer(model, Phase("loss", lambda b: {"loss": model.weight.pow(2).sum()},
                                   torch.optim.SGD(model.parameters(), lr=0.1)), TrainConfig(log_every=2, progress=False))
    trainer.fit([None], steps=6)
    ax = plot_history(trainer.history)
    assert [l.get_label() for l in ax.get_lines()] == ["loss"]
    assert len(ax.get_lines()[0].get_xdata()) == 3


def test_plot_history_errors():
    with pytest.raises(KeyError, match=r"history has no \['kl'\]; it has \['d_loss', 'g_loss'\]"):
        plot_history(trainer_history(), keys=["kl"])
    with pytest.raises(ValueError, match="needs a 'step' list"):
        plot_history({"loss": [1.0, 2.0]})


def test_plot_history_empty_is_fine():
    ax = plot_history({"step": [], "time": []})
    assert ax.get_lines() == [] and ax.get_legend() is None


class FakeTrainer:
    def __init__(self, history, step=0):
        self.history, self.step = history, step


def test_liveplot_outside_ipython_does_not_crash(monkeypatch):
    import matplotlib.pyplot as plt

    calls = []
    live = LivePlot(samples=lambda: calls.append(torch.is_grad_enabled()) or torch.rand(4, 1, 5, 5))
    live(FakeTrainer({"step": [], "time": []}))  # before the first history row
    live(FakeTrainer(trainer_history(), step=75))
    live(FakeTrainer(trainer_history(), step=75))  # a second call updates in place
    assert calls == [False, False, False]  # samples are drawn without autograd
    assert plt.get_fignums() == []  # every figure is closed


def test_liveplot_without_ipython(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ipython(name, *args, **kwargs):
        if name.startswith("IPython"):
            raise ImportError("No module named 'IPython'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipython)
    live = LivePlot(keys=["d_loss"])
    live(FakeTrainer(trainer_history(), step=75))
    assert live.handle is None


def test_liveplot_updates_one_display(monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    monkeypatch.setattr(IPython.display, "display", lambda fig, display_id: shown.append(("display", fig)) or Handle())
    live = LivePlot()
    for _ in range(3):
        live(FakeTrainer(trainer_history(), step=75))
    assert [kind for kind, _ in shown] == ["display", "update", "update"]


def test_liveplot_bad_samples_raise():
    with pytest.raises(ValueError, match="C = 1 or 3"):
        LivePlot(samples=lambda: torch.rand(4, 2, 5, 5))(FakeTrainer(trainer_history()))
