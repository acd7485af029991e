import math

import pytest
import torch
from torch import nn

from course_lib import Batches, NonFiniteLossError, Phase, TrainConfig, Trainer
from course_lib.checkpoint import load_checkpoint

CFG = dict(progress=False)


def regression(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    w, b = torch.tensor([[1.5], [-2.0], [0.5]]), 0.3
    return x, x @ w + b, w, b


def linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


def mse_phase(model, lr=0.1, opt=torch.optim.SGD, **kw):
    def loss_fn(batch):
        x, y = batch
        return {"loss": ((model(x) - y) ** 2).mean()}
    return Phase("loss", loss_fn, opt(model.parameters(), lr=lr), **kw)


def count_steps(opt):
    calls = []
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(1))
    return calls


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- a single loss ------------------------------------------------------------------------------
def test_linear_regression_converges():
    x, y, w, b = regression()
    model = linear()
    trainer = Trainer(model, mse_phase(model), TrainConfig(log_every=8, **CFG))
    batches = Batches((x, y), batch_size=32, seed=0)
    history = trainer.fit(batches, epochs=15)
    assert trainer.step == 15 * 8 and trainer.status == "done" and trainer.samples_seen == 15 * 8 * 32
    torch.testing.assert_close(model.weight.detach().T, w, atol=1e-3, rtol=0)
    assert abs(model.bias.item() - b) < 1e-3
    assert history["loss"][-1] < 1e-5 < history["loss"][0]
    assert not model.training  # left in eval mode, ready to sample


def test_history_format_and_window_means():
    model = nn.Linear(1, 1)
    holder = {}

    def loss_fn(batch):
        t = holder["trainer"]
        return {"loss": (model.weight ** 2).sum(), "marker": torch.tensor(float(t.step))}

    trainer = Trainer(model, Phase("loss", loss_fn, torch.optim.SGD(model.parameters(), lr=0.01)),
                      TrainConfig(log_every=4, **CFG))
    holder["trainer"] = trainer
    h = trainer.fit([torch.zeros(2, 1)], steps=10)
    assert set(h) == {"step", "time", "loss", "marker"}
    assert h["step"] == [4.0, 8.0, 10.0]  # steps done at each row; the last row is the partial window
    assert h["marker"] == [1.5, 5.5, 8.5]  # mean of steps 0-3, 4-7, 8-9
    assert all(isinstance(v, float) for col in h.values() for v in col)
    assert h["time"] == sorted(h["time"]) and h["time"][0] >= 0
    assert all(len(col) == 3 for col in h.values())
    assert h is trainer.history


# -- two phases ---------------------------------------------------------------------------------
class TwoPlayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.d = nn.Parameter(torch.ones(2))
        self.g = nn.Parameter(torch.ones(2))


def two_phase(k=3, log_every=2, **options):
    model = TwoPlayer()
    calls = {"d": [], "g": []}
    holder = {}

    def d_loss(batch):
        calls["d"].append(holder["t"].step)
        return {"d_loss": (model.d * batch).pow(2).mean()}

    def g_loss(batch):
        calls["g"].append(holder["t"].step)
        return {"g_loss": (model.g * batch).pow(2).mean(), "g_aux": model.g.sum().detach()}

    opt_d, opt_g = torch.optim.SGD([model.d], lr=0.01), torch.optim.SGD([model.g], lr=0.01)
    steps = {"d": count_steps(opt_d), "g": count_steps(opt_g)}
    trainer = Trainer(model, [Phase("d_loss", d_loss, opt_d), Phase("g_loss", g_loss, opt_g, every=k)],
                      TrainConfig(log_every=log_every, **CFG, **options))
    holder["t"] = trainer
    return trainer, calls, steps


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_every_k_runs_the_right_number_of_steps(k):
    trainer, calls, steps = two_phase(k=k)
    batch = [torch.ones(4, 2)]
    trainer.fit(batch, steps=10)
    assert len(steps["d"]) == 10 and calls["d"] == list(range(10))
    assert len(steps["g"]) == math.ceil(10 / k) and calls["g"] == list(range(0, 10, k))
    trainer.fit(batch, steps=7)  # a second fit continues the schedule where it stopped
    assert len(steps["d"]) == 17
    assert calls["g"] == list(range(0, 17, k)) and len(steps["g"]) == len(calls["g"])


