import dataclasses

import pytest
import torch

from course_lib import profiles
from course_lib.profiles import PROFILES, Profile, default_profile_name, get_profile


def test_three_profiles_ordered_by_size():
    assert set(PROFILES) == {"smoke", "cpu", "gpu"}
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    for p in PROFILES.values():
        assert isinstance(p, Profile) and p.name in PROFILES and PROFILES[p.name] is p
    assert smoke.train_size < cpu.train_size and gpu.train_size is None  # None: the whole split
    for knob in ("eval_size", "epochs", "width", "toy_steps", "mc_samples"):
        assert getattr(smoke, knob) <= getattr(cpu, knob) <= getattr(gpu, knob), knob
    for p in PROFILES.values():
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if isinstance(v, int):
                assert v > 0 or (f.name == "min_steps" and v == 0), (p.name, f.name)  # 0 steps: no floor


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["cpu"].epochs = 100  # type: ignore[misc]


def test_scaled_changes_only_the_given_knobs():
    cpu = PROFILES["cpu"]
    p = cpu.scaled(epochs=1, batch_size=32)
    assert (p.epochs, p.batch_size) == (1, 32)
    assert dataclasses.replace(p, epochs=cpu.epochs, batch_size=cpu.batch_size) == cpu
    assert PROFILES["cpu"].epochs == 3  # the original is untouched


def test_scaled_unknown_knob_names_the_knobs():
    with pytest.raises(TypeError, match=r"no knob\(s\) \['epoch'\].*epochs"):
        PROFILES["cpu"].scaled(epoch=1)


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", " CPU ", "Smoke"])
def test_get_profile_by_name(name):
    assert get_profile(name) is PROFILES[name.strip().lower()]


def test_get_profile_passes_a_profile_through():
    custom = PROFILES["smoke"].scaled(width=4)
    assert get_profile(custom) is custom


def test_unknown_profile_lists_choices_and_fix():
    with pytest.raises(ValueError) as e:
        get_profile("laptop")
    msg = str(e.value)
    assert "'laptop'" in msg and "profile=" in msg
    assert "['cpu', 'gpu', 'smoke']" in msg
    assert "COURSE_PROFILE=cpu" in msg and "setup(profile='smoke')" in msg


def test_env_var_selects_the_default(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert default_profile_name() == "smoke"
    assert get_profile() is PROFILES["smoke"]
    assert get_profile(None) is PROFILES["smoke"]


def test_bad_env_var_is_named_in_the_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    with pytest.raises(ValueError, match=r"'tiny' \(from \$COURSE_PROFILE\)"):
        get_profile()


def test_default_follows_the_hardware(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "   ")  # blank counts as unset
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_profile_name() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_profile_name() == "gpu"
    assert profiles.ENV_VAR == "COURSE_PROFILE"
