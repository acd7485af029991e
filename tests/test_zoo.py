"""The model zoo: every shipped entry loads offline, passes its checksum and still measures what its
manifest says; `bench --save` + `zoo add` make an entry; a changed, missing or unknown file says how to fix."""
import json
import shutil

import pytest
import torch

from course_lib import setup
from course_lib.zoo import ZOO, ZooError, add_entry, load_pretrained, manifest, match_line

ENTRIES = sorted(manifest())


def test_the_zoo_ships_entries_with_their_record():
    assert ENTRIES, "course_lib/assets/zoo/manifest.json lists no entry"
    total = sum(e["bytes"] for e in manifest().values())
    assert total < 40e6, f"the zoo weighs {total / 1e6:.1f} MB; keep it under 40 MB in git"
    for name, e in manifest().items():
        for key in ("model_class", "config", "seed", "steps", "images_seen", "train_seconds", "device", "torch",
                    "command", "sha256", "bench", "profile"):
            assert key in e, (name, key)
        assert e["bench"]["train_status"] == "done", f"{name} was stopped before the end of its run"


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_loads_offline_in_eval_mode(name, no_network):
    model = load_pretrained(name)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def _half_check(name):
    check = manifest()[name].get("half_check")
    if not check:
        pytest.skip(f"{name} records no half-precision check")
    return check


@pytest.mark.parametrize("name", [n for n in ENTRIES if n.startswith(("dcgan-", "cgan-") ) and n.endswith(
    ("-non-saturating", "-label"))])
def test_gan_entries_measure_what_the_manifest_says(name, real_data):
    """The samples of the shipped weights (the same noise) land on the manifest's FD: a swapped or broken file does not."""
    from course_lib.metrics import evaluate

    check = _half_check(name)
    setup(profile="smoke", quiet=True)
    model, n = load_pretrained(name), check["n"]
    kw = {"cond": torch.arange(n) % 10} if name.startswith("cgan-") else {}
    x = model.sample(n, generator=torch.Generator().manual_seed(3), **kw)
    fd = evaluate(x, "fashion-mnist", n=n)["fd"]
    assert fd == pytest.approx(check["float16"]["fd"], rel=0.02), (name, fd, check)


def test_pixelcnn_entry_measures_its_bits_per_dim(real_data):
    from course_lib.recipes.pixelcnn import evaluate_bpd

    name = "pixelcnn-fashion-mnist-gated"
    check = _half_check(name)
    course = setup(profile="smoke", quiet=True)
    test = course.load_data("fashion-mnist", "test", size=check["n"])
    assert evaluate_bpd(load_pretrained(name), test) == pytest.approx(check["float16"]["test_bpd"], abs=0.01)


def test_a_changed_missing_or_unknown_entry_says_how_to_fix(tmp_path):
    name = ENTRIES[0]
    entry = manifest()[name]
    shutil.copy(ZOO / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(ZOO / entry["file"], tmp_path / entry["file"])
    load_pretrained(name, folder=tmp_path)
    data = bytearray((tmp_path / entry["file"]).read_bytes())
    data[-1] ^= 1
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"changed or damaged.*git checkout.*course_lib.bench"):
        load_pretrained(name, folder=tmp_path)
    (tmp_path / entry["file"]).unlink()
    with pytest.raises(ZooError, match=r"missing.*course_lib.bench"):
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
