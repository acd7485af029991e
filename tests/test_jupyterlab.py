"""`make lab` serves JupyterLab on the course: start it on 127.0.0.1 and list notebooks over its REST API;
and every notebook is committed in the form JupyterLab keeps, so it opens without unsaved changes."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for folder in ("lectures", "labs", "solutions") for p in (ROOT / folder).glob("*.ipynb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(args: list[str]) -> list[str]:
    """The real `make lab` when this test runs from the Makefile's .venv, else the same jupyter command."""
    venv = ROOT / ".venv"
    if shutil.which("make") and (venv / ".installed").exists() and Path(sys.prefix).resolve() == venv.resolve():
        return ["make", "-C", str(ROOT), "lab", "LAB_ARGS=" + " ".join(args)]
    root = ["--allow-root"] if os.geteuid() == 0 else []  # as the Makefile does
    return [sys.executable, "-m", "jupyterlab", *root, *args]


@pytest.mark.slow
def test_make_lab_serves_the_course(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    args = ["--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={ROOT}", "--ServerApp.port_retries=0"]
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_DATA", "COURSE_SYSTEM_DATA")}  # the real data
    env = dict(env, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), IPYTHONDIR=str(tmp_path / "ipython"))
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(lab_command(args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        listing, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/lectures",
                                             headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    listing = json.load(r)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert listing is not None, f"JupyterLab did not answer; log:\n{(tmp_path / 'lab.log').read_text()[-3000:]}"
        names = {item["name"] for item in listing["content"]}
        assert "00_getting_started.ipynb" in names, names
        req = urllib.request.Request(f"http://127.0.0.1:{port}/lab", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
        # Without the token the API refuses: the server is not open to anyone on the machine.
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/lectures", timeout=5)
        assert denied.value.code == 403
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def kernel_language_info():
    """The kernel's language_info, read in a child process: importing ipykernel here would make tqdm.auto in
    this test process believe it runs in a notebook, and later tests' progress bars print nothing."""
    import json
    import subprocess
    import sys

    code = "import json; from ipykernel.ipkernel import IPythonKernel as K; print(json.dumps(K.language_info))"
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     timeout=120).stdout)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_notebooks_are_committed_as_jupyterlab_keeps_them(path, kernel_language_info):
    """When JupyterLab opens a notebook it writes the kernel's kernelspec and language_info into it,
    and the widget manager restores any saved widget state; each marks the notebook unsaved before
    the student has touched it (tests/test_browser.py checks the tab itself, for the lectures)."""
    from jupyter_client.kernelspec import KernelSpecManager

    meta = nbformat.read(path, as_version=4).metadata
    spec = KernelSpecManager().get_kernel_spec("python3")
    fix = "set it with course_lib.notebooks.as_jupyterlab_keeps (`make notebooks` does, for lectures)"
    assert meta.get("kernelspec") == {"name": "python3", "display_name": spec.display_name, "language": spec.language}, \
        f"{path.name}: JupyterLab rewrites the kernelspec {meta.get('kernelspec')} on open; {fix}"
    # all but the version: the kernel reports its interpreter's exact Python version, the student's choice
    kernel_info = {k: v for k, v in kernel_language_info.items() if k != "version"}
    assert {k: v for k, v in meta.get("language_info", {}).items() if k != "version"} == kernel_info, \
        f"{path.name}: JupyterLab rewrites language_info {meta.get('language_info')} with the kernel's {kernel_info}"
    assert "version" in meta.language_info, f"{path.name}: language_info has no version; JupyterLab adds the kernel's"
    assert "widgets" not in meta, (f"{path.name}: saved widget state in the metadata; the widget manager marks the "
                                   f"notebook unsaved for every widget it restores on open; {fix}")


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything it started (make, jupyter, kernels): its whole process group."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
