"""The model zoo: every shipped entry loads offline, passes its checksum and still measures what its
manifest says; `bench --save` + `zoo add` make an entry; a changed, missing or unknown file says how to fix."""
import json
import shutil

import pytest
import torch

from course_lib import setup
from course_lib.checkpoint import config_to_dict
from course_lib.zoo import RUNS, ZOO, ZooError, add_entry, entry_config, install, load_pretrained, manifest, match_line
from course_lib.zoo.registry import AWAITING_GPU, made_by

ENTRIES = sorted(manifest())


def test_the_zoo_ships_entries_with_their_record():
    assert ENTRIES, "course_lib/assets/zoo/manifest.json lists no entry"
    total = sum(e["bytes"] for e in manifest().values())
    assert total < 40e6, f"the zoo weighs {total / 1e6:.1f} MB; keep it under 40 MB in git"
    for name, e in manifest().items():
        for key in ("model_class", "config", "seed", "dataset", "steps", "images_seen", "train_seconds", "device",
                    "torch", "command", "sha256", "figures", "measured", "profile", "train_status"):
            assert key in e, (name, key)
        assert e["train_status"] == "done", f"{name} was stopped before the end of its run"
        assert e["command"].startswith(f"python -m course_lib.zoo train {made_by(name).name} --device ")  # a prior: its VQ-VAE's


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_loads_offline_in_eval_mode(name, no_network):
    model = load_pretrained(name)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_every_registry_entry_ships_with_the_config_its_recipe_builds():
    """The registry, the recipes and the shipped files agree: each entry's recorded config is what its
    recipe builds at its profile today, so `zoo train NAME` makes the same model again."""
    from course_lib.recipes.vqvae import prior_config
    from course_lib.recipes.zoo import build

    shipped = set(manifest())
    awaiting = {saved for name in AWAITING_GPU for saved in RUNS[name].saves}
    missing = sorted({saved for run in RUNS.values() for saved in run.saves} - shipped - awaiting)
    assert not missing, f"registry entries with no shipped file: {missing}; train them: " + "; ".join(
        sorted({made_by(n).command("cuda") for n in missing}))
    landed = sorted(awaiting & shipped)
    assert not landed, f"{landed} shipped: take them off registry.AWAITING_GPU, so this test checks their configs"
    for name, run in RUNS.items():
        if name in AWAITING_GPU:
            continue
        course = setup(profile=run.profile, device="cpu", quiet=True)
        model = build(run, course)
        assert config_to_dict(model.config) == manifest()[name]["config"], f"{name}: the recipe builds another model now"
        if run.family == "vqvae":  # and its prior, which its run trains after it
            assert config_to_dict(prior_config(course, model)) == manifest()[run.saves[1]]["config"], run.saves[1]
        assert manifest()[name]["seed"] == run.seed and run.lectures, name
        assert set(run.finish) <= set(manifest()[name].get("finished", {})), f"{name}: python -m course_lib.zoo finish {name}"


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_measures_what_its_manifest_says(name, real_data):
    """The quick check (fixed noise, fixed test images, on the CPU) of the shipped file lands on the figures
    recorded when it was made: a swapped, retrained or broken file does not."""
    from course_lib.recipes.zoo import close_enough, quick_check

    entry = manifest()[name]
    assert "check" in entry, f"{name} records no quick check: python -m course_lib.zoo measure {name}"
    got = quick_check(name, load_pretrained(name))
    assert got["n"] == entry["check"]["n"]
    assert not close_enough(name, got, entry["check"], scale=2.0), (name, got, entry["check"])


@pytest.mark.parametrize("name", ENTRIES)
def test_half_precision_moved_no_figure(name):
    entry = manifest()[name]
    check = entry.get("half_check")
    if not check:  # the first entries came from `bench --save`, which kept no float32 copy to compare with
        assert "made_by" in entry, f"{name} was made by zoo train and records no half-precision check"
        pytest.skip(f"{name} was converted from a bench checkpoint that recorded no half-precision check")
    if entry["dtype"] == "float16":
        for key, value in check["float32"].items():
            if key != "n":
                assert abs(check["float16"][key] - value) <= 0.01 * max(1.0, abs(value)), (name, key, check)