def test_history_has_nan_where_a_phase_did_not_run():
    trainer, calls, _ = two_phase(k=3, log_every=2)
    h = trainer.fit([torch.ones(4, 2)], steps=10)
    assert h["step"] == [2, 4, 6, 8, 10]
    # G runs at steps 0, 3, 6, 9: windows [0,1] [2,3] [4,5] [6,7] [8,9]
    assert [math.isnan(v) for v in h["g_loss"]] == [False, False, True, False, False]
    assert [math.isnan(v) for v in h["g_aux"]] == [False, False, True, False, False]
    assert not any(math.isnan(v) for v in h["d_loss"])
    assert all(len(col) == 5 for col in h.values())


def test_a_key_that_appears_later_is_padded_with_nan():
    model = nn.Linear(1, 1)
    holder = {}

    def loss_fn(batch):
        out = {"loss": model.weight.pow(2).sum()}
        if holder["t"].step >= 4:
            out["late"] = torch.tensor(1.0)
        return out

    trainer = Trainer(model, Phase("loss", loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)),
                      TrainConfig(log_every=2, **CFG))
    holder["t"] = trainer
    h = trainer.fit([None], steps=8)
    assert [math.isnan(v) for v in h["late"]] == [True, True, False, False]
    assert len(h["late"]) == len(h["step"]) == 4


# -- interrupts ---------------------------------------------------------------------------------
def interrupting(model, at, where="loss"):
    state = {"fired": False, "trainer": None}

    def loss_fn(batch):
        x, y = batch
        if state["trainer"].step == at and not state["fired"]:
            state["fired"] = True
            raise KeyboardInterrupt
        return {"loss": ((model(x) - y) ** 2).mean()}

    return loss_fn, state


def test_interrupt_keeps_model_and_history_and_fit_continues(capsys):
    x, y, _, _ = regression(64)
    full = [(x, y)]  # one full batch: the run does not depend on data order

    ref = linear()
    ref_trainer = Trainer(ref, mse_phase(ref), TrainConfig(log_every=5, **CFG))
    ref_trainer.fit(full, steps=7)
    after_7 = weights(ref)
    ref_trainer.fit(full, steps=13)

    model = linear()
    loss_fn, state = interrupting(model, at=7)
    trainer = Trainer(model, Phase("loss", loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)),
                      TrainConfig(log_every=5, **CFG))
    state["trainer"] = trainer
    h = trainer.fit(full, steps=20)  # returns instead of raising
    assert trainer.status == "interrupted" and trainer.step == 7
    assert "Interrupted at step 7" in capsys.readouterr().out
    assert same_weights(weights(model), after_7)
    assert h["step"] == [5.0, 7.0] and len(h["loss"]) == 2  # steps done before the interrupt are logged
    assert not model.training

    trainer.fit(full, steps=13)
    assert trainer.status == "done" and trainer.step == 20
    assert same_weights(weights(model), weights(ref))  # as if never interrupted
    assert trainer.history["step"] == [5.0, 7.0, 10.0, 15.0, 20.0]
    assert trainer.history["loss"][-1] == pytest.approx(ref_trainer.history["loss"][-1])


def test_interrupt_in_the_second_phase_does_not_repeat_the_first():
    trainer, calls, steps = two_phase(k=1, log_every=4)
    fired = []
    g_loss = trainer.phases[1].loss_fn

    def g_interrupted(batch):
        if trainer.step == 6 and not fired:
            fired.append(1)
            raise KeyboardInterrupt
        return g_loss(batch)

    trainer.phases[1].loss_fn = g_interrupted
    trainer.fit([torch.ones(4, 2)], steps=10)
    assert trainer.status == "interrupted" and trainer.step == 6
    trainer.fit([torch.ones(4, 2)], steps=4)
    assert trainer.step == 10
    assert len(steps["d"]) == 10 and len(steps["g"]) == 10  # exactly one update per phase per step


def test_checkpoint_on_interrupt(tmp_path, capsys):
    x, y, _, _ = regression(64)
    model = linear()
    loss_fn, state = interrupting(model, at=4)
    path = tmp_path / "run.pt"
    trainer = Trainer(model, Phase("loss", loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)),
                      TrainConfig(log_every=3, checkpoint=path, **CFG))
    state["trainer"] = trainer
    trainer.fit([(x, y)], steps=10)
    assert f"checkpoint saved to {path}" in capsys.readouterr().out
    other = linear(seed=1)
    info = load_checkpoint(path, other)
    assert info["step"] == 4 and info["history"]["step"] == [3.0, 4.0]
    assert same_weights(weights(other), weights(model))


