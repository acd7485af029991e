import gzip
import shutil
import struct

import pytest
import torch

from course_lib import data as data_mod
from course_lib.data import Batches, DataNotFoundError, ImageData, ensure_dataset, load_data

IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_images(images: torch.Tensor) -> bytes:
    n, h, w = images.shape
    return struct.pack(">iiii", 2051, n, h, w) + images.to(torch.uint8).numpy().tobytes()


def idx_labels(labels: torch.Tensor) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.to(torch.uint8).numpy().tobytes()


def tiny_mnist(n_train=12, n_test=5, h=28, w=28):
    """Small uint8 images with known pixels: image i is filled with 20*i (+ a marker pixel)."""
    out = {}
    for split, n, img_name, lab_name in [("train", n_train, IDX_NAMES[0], IDX_NAMES[1]),
                                         ("test", n_test, IDX_NAMES[2], IDX_NAMES[3])]:
        images = (torch.arange(n) * 20 % 256).to(torch.uint8).view(n, 1, 1).expand(n, h, w).clone()
        images[:, 0, 0] = 255
        labels = torch.arange(n) % 10
        out[split] = (images, labels)
        out[img_name], out[lab_name] = idx_images(images), idx_labels(labels)
    return out


def write_idx(folder, files, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_NAMES:
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(files[name])
        else:
            (folder / name).write_bytes(files[name])


def assert_matches(d: ImageData, images: torch.Tensor, labels: torch.Tensor):
    assert d.images.shape == (len(images), 1, 28, 28) and d.images.dtype == torch.float32
    assert d.labels.dtype == torch.int64
    torch.testing.assert_close(d.images, images.unsqueeze(1).float() / 255, rtol=0, atol=0)
    assert torch.equal(d.labels, labels)


# -- the real MNIST path through torchvision ----------------------------------------------------
def test_idx_files_in_the_data_folder_load_through_torchvision(isolated_env):
    files = tiny_mnist()
    write_idx(isolated_env / "MNIST" / "raw", files, gz=False)  # torchvision's own layout
    train = load_data("mnist")
    test = load_data("mnist", split="test")
    assert_matches(train, *files["train"])
    assert_matches(test, *files["test"])
    assert train.name == "mnist" and train.split == "train" and test.split == "test"
    assert train.classes == tuple("0123456789") and train.shape == (1, 28, 28)
    assert train.source.endswith("MNIST/raw")


@pytest.mark.parametrize("where", ["named", "root"])
def test_gzipped_files_in_the_data_folder_are_imported(isolated_env, where):
    files = tiny_mnist()
    write_idx(isolated_env / "mnist" if where == "named" else isolated_env, files)
    assert_matches(load_data("mnist"), *files["train"])
    assert sorted(p.name for p in (isolated_env / "MNIST" / "raw").iterdir()) == sorted(IDX_NAMES)


def test_system_copy_is_decompressed_into_the_data_folder(tmp_path, isolated_env, monkeypatch):
    system = tmp_path / "system"
    files = tiny_mnist()
    write_idx(system / "mnist", files, gz=True)
    monkeypatch.setenv("COURSE_SYSTEM_DATA", f"{tmp_path / 'nothing-here'}:{system}")
    root = ensure_dataset("mnist", download=False)
    assert root == isolated_env
    raw = isolated_env / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_NAMES)  # no .part files left
    for name in IDX_NAMES:
        assert (raw / name).read_bytes() == files[name]
    assert sorted(p.name for p in (system / "mnist").iterdir()) == sorted(f"{n}.gz" for n in IDX_NAMES)
    assert_matches(load_data("mnist", split="test", download=False), *files["test"])
    # once imported, the system copy is no longer needed
    shutil.rmtree(system)
    assert_matches(load_data("mnist", download=False), *files["train"])


def test_a_failed_copy_leaves_no_partial_file(tmp_path, isolated_env, monkeypatch):
    system = tmp_path / "system"
    files = tiny_mnist()
    write_idx(system / "mnist", files, gz=True)
    monkeypatch.setenv("COURSE_SYSTEM_DATA", str(system))
    real_copy = shutil.copyfileobj

    def copy_then_fail(src, dst, *args):
        dst.write(src.read(100))  # half a file on disk, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError, match="No space left"):
        ensure_dataset("mnist", download=False)
    raw = isolated_env / "MNIST" / "raw"
    assert not raw.exists() or list(raw.iterdir()) == []
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    assert_matches(load_data("mnist", download=False), *files["train"])  # a retry succeeds