def test_figures_were_measured_on_the_saved_files():
    for name, entry in manifest().items():
        assert entry.get("figures") and entry.get("measured"), f"{name}: python -m course_lib.zoo measure {name}"
        assert entry["figures"]["entry"] == name


def test_a_changed_missing_or_unknown_entry_says_how_to_fix(tmp_path):
    name = ENTRIES[0]
    entry = manifest()[name]
    shutil.copy(ZOO / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(ZOO / entry["file"], tmp_path / entry["file"])
    load_pretrained(name, folder=tmp_path)
    data = bytearray((tmp_path / entry["file"]).read_bytes())
    data[-1] ^= 1
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"changed or damaged.*git checkout.*course_lib.zoo train " + name):
        load_pretrained(name, folder=tmp_path)
    (tmp_path / entry["file"]).unlink()
    with pytest.raises(ZooError, match=r"missing.*course_lib.zoo train " + name):
        load_pretrained(name, folder=tmp_path)
    with pytest.raises(ZooError, match="No zoo entry 'nope'.*" + name):
        load_pretrained("nope")


def test_bench_save_then_zoo_add_makes_an_entry(tmp_path, capsys):
    """The path every entry took, at digits size: the bench trains and saves, `add` converts and records."""
    from course_lib.bench import run
    from course_lib.models.dcgan import DCGAN

    line = run("dcgan-digits", "smoke", save=tmp_path / "w", loss="hinge")
    saved = tmp_path / "w" / "dcgan-digits-hinge.pt"
    assert saved.is_file() and line["train_status"] == "done"
    (tmp_path / "bench.jsonl").write_text(json.dumps(line) + "\n")
    assert match_line(saved.stem, [line]) is line
    entry = add_entry(saved, line, folder=tmp_path / "zoo")
    assert entry["command"] == "python -m course_lib.bench dcgan-digits --profile smoke --loss hinge --save DIR"
    assert entry["steps"] == line["steps"] and entry["bench"]["fd"] == line["fd"] and entry["dtype"] == "float16"
    shipped = load_pretrained("dcgan-digits-hinge", folder=tmp_path / "zoo")
    trained = DCGAN.from_checkpoint(saved).eval()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert (shipped.sample(16, generator=g()) - trained.sample(16, generator=g())).abs().max() < 0.02  # half precision
    with pytest.raises(ZooError, match="no bench line"):
        match_line("vae-digits-bernoulli", [line])


def test_zoo_train_runs_end_to_end_and_installs(tmp_path, real_data, capsys):
    """`zoo train` at smoke size: trains with the recipe, saves, loads back, measures the file, writes a bench
    line; `install` brings the entry into another zoo, where it loads with its checksum."""
    from course_lib.zoo.__main__ import main

    name = "vae-fashion-mnist-2d"
    assert main(["train", name, "--device", "cpu", "--profile", "smoke", "--steps", "12", "--out", str(tmp_path / "out")]) == 0
    entry = manifest(tmp_path / "out")[name]
    assert entry["steps"] == 12 and entry["train_status"] == "done" and entry["device_type"] == "cpu"
    assert entry["command"] == f"python -m course_lib.zoo train {name} --device cpu --profile smoke --steps 12"
    assert {"test_bpd", "grid_classes", "posterior_in_box", "iwae_bpd"} <= set(entry["figures"])
    assert entry["history"]["loss"] and entry["check"]["n"] == 500
    line = json.loads((tmp_path / "out" / "bench.jsonl").read_text().splitlines()[-1])
    assert line["model"] == "zoo" and line["entry"] == name and line["test_bpd"] == entry["figures"]["test_bpd"]
    assert install(tmp_path / "out", folder=tmp_path / "zoo") == [name]
    model = load_pretrained(name, folder=tmp_path / "zoo")
    assert model.config.z_dim == 2 and not model.training


def test_a_cpu_run_does_not_replace_a_gpu_entry_unasked(capsys):
    from course_lib.zoo.__main__ import main

    gpu_trained = next(n for n, e in manifest().items() if e.get("device_type", "cuda") == "cuda")
    with pytest.raises(SystemExit, match="--replace"):
        main(["train", gpu_trained, "--device", "cpu"])
    with pytest.raises(SystemExit, match="No zoo entry"):
        main(["train", "nope", "--device", "cpu"])


