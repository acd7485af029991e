import json
import time

import pytest
import torch

from course_lib import bench
from course_lib.runtime import Course


@pytest.fixture
def fake(monkeypatch):
    """Only test benchmarks are found, and no model module is imported."""
    seen = []

    def fake_bench(course):
        seen.append(course)
        return {"loss": 0.25, "images_per_s": 1000.0}

    benches = {"fake": fake_bench}
    monkeypatch.setattr(bench, "find_benchmarks", lambda package=bench.RECIPES_PACKAGE: benches)
    return seen, benches


def test_run_returns_the_record(fake):
    start = time.monotonic()
    record = bench.run("fake", profile="smoke", device="cpu", seed=3)
    elapsed = time.monotonic() - start
    (course,) = fake[0]
    assert isinstance(course, Course) and course.profile.name == "smoke" and course.seed == 3
    assert course.device == torch.device("cpu")
    assert record["model"] == "fake" and record["profile"] == "smoke" and record["seed"] == 3
    assert record["device"] == "cpu" and isinstance(record["device_name"], str) and record["device_name"]
    assert record["torch"] == torch.__version__ and record["threads"] >= 1
    assert record["loss"] == 0.25 and record["images_per_s"] == 1000.0
    # seconds: the run's own wall time, so within the time the call took, however busy the machine
    assert 0 <= record["seconds"] <= elapsed and record["date"].endswith("+00:00")
    assert json.loads(json.dumps(record)) == record  # one JSON line, as printed


