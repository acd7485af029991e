import os
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
    n = torch.get_num_threads()
    for part in ("python ", f"torch {torch.__version__}", "torchvision ", "device cpu |", f"| {n} CPU thread",
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


def fresh_python(code: str, cwd):
    """Run `code` in a fresh interpreter (nothing of this test process imported), in `cwd`."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a fresh interpreter has to import torch: seconds
def test_import_has_no_side_effects(tmp_path):
    code = ("import course_lib, torch, importlib, pkgutil\n"
            "for m in pkgutil.walk_packages(course_lib.__path__, 'course_lib.'):\n"  # every module: models, recipes, ...
            "    if m.name not in ('course_lib.__main__', 'course_lib.grading.__main__', 'course_lib.grading.kernel_start'):\n"
            "        importlib.import_module(m.name)\n"
            "missing = [n for n in course_lib.__all__ if not hasattr(course_lib, n)]\n"
            "assert not missing, missing\n"
            "assert not torch.are_deterministic_algorithms_enabled()\n")
    done = fresh_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # nothing printed
    assert list(tmp_path.iterdir()) == []  # no data folder, no files


@pytest.mark.slow
def test_training_and_bench_import_without_the_notebook_stack(tmp_path):
    """The GPU machine has torch and the science stack but no jupyter, ipywidgets or nbformat: every recipe, the
    bench and the zoo must import there (a lazy `import ipywidgets` would only fail on the device)."""
    code = ("import sys\n"
            "for name in ('ipywidgets', 'IPython', 'ipykernel', 'jupyter_client', 'nbformat', 'nbclient', 'nbval'):\n"
            "    sys.modules[name] = None\n"
            "import course_lib.bench as bench, course_lib.zoo, course_lib.zoo.__main__, course_lib.recipes.zoo\n"
            "assert {'dcgan', 'cgan', 'vae', 'pixelcnn', 'metrics', 'zoo'} <= set(bench.find_benchmarks())\n")
    done = fresh_python(code, tmp_path)
    assert done.returncode == 0, done.stderr


# -- CPU threads ------------------------------------------------------------------------------------------
from course_lib import runtime  # noqa: E402


@pytest.fixture
def restore_threads():
    before, mode = torch.get_num_threads(), dict(runtime._threads)
    yield
    torch.set_num_threads(before)
    runtime._threads.update(mode)


def test_setup_threads_fixed_and_said(capsys, restore_threads):
    """Each fixed count is set and said, whatever the count was before (2 -> 1 -> 2), and never recounted."""
    torch.set_num_threads(2)
    setup(profile="smoke", threads=1)
    assert torch.get_num_threads() == 1 and "| 1 CPU thread (fixed) |" in capsys.readouterr().out
    runtime.follow_free_cores()  # a fixed count is never recounted
    assert torch.get_num_threads() == 1
    setup(profile="smoke", threads=2)
    assert torch.get_num_threads() == 2 and "| 2 CPU threads (fixed) |" in capsys.readouterr().out
    runtime.follow_free_cores()
    assert torch.get_num_threads() == 2


def test_threads_from_env_and_bad_values(monkeypatch, restore_threads):
    monkeypatch.setenv(runtime.THREADS_VAR, "1")
    assert runtime.set_threads() == 1 and runtime.threads_mode() == "fixed"
    for bad in ("two", "0"):  # from the environment
        monkeypatch.setenv(runtime.THREADS_VAR, bad)
        with pytest.raises(ValueError, match="positive int or 'auto'"):
            runtime.set_threads()
    for bad in (0, -1, 1.5, True):  # from setup(threads=...)
        with pytest.raises(ValueError, match="positive int or 'auto'"):
            runtime.set_threads(bad)


def test_auto_threads_leave_the_cores_other_processes_use(monkeypatch, restore_threads):
    """'auto' counts the cores other processes keep busy (machine busy time less this process's own) and
    uses the rest, never fewer than one; the training loop recounts every RECHECK_S seconds."""
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 4)
    # samples: (time, busy jiffies, total jiffies, own jiffies); 100 jiffies of wall time = 400 on 4 cores
    idle = [(0.0, 0, 0, 0), (1.0, 0, 400, 0)]
    one_other = [(0.0, 0, 0, 0), (1.0, 100, 400, 0)]
    we_run_two = [(0.0, 0, 0, 0), (1.0, 200, 400, 200)]  # only our own threads: nobody else
    three_others = [(0.0, 0, 0, 0), (1.0, 390, 400, 0)]
    for samples, expected in ((idle, 4), (one_other, 3), (we_run_two, 4), (three_others, 1)):
        it = iter(samples)
        monkeypatch.setattr(runtime, "_cpu_sample", lambda: next(it))
        monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
        assert runtime.set_threads("auto") == expected, samples
        assert runtime.threads_mode() == "auto"
    # while training: a competitor appears, and the next recount (RECHECK_S later) gives its core up
    runtime.set_threads(2)
    runtime._threads.update(mode="auto", last=(0.0, 0, 0, 0))
    monkeypatch.setattr(runtime, "_cpu_sample", lambda: (runtime.RECHECK_S + 1, 200, 400, 0))
    monkeypatch.setattr(runtime.time, "monotonic", lambda: runtime.RECHECK_S + 1)
    runtime.follow_free_cores()
    assert torch.get_num_threads() == 2  # 2 of 4 cores busy with others: 2 free
    monkeypatch.setattr(runtime.time, "monotonic", lambda: runtime.RECHECK_S + 2)  # too soon: no recount
    monkeypatch.setattr(runtime, "_cpu_sample", lambda: pytest.fail("recounted before RECHECK_S"))
    runtime.follow_free_cores()


def test_fixed_threads_hold_inside_and_restore_after(monkeypatch, restore_threads):
    runtime.set_threads(2)
    runtime._threads.update(mode="auto", last=None)
    with runtime.fixed_threads(1):
        assert torch.get_num_threads() == 1 and runtime.threads_mode() == "fixed"
        monkeypatch.setattr(runtime, "_cpu_sample", lambda: pytest.fail("a fixed count is never recounted"))
        runtime.follow_free_cores()
    assert torch.get_num_threads() == 2 and runtime.threads_mode() == "auto"
    with runtime.fixed_threads(None):  # None: the setting is left alone
        assert torch.get_num_threads() == 2 and runtime.threads_mode() == "auto"


def test_auto_threads_without_proc_use_every_core(monkeypatch, restore_threads):
    monkeypatch.setattr(runtime, "_cpu_sample", lambda: None)
    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    assert runtime.set_threads("auto") == runtime.usable_cores()


def test_cpu_sample_reads_this_machine():
    a = runtime._cpu_sample()
    if a is None:
        pytest.skip("no /proc here")
    b = runtime._cpu_sample()
    assert b[2] >= a[2] >= a[1] >= 0 and b[3] >= a[3] >= 0


@pytest.mark.slow  # a fresh interpreter: seconds
def test_importing_course_lib_caps_openmp_spinning_before_torch(tmp_path):
    """OpenMP reads its environment when torch loads: course_lib sets it first, unless the user did; and
    setup() says so when torch was imported first."""
    import subprocess
    import sys

    code = ("import os\nimport course_lib\nimport torch\n"
            "print(os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'], course_lib.OPENMP_ENV_APPLIED)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["10000", "1", "True"], done.stderr
    env["GOMP_SPINCOUNT"] = "5"  # the user's own setting wins
    late = ("import torch\nimport course_lib\nimport os\nprint(os.environ['GOMP_SPINCOUNT'], course_lib.OPENMP_ENV_APPLIED)\n"
            "course_lib.setup(profile='smoke', device='cpu')\n")
    done = subprocess.run([sys.executable, "-c", late], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["5", "False"] and "imported before course_lib" in lines[-1], done.stdout + done.stderr
