import os
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from course_lib import checkpoint as ckpt_mod
from course_lib.checkpoint import CheckpointError, atomic_save, load_checkpoint, save_checkpoint


class Net(nn.Module):
    def __init__(self, width=4, extra=False):
        super().__init__()
        self.body = nn.Linear(3, width)
        self.norm = nn.BatchNorm1d(width)  # has buffers as well as parameters
        self.head = nn.Linear(width, 1)
        if extra:
            self.more = nn.Linear(1, 1)

    def forward(self, x):
        return self.head(self.norm(self.body(x)).relu())


def trained(seed=0, **kw):
    torch.manual_seed(seed)
    model = Net(**kw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
    return model, opt


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_roundtrip(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "sub" / "a.pt", model, {"opt": opt}, step=17,
                           history={"step": [10, 17], "loss": [0.5, 0.25]}, extra={"note": "hi", "n": 3})
    assert path == tmp_path / "sub" / "a.pt" and path.is_file()
    other, other_opt = trained(seed=1)
    assert not equal_states(state(model), state(other))
    info = load_checkpoint(path, other, {"opt": other_opt})
    assert info == {"step": 17, "history": {"step": [10.0, 17.0], "loss": [0.5, 0.25]}, "extra": {"note": "hi", "n": 3},
                    "config": None, "seed": None, "model_class": "test_checkpoint.Net"}  # a plain module: no config
    assert equal_states(state(model), state(other))
    saved, loaded = opt.state_dict(), other_opt.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for i in saved["state"]:
        for k in saved["state"][i]:
            assert torch.equal(saved["state"][i][k], loaded["state"][i][k])


def test_without_optimisers(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "a.pt", model)
    other, _ = trained(seed=1)
    info = load_checkpoint(tmp_path / "a.pt", other)
    assert {k: info[k] for k in ("step", "history", "extra")} == {"step": 0, "history": {}, "extra": {}}
    assert equal_states(state(model), state(other))


def test_file_is_safe_to_load_with_plain_torch(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "a.pt", model, {"opt": opt})
    raw = torch.load(tmp_path / "a.pt", weights_only=True)
    assert raw["format"] == ckpt_mod.FORMAT and all(v.device.type == "cpu" for v in raw["model"].values())


def test_atomic_write_leaves_no_temp_files(tmp_path):
    model, _ = trained()
    for step in range(3):
        save_checkpoint(tmp_path / "a.pt", model, step=step)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, failure):
    model, _ = trained()
    save_checkpoint(tmp_path / "a.pt", model, step=1)
    real_save = torch.save

    def half_then_fail(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise failure("disk full or stop button")

    monkeypatch.setattr(torch, "save", half_then_fail)
    new_model, _ = trained(seed=1)
    with pytest.raises(failure):
        save_checkpoint(tmp_path / "a.pt", new_model, step=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
    other, _ = trained(seed=2)
    assert load_checkpoint(tmp_path / "a.pt", other)["step"] == 1
    assert equal_states(state(model), state(other))


def test_atomic_save_plain_object(tmp_path):
    atomic_save({"x": torch.arange(3)}, tmp_path / "deep" / "x.pt")
    assert torch.equal(torch.load(tmp_path / "deep" / "x.pt", weights_only=True)["x"], torch.arange(3))


def test_missing_file(tmp_path):
    model, _ = trained()
    with pytest.raises(FileNotFoundError, match="No checkpoint at .*Train first"):
        load_checkpoint(tmp_path / "nope.pt", model)


def unchanged_after_error(path, match, **kw):
    model, opt = trained(seed=5)
    before, opt_before = state(model), opt.state_dict()
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(path, model, kw.get("optimizers"))
    assert equal_states(before, state(model))
    return str(e.value)


@pytest.mark.parametrize("cut", [0.5, 0.9, 10])
def test_truncated_file(tmp_path, cut):
    model, _ = trained()
    path = save_checkpoint(tmp_path / "a.pt", model)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)] if cut < 1 else data[:cut])
    msg = unchanged_after_error(path, "truncated or corrupt")
    assert "Delete it and train again" in msg