def test_a_recipe_takes_a_zoo_name(real_data, capsys):
    """train_* with zoo=NAME loads the converged model into the one given and trains nothing."""
    from course_lib.models.vae import VAE
    from course_lib.recipes.vae import train_vae, vae_config

    course = setup(profile="smoke", device="cpu", quiet=True)
    data = course.load_data("fashion-mnist")
    name = "vae-fashion-mnist-logistic256"
    vae = VAE(entry_config(name))
    run = train_vae(course, vae, data, zoo=name)
    assert run.trainer.status == "loaded" and run.trainer.step == manifest()[name]["steps"]
    assert [s[0] for s in run.snapshots] == [0, run.trainer.step]  # the untrained and the converged model
    assert "converged" in capsys.readouterr().out
    shipped = load_pretrained(name)
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), shipped.state_dict().values()))
    with pytest.raises(ZooError, match=r"(?s)width: zoo 64, this model 8.*entry_config"):
        train_vae(course, VAE(vae_config(course)), data, zoo=name)


def test_the_gpu_script_packs_the_zoo_in_few_small_files(tmp_path, real_data):
    """scripts/zoo-gpu.sh at smoke size on the CPU: at most 8 files of at most 16 MiB, which zoo-install lands."""
    import os
    import subprocess
    import sys
    import tarfile

    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "ZOO_DEVICE": "cpu", "ZOO_PROFILE": "smoke", "ZOO_STEPS": "5",
           "ZOO_ENTRIES": "dcgan-fashion-mnist-hinge vae-fashion-mnist-bernoulli", "ZOO_BENCH": ""}
    done = subprocess.run(["bash", "scripts/zoo-gpu.sh", str(out), "60"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    files = sorted(out.iterdir())
    assert 0 < len(files) <= 8 and all(f.stat().st_size <= 16 * 2**20 for f in files), files
    lines = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert sorted(line["entry"] for line in lines) == ["dcgan-fashion-mnist-hinge", "vae-fashion-mnist-bernoulli"]
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    parts = b"".join(p.read_bytes() for p in sorted(out.glob("zoo.tgz.*")))
    (tmp_path / "zoo.tgz").write_bytes(parts)
    with tarfile.open(tmp_path / "zoo.tgz") as tar:
        tar.extractall(unpacked, filter="data")
    assert sorted(install(unpacked, folder=tmp_path / "zoo")) == ["dcgan-fashion-mnist-hinge", "vae-fashion-mnist-bernoulli"]


def test_the_readme_table_is_the_manifests():
    from course_lib.zoo.__main__ import write_readme

    assert write_readme(check=True), "README.md's model-zoo table is out of date: python -m course_lib.zoo readme"


def test_a_time_limit_stops_training_and_still_saves_and_measures(tmp_path, real_data, capsys):
    from course_lib.recipes.zoo import train_entry

    entry = train_entry("vae-fashion-mnist-bernoulli", device="cpu", out=tmp_path, profile="smoke", steps=100_000,
                        time_limit=1.0)
    assert entry["train_status"] == "interrupted" and 0 < entry["steps"] < 100_000
    assert "binarised_elbo_nats" in entry["figures"] and load_pretrained("vae-fashion-mnist-bernoulli", folder=tmp_path)


def test_zoo_finish_applies_the_steps_an_entry_was_trained_without(tmp_path, real_data, capsys):
    from course_lib.recipes.zoo import train_entry
    from course_lib.zoo.__main__ import main
    from course_lib.zoo.store import _write_manifest

    name = "vae-fashion-mnist-logistic256"
    train_entry(name, device="cpu", out=tmp_path, profile="smoke", steps=5)
    entries = manifest(tmp_path)
    entries[name].pop("finished")  # as an entry trained before the recipe had the step
    _write_manifest(entries, tmp_path)
    assert main(["finish", name, "--profile", "smoke", "--folder", str(tmp_path)]) == 0
    entry = manifest(tmp_path)[name]
    assert entry["finished_later"]["steps"] == ["match_prior_scale"] and len(entry["finished"]["match_prior_scale"]) == 16
    assert entry["figures"]["entry"] == name and load_pretrained(name, folder=tmp_path)
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["entry"] == name  # its bench line