def test_a_corrupt_gzip_is_not_left_half_copied(tmp_path, isolated_env, monkeypatch):
    system = tmp_path / "system"
    write_idx(system / "mnist", tiny_mnist(), gz=True)
    gz = system / "mnist" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:20])  # truncated download
    monkeypatch.setenv("COURSE_SYSTEM_DATA", str(system))
    with pytest.raises(EOFError):
        ensure_dataset("mnist", download=False)
    raw = isolated_env / "MNIST" / "raw"
    assert "t10k-labels-idx1-ubyte" not in {p.name for p in raw.iterdir()}
    assert not [p for p in raw.iterdir() if p.suffix == ".part"]


def test_an_incomplete_copy_is_skipped(tmp_path, isolated_env, monkeypatch):
    system = tmp_path / "system"
    write_idx(system / "mnist", tiny_mnist())
    (system / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv("COURSE_SYSTEM_DATA", str(system))
    with pytest.raises(DataNotFoundError):
        ensure_dataset("mnist", download=False)
    assert not (isolated_env / "MNIST").exists()


# -- nothing anywhere ---------------------------------------------------------------------------
def test_no_copy_and_no_network_gives_the_clear_error(isolated_env, no_network, capsys):
    with pytest.raises(DataNotFoundError) as e:
        load_data("fashion-mnist")
    msg = str(e.value)
    assert msg.startswith("Could not find the 'fashion-mnist' dataset.")
    tried = msg.split("Tried:")[1].split("To fix")[0]
    assert f"torchvision layout in {isolated_env / 'FashionMNIST' / 'raw'}" in tried
    assert f"IDX files (.gz or not) in {isolated_env / 'fashion-mnist'}" in tried
    assert f"IDX files (.gz or not) in {isolated_env}\n" in tried
    assert "torchvision download: failed" in tried
    fixes = msg.split("To fix, do one of:")[1]
    assert "1. install the Debian package: sudo apt-get install dataset-fashion-mnist" in fixes
    assert f"2. put the four IDX files" in fixes and str(isolated_env / "fashion-mnist") in fixes
    assert "$COURSE_DATA" in fixes and "train-images-idx3-ubyte" in fixes
    assert "3. connect to the internet" in fixes
    assert "load_data('digits')" in fixes
    assert isinstance(e.value, FileNotFoundError)  # callers may catch the builtin


def test_system_dirs_are_listed_in_what_was_tried(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("COURSE_SYSTEM_DATA", str(tmp_path / "sys"))
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "sys" / "mnist")):
        ensure_dataset("mnist")


def test_download_false_does_not_touch_the_network(monkeypatch):
    import torchvision.datasets as tvd

    def boom(*a, **k):
        raise AssertionError("must not download")

    monkeypatch.setattr(tvd, "MNIST", boom)
    with pytest.raises(DataNotFoundError, match=r"skipped \(download=False\)"):
        load_data("mnist", download=False)


def test_data_dir_defaults_to_the_repository(monkeypatch, isolated_env):
    assert data_mod.data_dir() == isolated_env
    monkeypatch.delenv("COURSE_DATA")
    assert data_mod.data_dir() == data_mod.REPO_ROOT / "data"


def test_cli_reports_missing_data(capsys, no_network):
    assert data_mod.main(["mnist", "--no-download"]) == 1
    assert "Could not find the 'mnist' dataset" in capsys.readouterr().out
    assert data_mod.main(["digits"]) == 0
    assert "digits: ready" in capsys.readouterr().out


# -- bad input ----------------------------------------------------------------------------------
def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar10'. Choose one of \['digits', 'fashion-mnist', 'mnist'\]"):
        load_data("cifar10")
    with pytest.raises(ValueError, match="Unknown dataset"):
        ensure_dataset("imagenet")


def test_dataset_names_are_forgiving():
    assert load_data("Digits", size=3).name == "digits"
    assert data_mod._info("Fashion_MNIST").name == "fashion-mnist"


def test_bad_split():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_data("digits", split="valid")


# -- digits and subsets -------------------------------------------------------------------------
def test_digits_always_works_offline(no_network):
    train, test = load_data("digits"), load_data("digits", split="test")
    assert (len(train), len(test)) == (1497, 300)
    for d in (train, test):
        assert d.images.shape[1:] == (1, 8, 8) and d.images.dtype == torch.float32
        assert 0 <= d.images.min() and d.images.max() <= 1 and d.images.max() == 1
        assert set(d.labels.tolist()) == set(range(10))
    # the split is fixed and the two halves are disjoint
    assert torch.equal(load_data("digits").images, train.images)
    flat = lambda d: {tuple(x.flatten().tolist()) for x in d.images}  # noqa: E731
    assert len(flat(train) & flat(test)) < 10  # only duplicate-looking digits may coincide