def test_empty_file(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"")
    unchanged_after_error(tmp_path / "a.pt", "truncated or corrupt")


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_are_corrupt_not_refused(tmp_path, seed):
    g = torch.Generator().manual_seed(seed)
    (tmp_path / "a.pt").write_bytes(bytes(torch.randint(0, 256, (2000,), generator=g, dtype=torch.uint8).tolist()))
    msg = unchanged_after_error(tmp_path / "a.pt", "corrupt")
    assert "Refused" not in msg  # noise is not a security problem; saying so would mislead


@dataclass
class Config:
    width: int = 4


def evil():
    raise AssertionError("this must never run")


@pytest.mark.parametrize("payload", [Config(), Config, os.getcwd])
def test_python_objects_are_refused(tmp_path, payload):
    model, _ = trained()
    good = torch.load(save_checkpoint(tmp_path / "a.pt", model), weights_only=True)
    good["extra"] = {"config": payload}
    torch.save(good, tmp_path / "a.pt")  # not through save_checkpoint: an untrusted file
    msg = unchanged_after_error(tmp_path / "a.pt", "Refused to load")
    assert "could run code" in msg and "re-save" in msg


def test_code_in_a_pickle_is_never_run(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (evil, ())

    torch.save({"format": ckpt_mod.FORMAT, "model": {}, "x": Exploit()}, tmp_path / "a.pt")
    unchanged_after_error(tmp_path / "a.pt", "Refused to load")


def test_saving_python_objects_fails_at_once(tmp_path):
    model, _ = trained()
    with pytest.raises(TypeError, match=r"extra\['config'\].*Config"):
        save_checkpoint(tmp_path / "a.pt", model, extra={"config": Config()})
    assert not (tmp_path / "a.pt").exists()
    save_checkpoint(tmp_path / "a.pt", model, extra={"config": {"width": 4, "sizes": [1, 2.5], "t": torch.ones(2)}})


def test_a_plain_state_dict_gets_a_clear_message(tmp_path):
    model, _ = trained()
    torch.save(model.state_dict(), tmp_path / "a.pt")
    msg = unchanged_after_error(tmp_path / "a.pt", "not a course checkpoint")
    assert "save_checkpoint" in msg and "load_state_dict(torch.load(" in msg
    torch.save([1, 2, 3], tmp_path / "b.pt")
    unchanged_after_error(tmp_path / "b.pt", "not a course checkpoint")


def test_architecture_mismatch_lists_every_difference(tmp_path):
    wide, _ = trained(width=6, extra=True)
    path = save_checkpoint(tmp_path / "a.pt", wide)
    msg = unchanged_after_error(path, "does not match this model's architecture")
    assert "not in the model (2): more.bias, more.weight" in msg
    assert "different shapes" in msg and "body.weight: checkpoint (6, 3) vs model (4, 3)" in msg
    assert "Build the model with the same config" in msg
    narrow, _ = trained()
    path = save_checkpoint(tmp_path / "b.pt", narrow)
    torch.manual_seed(0)
    bigger = Net(extra=True)
    before = state(bigger)
    with pytest.raises(CheckpointError, match=r"missing in the checkpoint \(2\): more.bias, more.weight"):
        load_checkpoint(path, bigger)
    assert equal_states(before, state(bigger))


def test_missing_optimiser_state(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "a.pt", model, {"d": opt})
    other, other_opt = trained(seed=1)
    msg = unchanged_after_error(path, r"has no state for optimiser 'g' \(it has \['d'\]\)", optimizers={"g": other_opt})
    assert "optimiser" in msg


def test_optimiser_for_other_parameters_changes_nothing(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "a.pt", model, {"opt": opt})
    other, _ = trained(seed=1)
    head_only = torch.optim.Adam(other.head.parameters())
    before, opt_before = state(other), head_only.state_dict()
    with pytest.raises(CheckpointError, match="optimiser 'opt'"):
        load_checkpoint(path, other, {"opt": head_only})
    assert equal_states(before, state(other))
    assert head_only.state_dict() == opt_before


def test_atomic_write_gives_the_mode_open_would_not_mkstemps_0600(tmp_path):
    """Data and notebooks the course writes must be readable by others: a grader's kernel runs as nobody."""
    import os

    from course_lib.checkpoint import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"x")
        assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        with atomic_write(tmp_path / "b.bin") as f:
            f.write(b"x")
        assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