def test_profile_from_env(fake, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert bench.run("fake")["profile"] == "smoke"


def test_unknown_model_lists_the_choices(fake):
    with pytest.raises(SystemExit, match=r"Unknown model 'vae'. Choose one of \['fake'\] or 'all'"):
        bench.run("vae", profile="smoke")
    assert fake[0] == []  # nothing ran


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
    fake[1]["other"] = lambda course: {"metric": 1.0}
    assert bench.main(["all", "--profile", "smoke", "--device", "cpu"]) == 0
    models = [json.loads(line)["model"] for line in capsys.readouterr().out.strip().split("\n")]
    assert models == ["fake", "other"]


def test_device_name_on_cpu():
    from course_lib.runtime import device_name

    name = device_name(torch.device("cpu"))
    assert isinstance(name, str) and name


def test_a_benchmark_cannot_overwrite_the_record_fields():
    with pytest.raises(ValueError, match="profile"):
        bench.run("clashing", profile="smoke", benches={"clashing": lambda course: {"profile": "faked", "x": 1}})


def test_every_recipe_file_is_walked_and_listed(capsys):
    """--list shows every benchmark defined in course_lib/recipes/, found by walking the folder."""
    import importlib
    import pkgutil

    import course_lib.recipes as recipes

    want = {}
    for info in pkgutil.iter_modules(recipes.__path__):
        want.update(getattr(importlib.import_module(f"course_lib.recipes.{info.name}"), "BENCHMARKS", {}))
    assert {"classifier", "ring-gan", "dcgan", "cgan", "vae", "pixelcnn", "vqvae"} <= set(want)
    want.update(importlib.import_module("course_lib.metrics").BENCHMARKS)
    assert bench.find_benchmarks() == want
    assert bench.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name, fn in want.items():
        assert name in listed and fn.__module__.removeprefix("course_lib.").replace(".", "/") + ".py" in listed


def test_find_benchmarks_in_a_package_of_model_files(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "alpha.py").write_text('def b(course):\n    """Alpha."""\n    return {}\n\n\nBENCHMARKS = {"alpha": b}\n')
    (pkg / "beta.py").write_text("X = 1  # a model file without benchmarks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(bench.find_benchmarks("fake_models")) == ["alpha"]
    (pkg / "gamma.py").write_text('BENCHMARKS = {"alpha": print}\n')
    with pytest.raises(ValueError, match="defined twice"):
        bench.find_benchmarks("fake_models")


def test_cli_without_a_model_says_what_to_do(capsys):
    with pytest.raises(SystemExit):
        bench.main([])
    assert "--list" in capsys.readouterr().err


@pytest.fixture
def with_losses(monkeypatch):
    """A benchmark with a loss option, beside one without."""
    seen = []

    def by_loss(course, loss="a"):
        seen.append(loss)
        return {"loss": loss}
    by_loss.choices = {"loss": ("a", "b", "c")}
    benches = {"gan": by_loss, "fake": lambda course: {"x": 1.0}}
    monkeypatch.setattr(bench, "find_benchmarks", lambda package=bench.RECIPES_PACKAGE: benches)
    return seen


def test_loss_all_prints_one_line_per_choice(with_losses, capsys):
    assert bench.main(["gan", "--profile", "smoke", "--device", "cpu", "--loss", "all"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().split("\n")]
    assert [r["loss"] for r in lines] == ["a", "b", "c"] == with_losses
    assert bench.main(["gan", "--profile", "smoke", "--device", "cpu", "--loss", "b"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == "b"
    assert bench.main(["all", "--profile", "smoke", "--device", "cpu", "--loss", "c"]) == 0  # only gan takes it
    assert [json.loads(x)["model"] for x in capsys.readouterr().out.strip().split("\n")] == ["fake", "gan"]


def test_bad_loss_options_say_what_to_choose(with_losses):
    with pytest.raises(SystemExit, match=r"Unknown --loss 'd'. Choose one of \['a', 'b', 'c'\] or 'all'"):
        bench.main(["gan", "--profile", "smoke", "--loss", "d"])
    with pytest.raises(SystemExit, match="takes no --loss"):
        bench.main(["fake", "--profile", "smoke", "--loss", "a"])
    assert with_losses == []


def test_dcgan_offers_the_loss_family():
    from course_lib.recipes.dcgan import LOSS_FAMILY, bench_dcgan
    assert bench_dcgan.choices == {"loss": LOSS_FAMILY} == {"loss": ("non-saturating", "hinge", "least-squares", "wgan-gp")}


def test_dcgan_ablation_changes_one_thing_each():
    '''Each ablation changes only what its name says; the lr ones scale the course's own rate by ten.'''
    from course_lib.recipes.dcgan import ABLATIONS, ablation_config, bench_dcgan_ablation, dcgan_config, top_class
    from course_lib.runtime import setup
    course = setup(profile="smoke", quiet=True)
    from dataclasses import asdict
    base = dcgan_config(course)
    want = {"baseline": {}, "no-batchnorm-in-G": {"g_batchnorm": False}, "max-pooling-in-D": {"d_pool": True},
            "lr-D-10x": {"lr_d": 10 * base.lr_d}, "lr-G-10x": {"lr_g": 10 * base.lr_g}, "saturating": {"loss": "saturating"}}
    for variant, changed in want.items():
        config = asdict(ablation_config(course, variant))
        assert {k: v for k, v in config.items() if v != asdict(base)[k]} == changed, variant
    assert bench_dcgan_ablation.choices == {"variant": tuple(ABLATIONS)}
    assert top_class([1, 3, 0, 0]) == 0.75
    with pytest.raises(ValueError, match="Choose one of"):
        ablation_config(course, "no-such-ablation")


def test_read_lines_filters_by_model_and_fields(tmp_path):
    '''read_lines keeps one model's lines with the asked fields, in file order, and names a broken line.'''
    path = tmp_path / "benchmarks.jsonl"
    rows = [{"model": "a", "profile": "cpu", "seed": 0}, {"model": "b", "profile": "cpu"},
            {"model": "a", "profile": "gpu", "seed": 1}, {"model": "a", "profile": "cpu", "seed": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert bench.read_lines("a", path, profile="cpu") == [rows[0], rows[3]]
    assert bench.read_lines("a", path) == [rows[0], rows[2], rows[3]]
    assert bench.read_lines("c", path) == []
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        bench.read_lines("a", path)
    with pytest.raises(FileNotFoundError, match="git checkout"):
        bench.read_lines("a", tmp_path / "missing.jsonl")
    assert bench.LINES_FILE.name == "benchmarks.jsonl" and bench.LINES_FILE.is_file()


def test_ablation_runs_keep_the_latest_line_of_each_seed_and_need_two_seeds():
    from course_lib.recipes.dcgan import ABLATIONS, ablation_runs

    def line(variant, seed, date, fd):
        return {"model": "dcgan-ablation", "variant": variant, "seed": seed, "date": date, "fd": fd}

    lines = [line(v, s, f"2026-01-0{s + 1}", 1.0) for v in ABLATIONS for s in (0, 1)]
    lines.append(line("baseline", 0, "2025-12-31", 9.0))  # older: the rerun on 2026-01-01 wins
    lines.append(line("saturating", 1, "2026-02-01", 5.0))  # newer: it replaces seed 1's line
    runs = ablation_runs(lines)
    assert list(runs) == list(ABLATIONS) and all(sorted(seeds) == [0, 1] for seeds in runs.values())
    assert runs["baseline"][0]["fd"] == 1.0 and runs["saturating"][1]["fd"] == 5.0
    with pytest.raises(ValueError, match="fewer than 2 seeds.*--seed"):
        ablation_runs([x for x in lines if not (x["variant"] == "lr-G-10x" and x["seed"] == 1)])