# -- non-finite losses --------------------------------------------------------------------------
def poisoned(model, bad_step, logged=False):
    """MSE whose loss is NaN at `bad_step`: the update it makes turns the weights into NaN."""
    holder = {}

    def loss_fn(batch):
        x, y = batch
        loss = ((model(x) - y) ** 2).mean()
        if holder["t"].step == bad_step:
            loss = loss * float("nan")
        out = {"loss": loss}
        if logged:  # sorts before 'loss'; finite at bad_step, NaN after it (weights are NaN by then)
            out["a_weight_sum"] = model.weight.sum().detach()
        return out

    return loss_fn, holder


def reference_weights(steps, full):
    ref = linear()
    Trainer(ref, mse_phase(ref), TrainConfig(log_every=1000, **CFG)).fit(full, steps=steps)
    return weights(ref)


@pytest.mark.parametrize("bad_step,restored", [(13, 10), (10, 5), (11, 10), (3, 0)])
def test_nonfinite_loss_rolls_back_to_the_last_good_weights(bad_step, restored):
    x, y, _, _ = regression(64)
    full = [(x, y)]
    model = linear()
    loss_fn, holder = poisoned(model, bad_step)
    trainer = Trainer(model, Phase("loss", loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)),
                      TrainConfig(log_every=5, **CFG))
    holder["t"] = trainer
    with pytest.raises(NonFiniteLossError, match=rf"'loss' became nan at step {bad_step}\b.*step {restored}\)") as e:
        trainer.fit(full, steps=20)
    assert "grad_clip" in str(e.value) and "learning rate" in str(e.value)
    assert trainer.status == "nonfinite" and trainer.step == restored
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert same_weights(weights(model), reference_weights(restored, full)) if restored else True
    with torch.no_grad():
        assert torch.isfinite(((model(x) - y) ** 2).mean())  # the restored state has a finite loss
    assert trainer.history["step"] == [float(s) for s in range(5, restored + 1, 5)]
    assert all(len(col) == len(trainer.history["step"]) for col in trainer.history.values())
    assert not any(math.isnan(v) for v in trainer.history.get("loss", []))


def test_nonfinite_rollback_uses_the_first_bad_step_of_any_key():
    x, y, _, _ = regression(64)
    model = linear()
    loss_fn, holder = poisoned(model, bad_step=10, logged=True)
    trainer = Trainer(model, Phase("loss", loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)),
                      TrainConfig(log_every=5, **CFG))
    holder["t"] = trainer
    with pytest.raises(NonFiniteLossError, match=r"'loss' became nan at step 10\b"):
        trainer.fit([(x, y)], steps=20)
    # the weights at step 10 gave a NaN loss, so they are not good: back to step 5
    assert trainer.step == 5
    assert same_weights(weights(model), reference_weights(5, [(x, y)]))


def test_diverging_training_stops_with_finite_weights():
    x, y, _, _ = regression(64)
    model = linear()
    trainer = Trainer(model, mse_phase(model, lr=50.0), TrainConfig(log_every=3, **CFG))  # far too high
    with pytest.raises(NonFiniteLossError, match=r"became (inf|nan) at step \d+"):
        trainer.fit([(x, y)], steps=500)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    with torch.no_grad():
        assert torch.isfinite(((model(x) - y) ** 2).mean())
    assert all(math.isfinite(v) for v in trainer.history["loss"])
    assert trainer.history["step"] == [] or trainer.history["step"][-1] <= trainer.step
    before = weights(model)
    trainer.phases[0].optimizer.param_groups[0]["lr"] = 0.01  # the fix the message suggests
    trainer.fit([(x, y)], steps=5)
    assert trainer.status == "done" and not same_weights(before, weights(model))


# -- checkpoints --------------------------------------------------------------------------------
def adam_trainer(path=None, seed=0, **options):
    model = linear(seed)
    return Trainer(model, mse_phase(model, lr=0.05, opt=torch.optim.Adam),
                   TrainConfig(log_every=4, checkpoint=path, **CFG, **options))


