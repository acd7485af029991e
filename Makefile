# Every target wraps a plain Python command; `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# OpenMP: cap how long torch's idle CPU threads spin, so a busy core elsewhere does not stall every op
# (course_lib/runtime.py says why, scripts/thread_ab.py measured it). Every target's Python, and the
# kernels `make lab` starts, inherit these; course_lib sets the same defaults when imported first.
export GOMP_SPINCOUNT ?= 10000
export KMP_BLOCKTIME ?= 1
LOCK   := requirements.lock

.PHONY: help venv lock data lab test labs notebooks bench grade zoo-gpu zoo-install clean

help:
	@echo "make lab        set up (.venv, data) and start JupyterLab on the course"
	@echo "make test       set up, then unit tests + every notebook in the smoke profile"
	@echo "make lock       re-resolve requirements.lock from pyproject.toml (LOCK_ARGS=--upgrade: newest allowed versions)"
	@echo "make labs       regenerate labs/ from solutions/"
	@echo "make notebooks  re-run lectures/ (outputs saved) and solutions/ (timed) in PROFILE=cpu; update the README map"
	@echo "make bench      MODEL=all PROFILE=cpu: print one JSON line per run, appended to benchmarks.jsonl"
	@echo "make zoo-gpu    ZOO_OUT=DIR: the whole model zoo trained and measured in one GPU call (no venv: the machine's python)"
	@echo "make zoo-install ZOO_IN=DIR: land what zoo-gpu wrote (weights + manifest into the zoo, lines into benchmarks.jsonl)"
	@echo "make grade      LAB=labs/00_getting_started.ipynb SUBMISSIONS='subs/*.ipynb' OUT=grades [GRADE_ARGS='--cell-timeout 60 --jobs 2']"

# pyproject.toml keeps the ranges; the course installs the exact versions in $(LOCK) (a change to either reinstalls).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# The lock is resolved for CPython 3.11 on Linux (CI's machine) by pip-compile, which runs pip's own resolver
# with the machine's pip settings, in a throwaway venv. Pins already in $(LOCK) are kept while pyproject.toml
# allows them; LOCK_ARGS=--upgrade (or --upgrade-package torch) moves them. --strip-extras: pip -c takes no extras.
PIP_TOOLS ?= pip-tools==7.7.0
lock:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11) and sys.platform == "linux", "the lock is for CPython 3.11 on Linux: make lock PYTHON=python3.11"'
	tools=$$(mktemp -d) && trap 'rm -rf "$$tools"' EXIT && \
	$(PYTHON) -m venv "$$tools" && "$$tools/bin/pip" install --quiet $(PIP_TOOLS) && \
	CUSTOM_COMPILE_COMMAND="make lock" "$$tools/bin/pip-compile" --quiet --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --output-file $(LOCK) $(LOCK_ARGS) pyproject.toml

data: venv
	$(PY) -m course_lib data fashion-mnist

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# jupyter-config/ holds the course's JupyterLab defaults (widget state saved with the notebook).
LAB_CONFIG := $(CURDIR)/jupyter-config$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH),)
lab: data
	JUPYTER_CONFIG_PATH=$(LAB_CONFIG) $(VENV)/bin/jupyter lab $(ROOT_FLAG) $(LAB_ARGS)

test: data
	$(PY) -m course_lib.notebooks labs --check
	COURSE_PROFILE=smoke $(PY) -m pytest tests lectures solutions \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) --durations=30 $(PYTEST_ARGS)

CELL_TIMEOUT ?= 300

labs: venv
	$(PY) -m course_lib.notebooks labs

PROFILE ?= cpu
notebooks: data
	$(PY) -m course_lib.notebooks execute lectures solutions --profile $(PROFILE)

MODEL ?= all
bench: data
	$(PY) -m course_lib.bench $(MODEL) --profile $(PROFILE) --out benchmarks.jsonl

# The GPU machine has torch but no venv and no network: this target uses its python, not $(PY).
ZOO_OUT ?= zoo-out
zoo-gpu:
	PYTHON=$(PYTHON) scripts/zoo-gpu.sh $(ZOO_OUT)

zoo-install: venv
	test -d "$(ZOO_IN)" || { echo "make zoo-install ZOO_IN=DIR, the folder zoo-gpu wrote"; exit 1; }
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cat $(ZOO_IN)/zoo.tgz.* | tar -xz -C "$$tmp" && \
	$(PY) -m course_lib.zoo install "$$tmp" && cat $(ZOO_IN)/bench.jsonl >> benchmarks.jsonl

OUT ?= grades
grade: venv
	$(PY) -m course_lib.grading $(LAB) $(SUBMISSIONS) --out $(OUT) $(GRADE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
