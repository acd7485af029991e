"""Shared test setup: a headless matplotlib backend and an environment with no course state.

Every test runs with $COURSE_DATA pointing at an empty temporary folder, no system copies of
any dataset ($COURSE_SYSTEM_DATA empty), and no $COURSE_PROFILE or $COURSE_GRADE_DIR, so no
test reads or writes the repository's data/ or depends on the machine it runs on.
"""
import os
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"  # before anything imports matplotlib.pyplot

import course_lib  # noqa: E402,F401  before torch loads, as in a notebook: it sets OpenMP's environment

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests: reproducible in CI (the same examples every run, so a pass or a failure repeats),
# random exploration everywhere else. HYPOTHESIS_PROFILE=explore forces exploration in CI too.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "explore"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    data = tmp_path / "course_data"
    monkeypatch.setenv("COURSE_DATA", str(data))
    monkeypatch.setenv("COURSE_SYSTEM_DATA", "")
    for var in ("COURSE_PROFILE", "COURSE_GRADE_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield data


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist, as CI installs


@pytest.fixture(scope="session")
def fashion_mnist_copy(tmp_path_factory):
    """A course data folder outside the checkout, with Fashion-MNIST decompressed once per session from Debian's copy."""
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip(f"needs the real Fashion-MNIST, and {DEBIAN_FASHION_MNIST} is missing: "
                    "sudo apt-get install dataset-fashion-mnist")
    from course_lib.data import ensure_dataset

    folder = tmp_path_factory.mktemp("fashion_mnist_data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DATA", str(folder))
        mp.setenv("COURSE_SYSTEM_DATA", str(DEBIAN_FASHION_MNIST.parent))
        ensure_dataset("fashion-mnist", download=False)
    return folder


@pytest.fixture
def real_data(fashion_mnist_copy, monkeypatch):
    """The real datasets for a test (and the kernels it starts): Fashion-MNIST from the session's copy, digits
    from scikit-learn; nothing is read from or written to the repository's data/."""
    monkeypatch.setenv("COURSE_DATA", str(fashion_mnist_copy))
    monkeypatch.setenv("COURSE_SYSTEM_DATA", "")
    return fashion_mnist_copy


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails at once, as on a machine with no network."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def pytest_configure(config):
    # Tests use tiny tensors: one thread avoids thread start-up and contention on shared machines.
    import torch

    torch.set_num_threads(1)