def test_save_and_resume_gives_the_same_run(tmp_path):
    x, y, _, _ = regression(64)
    full = [(x, y)]
    path = tmp_path / "ckpt" / "run.pt"
    a = adam_trainer(path)
    a.fit(full, steps=10)  # saved at the end
    assert path.is_file()
    b = adam_trainer(path, seed=1).load()
    assert b.step == 10 and b.history == a.history
    assert b.samples_seen == a.samples_seen == 10 * 64 and b.seconds == a.seconds
    assert same_weights(weights(a.model), weights(b.model))
    a.fit(full, steps=6)
    b.fit(full, steps=6)  # optimiser state restored too: Adam's moments continue
    assert same_weights(weights(a.model), weights(b.model))
    assert b.history["step"] == a.history["step"] == [4.0, 8.0, 10.0, 12.0, 16.0]  # rows at multiples of log_every


def test_checkpoint_every(tmp_path):
    trainer = adam_trainer(tmp_path / "run.pt", checkpoint_every=4)
    saved = []
    real_save = trainer.save
    trainer.save = lambda *a: saved.append((trainer.step, len(trainer.history["step"]))) or real_save(*a)
    trainer.fit([regression(32)[:2]], steps=10)
    assert [s for s, _ in saved] == [4, 8, 10]
    assert saved[0][1] == 1  # history is flushed before each save


def test_callback_every(tmp_path):
    trainer = adam_trainer(callback_every=3)
    seen = []
    trainer.fit([regression(32)[:2]], steps=10, callback=lambda t: seen.append((t.step, t.status)))
    assert seen == [(3, "running"), (6, "running"), (9, "running"), (10, "done")]
    seen.clear()
    adam_trainer().fit([regression(32)[:2]], steps=10, callback=lambda t: seen.append(t.step))
    assert seen == [4, 8, 10]  # no callback_every: at every log interval (log_every=4), and once at the end


def test_live_plot_redraws_during_training_without_a_second_setting(monkeypatch):
    """`fit(..., callback=LivePlot())` must draw more than once: the callback follows the log interval."""
    from course_lib import LivePlot

    draws = []
    live = LivePlot()
    monkeypatch.setattr(LivePlot, "__call__", lambda self, trainer: draws.append(trainer.step))
    trainer = adam_trainer()
    trainer.fit([regression(32)[:2]], steps=12, callback=live)
    assert draws == [4, 8, 12], "a live plot must be redrawn at each log interval, not only at the end"


def test_phase_after_runs_after_each_optimiser_step():
    model = linear(0)
    order = []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    real_step = opt.step
    opt.step = lambda *a, **k: order.append("step") or real_step(*a, **k)
    phase = Phase("loss", lambda b: {"loss": model(b[0]).pow(2).mean()}, opt, after=lambda: order.append("after"))
    Trainer(model, phase, train_config=TrainConfig(**CFG)).fit([regression(8)[:2]], steps=3)
    assert order == ["step", "after"] * 3


def test_half_precision_loss_is_refused_with_the_fix():
    model = linear(0)
    phase = Phase("loss", lambda b: {"loss": model(b[0]).pow(2).mean().bfloat16()}, torch.optim.SGD(model.parameters(), lr=0.1))
    trainer = Trainer(model, phase, train_config=TrainConfig(**CFG))
    with pytest.raises(TypeError, match=r"bfloat16.*float32.*logits.float\(\)"):
        trainer.fit([regression(8)[:2]], steps=1)
    assert trainer.status == "failed"


def test_trainer_takes_the_models_own_phases():
    class Model(nn.Linear):
        def phases(self):
            return [Phase("loss", lambda b: {"loss": self(b[0]).pow(2).mean()}, torch.optim.SGD(self.parameters(), lr=0.1))]

    trainer = Trainer(Model(3, 1), train_config=TrainConfig(**CFG))
    assert [p.name for p in trainer.phases] == ["loss"]
    with pytest.raises(TypeError, match="no phases"):
        Trainer(nn.Linear(3, 1))


def test_save_and_load_need_a_path():
    trainer = adam_trainer()
    with pytest.raises(ValueError, match="No checkpoint path"):
        trainer.save()
    with pytest.raises(ValueError, match="No checkpoint path"):
        trainer.load()


