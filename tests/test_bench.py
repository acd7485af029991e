import json

import pytest
import torch

from course_lib import bench
from course_lib.runtime import Course


@pytest.fixture
def fake(monkeypatch):
    """Only test benchmarks are registered, and no model module is imported."""
    monkeypatch.setattr(bench, "BENCHES", {})
    monkeypatch.setattr(bench, "MODULES", ())
    seen = []

    @bench.benchmark("fake")
    def fake_bench(course):
        seen.append(course)
        return {"loss": 0.25, "images_per_s": 1000.0}

    assert bench.BENCHES == {"fake": fake_bench}
    return seen


def test_run_returns_the_record(fake):
    record = bench.run("fake", profile="smoke", device="cpu", seed=3)
    (course,) = fake
    assert isinstance(course, Course) and course.profile.name == "smoke" and course.seed == 3
    assert course.device == torch.device("cpu")
    assert record["model"] == "fake" and record["profile"] == "smoke" and record["seed"] == 3
    assert record["device"] == "cpu" and isinstance(record["device_name"], str) and record["device_name"]
    assert record["torch"] == torch.__version__ and record["threads"] >= 1
    assert record["loss"] == 0.25 and record["images_per_s"] == 1000.0
    assert 0 <= record["seconds"] < 10 and record["date"].endswith("+00:00")
    assert json.loads(json.dumps(record)) == record  # one JSON line, as printed


def test_profile_from_env(fake, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert bench.run("fake")["profile"] == "smoke"


def test_unknown_model_lists_the_choices(fake):
    with pytest.raises(SystemExit, match=r"Unknown model 'vae'. Choose one of \['fake'\] or 'all'"):
        bench.run("vae", profile="smoke")
    assert fake == []  # nothing ran


def test_bad_profile_and_device(fake):
    with pytest.raises(ValueError, match="Unknown profile"):
        bench.run("fake", profile="huge")
    with pytest.raises(ValueError, match="Unknown device"):
        bench.run("fake", profile="smoke", device="tpu")


def test_cli_prints_and_appends_json_lines(fake, tmp_path, capsys):
    out = tmp_path / "results" / "bench.jsonl"
    for _ in range(2):
        assert bench.main(["fake", "--profile", "smoke", "--device", "cpu", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().split("\n")
    lines = out.read_text().strip().split("\n")
    assert len(printed) == 2 and len(lines) == 2
    for line in lines + printed:
        record = json.loads(line)
        assert record["model"] == "fake" and record["seed"] == 1 and record["profile"] == "smoke"


def test_cli_all(fake, capsys):
    bench.benchmark("other")(lambda course: {"metric": 1.0})
    assert bench.main(["all", "--profile", "smoke", "--device", "cpu"]) == 0
    models = [json.loads(line)["model"] for line in capsys.readouterr().out.strip().split("\n")]
    assert models == ["fake", "other"]


def test_load_all_skips_missing_modules_only(monkeypatch):
    monkeypatch.setattr(bench, "MODULES", ("course_lib.not_written_yet",))
    bench._load_all()  # a model module that does not exist yet is skipped

    def broken(name):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    import importlib

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="scipy"):  # a missing dependency is not hidden
        bench._load_all()


def test_device_name_on_cpu():
    name = bench.device_name(torch.device("cpu"))
    assert isinstance(name, str) and name


def test_a_benchmark_cannot_overwrite_the_record_fields(monkeypatch):
    from course_lib import bench

    monkeypatch.setitem(bench.BENCHES, "clashing", lambda course: {"profile": "faked", "x": 1})
    with pytest.raises(ValueError, match="profile"):
        bench.run("clashing", profile="smoke")
