import random

import numpy as np
import pytest
import torch

from course_lib import Course, setup
from course_lib.profiles import PROFILES
from course_lib.runtime import describe, pick_device, seed_everything


def draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_seed_everything_repeats_python_numpy_and_torch():
    seed_everything(123)
    a = draws()
    seed_everything(123)
    b = draws()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    seed_everything(124)
    c = draws()
    assert a[0] != c[0] and a[1] != c[1] and not torch.equal(a[2], c[2])


def test_large_seed_is_accepted():
    seed_everything(2**40)  # numpy only takes 32-bit seeds; it must not crash


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(seed)


def test_setup_is_reproducible(capsys):
    c1 = setup(seed=7, profile="smoke", quiet=True)
    x1 = torch.randn(4)
    g1 = torch.randn(4, generator=c1.generator(offset=1))
    c2 = setup(seed=7, profile="smoke", quiet=True)
    x2 = torch.randn(4)
    g2 = torch.randn(4, generator=c2.generator(offset=1))
    assert torch.equal(x1, x2) and torch.equal(g1, g2)
    assert not torch.equal(torch.randn(4, generator=c2.generator(offset=2)), g2)
    assert capsys.readouterr().out == ""  # quiet


def test_setup_returns_course_and_prints_one_line(capsys):
    course = setup(seed=3, profile="smoke")
    assert isinstance(course, Course)
    assert course.profile is PROFILES["smoke"] and course.seed == 3
    assert course.device == torch.device("cpu")  # no GPU on the test machine
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    for part in ("python ", f"torch {torch.__version__}", "torchvision ", "device cpu (", "threads)",
                 "profile smoke", "seed 3"):
        assert part in out, (part, out)
    assert describe(course) == out.strip()


def test_setup_is_deterministic_by_default():
    setup(profile="smoke", quiet=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_setup_profile_from_env(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    assert setup(quiet=True).profile.name == "gpu"


def test_setup_unknown_profile_says_how_to_fix():
    with pytest.raises(ValueError, match=r"Unknown profile 'huge'.*setup\(profile='smoke'\)"):
        setup(profile="huge", quiet=True)


def test_course_data_dir_follows_env(isolated_env):
    assert setup(profile="smoke", quiet=True).data_dir == isolated_env


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_auto_device_is_cpu_without_gpu():
    expected = "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device("auto") == torch.device(expected)
    assert pick_device(" AUTO ") == torch.device(expected)


def test_explicit_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_says_what_to_do():
    with pytest.raises(ValueError, match=r"no CUDA GPU; use device='auto' or 'cpu'"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        setup(device="cuda:0", quiet=True)


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "tpu", ""])
def test_unknown_device(bad):
    with pytest.raises(ValueError, match=r"Unknown device .*use 'auto', 'cpu'"):
        pick_device(bad)


@pytest.mark.slow  # a fresh interpreter has to import torch: seconds
def test_import_has_no_side_effects(tmp_path):
    import subprocess
    import sys

    code = ("import course_lib, torch\n"
            "from course_lib import bench, checkpoint, data, distributions, exercises, notebooks, plots, profiles, runs, runtime, train\n"
            "from course_lib.models import base, classifier, gan, toy_gan\n"
            "missing = [n for n in course_lib.__all__ if not hasattr(course_lib, n)]\n"
            "assert not missing, missing\n"
            "assert not torch.are_deterministic_algorithms_enabled()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # nothing printed
    assert list(tmp_path.iterdir()) == []  # no data folder, no files