# -- other features -----------------------------------------------------------------------------
def test_grad_clip_limits_the_update():
    w = nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=1.0)
    model = nn.Module()
    model.w = w
    trainer = Trainer(model, Phase("loss", lambda b: {"loss": 100 * w.sum()}, opt, grad_clip=0.5), TrainConfig(**CFG))
    trainer.fit([None], steps=1)
    assert w.detach().norm().item() == pytest.approx(0.5, rel=1e-5)  # unclipped it would be 200


def test_bf16_autocast_and_channels_last_on_cpu():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 4 * 4, 1))
    seen = {}

    def loss_fn(batch):
        out = conv(batch)
        seen["dtype"], seen["cl"] = out.dtype, batch.is_contiguous(memory_format=torch.channels_last)
        return {"loss": out.float().pow(2).mean()}  # the contract: losses in float32 under autocast

    trainer = Trainer(conv, Phase("loss", loss_fn, torch.optim.SGD(conv.parameters(), lr=0.01)),
                      TrainConfig(amp=True, channels_last=True, **CFG))
    trainer.fit([torch.rand(8, 1, 4, 4)], steps=3)
    assert seen == {"dtype": torch.bfloat16, "cl": True}
    assert trainer.model[0].weight.dtype == torch.float32  # weights stay in float32
    assert Trainer(nn.Linear(1, 1), mse_phase(nn.Linear(3, 1))).amp is False  # off on CPU by default


def test_progress_bar_runs(capsys):
    x, y, _, _ = regression(32)
    model = linear()
    Trainer(model, mse_phase(model), TrainConfig(log_every=2, progress=True)).fit([(x, y)], steps=4)
    assert "loss=" in capsys.readouterr().err


def test_epochs_count_batches():
    x, y, _, _ = regression(100)
    model = linear()
    trainer = Trainer(model, mse_phase(model), TrainConfig(**CFG))
    trainer.fit(Batches((x, y), 25), epochs=3)
    assert trainer.step == 12 and trainer.samples_seen == 300


# -- bad arguments ------------------------------------------------------------------------------
def test_bad_arguments():
    model = linear()
    phase = mse_phase(model)
    with pytest.raises(ValueError, match="at least one Phase"):
        Trainer(model, [])
    with pytest.raises(ValueError, match="must be unique"):
        Trainer(model, [phase, phase])
    with pytest.raises(ValueError, match="every must be >= 1"):
        Phase("g", phase.loss_fn, phase.optimizer, every=0)
    trainer = Trainer(model, phase, TrainConfig(**CFG))
    data = [regression(8)[:2]]
    with pytest.raises(ValueError, match="exactly one of steps"):
        trainer.fit(data)
    with pytest.raises(ValueError, match="exactly one of steps"):
        trainer.fit(data, steps=1, epochs=1)
    with pytest.raises(ValueError, match="steps must be positive"):
        trainer.fit(data, steps=0)
    with pytest.raises(TypeError, match="pass steps=... instead"):
        trainer.fit(iter(data), epochs=1)
    with pytest.raises(ValueError, match="batches yielded nothing"):
        trainer.fit([], steps=3)
    assert trainer.step == 0


@pytest.mark.parametrize("returned,error,match", [
    (lambda l: l, TypeError, r"must return a dict with the key 'loss'.*returned Tensor"),
    (lambda l: {"mse": l}, TypeError, r"with the key 'loss'.*returned \['mse'\]"),
    (lambda l: {"loss": l.expand(3)}, ValueError, r"must be a scalar, got shape \(3,\); take .mean\(\)"),
])
def test_bad_loss_functions(returned, error, match):
    w = nn.Parameter(torch.ones(1))
    model = nn.Module()
    model.w = w
    trainer = Trainer(model, Phase("loss", lambda b: returned((w ** 2).sum()), torch.optim.SGD([w], lr=0.1)),
                      TrainConfig(**CFG))
    with pytest.raises(error, match=match):
        trainer.fit([None], steps=1)


def test_an_exception_in_a_loss_function_marks_the_run_failed():
    model = nn.Linear(2, 1)

    def broken(batch):
        raise RuntimeError("bug in the loss")

    trainer = Trainer(model, Phase("loss", broken, torch.optim.SGD(model.parameters(), lr=0.1)),
                      TrainConfig(progress=False))
    with pytest.raises(RuntimeError, match="bug in the loss"):
        trainer.fit(Batches(torch.randn(8, 2), 4), steps=1)
    assert trainer.status == "failed"