def test_subset_is_random_reproducible_and_a_true_subset():
    full = load_data("digits")
    a = load_data("digits", size=100, seed=1)
    b = load_data("digits", size=100, seed=1)
    c = load_data("digits", size=100, seed=2)
    assert len(a) == 100 and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)
    rows = {tuple(x.flatten().tolist()) + (int(y),) for x, y in zip(full.images, full.labels)}
    assert all(tuple(x.flatten().tolist()) + (int(y),) in rows for x, y in zip(a.images, a.labels))
    assert len(set(a.labels.tolist())) > 5  # not the first 100 of one class


def test_subset_edge_cases():
    d = load_data("digits", split="test")
    assert d.subset(None) is d and d.subset(300) is d and d.subset(10_000) is d
    for bad in (0, -5):
        with pytest.raises(ValueError, match="subset size must be positive"):
            d.subset(bad)


def test_image_data_validates_shapes():
    with pytest.raises(AssertionError, match=r"\(N, 1, H, W\)"):
        ImageData("x", "train", torch.zeros(4, 8, 8), torch.zeros(4), ())
    with pytest.raises(AssertionError, match="same length"):
        ImageData("x", "train", torch.zeros(4, 1, 8, 8), torch.zeros(3), ())


def test_image_data_to_and_batches():
    d = load_data("digits", size=50, device="cpu")
    moved = d.to("cpu")
    assert moved.name == d.name and moved.classes == d.classes and torch.equal(moved.images, d.images)
    xb, yb = next(iter(d.batches(16)))
    assert xb.shape == (16, 1, 8, 8) and yb.shape == (16,)
    (x_only,) = next(iter(d.batches(16, labels=False)))
    assert x_only.shape == (16, 1, 8, 8)


# -- Batches ------------------------------------------------------------------------------------
def epoch(b):
    return [batch for batch in b]


def test_batches_shapes_and_each_epoch_a_permutation():
    x = torch.arange(10).float().view(10, 1) * torch.ones(10, 3)
    y = torch.arange(10)
    b = Batches((x, y), batch_size=4, drop_last=False)
    assert len(b) == 3
    orders = []
    for _ in range(3):
        batches = epoch(b)
        assert [len(yb) for _, yb in batches] == [4, 4, 2]
        for xb, yb in batches:
            assert xb.shape == (len(yb), 3) and torch.equal(xb[:, 0].long(), yb)  # rows stay paired
        seen = torch.cat([yb for _, yb in batches])
        assert sorted(seen.tolist()) == list(range(10))  # every item exactly once
        orders.append(seen.tolist())
    assert b.epoch == 3
    assert len({tuple(o) for o in orders}) == 3  # a fresh order each epoch


def test_batches_reproducible_with_a_seed():
    y = torch.arange(100)
    a, b, c = Batches(y, 10, seed=5), Batches(y, 10, seed=5), Batches(y, 10, seed=6)
    for _ in range(2):
        ea, eb, ec = epoch(a), epoch(b), epoch(c)
        assert all(torch.equal(u, v) for u, v in zip(ea, eb))
        assert not all(torch.equal(u, v) for u, v in zip(ea, ec))
    assert isinstance(ea[0], torch.Tensor)  # a lone tensor in, lone tensors out


def test_batches_drop_last():
    b = Batches(torch.arange(10), batch_size=4)
    assert len(b) == 2
    batches = epoch(b)
    assert [len(t) for t in batches] == [4, 4]
    assert len(set(torch.cat(batches).tolist())) == 8


def test_batches_errors():
    with pytest.raises(ValueError, match="at least one tensor"):
        Batches((), 4)
    with pytest.raises(ValueError, match=r"same length, got \[10, 9\]"):
        Batches((torch.zeros(10), torch.zeros(9)), 4)
    for bs in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be positive"):
            Batches(torch.zeros(10), bs)
    with pytest.raises(ValueError, match="larger than the dataset.*drop_last=False"):
        Batches(torch.zeros(10), 11)
    assert [len(t) for t in Batches(torch.zeros(10), 11, drop_last=False)] == [10]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 45), drop_last=st.booleans(), seed=st.integers(0, 2**31))
def test_batches_cover_the_data_for_any_size(n, batch_size, drop_last, seed):
    if drop_last and batch_size > n:
        with pytest.raises(ValueError):
            Batches(torch.arange(n), batch_size, seed=seed, drop_last=drop_last)
        return
    b = Batches(torch.arange(n), batch_size, seed=seed, drop_last=drop_last)
    for _ in range(2):
        batches = epoch(b)
        assert len(batches) == len(b)
        assert all(len(t) == batch_size for t in batches[:-1]) and 0 < len(batches[-1]) <= batch_size
        items = torch.cat(batches).tolist()
        assert len(set(items)) == len(items)  # no repeats within an epoch
        assert len(items) == (n // batch_size * batch_size if drop_last else n)
