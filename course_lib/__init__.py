"""course_lib: the small, tested library behind the deep generative models course.

Importing it has no side effects beyond two OpenMP settings it puts in the environment (if unset) before
torch loads: nothing is seeded, downloaded or printed until you call `setup()`, which every notebook does
in its first code cell.
"""
import os as _os
import sys as _sys

# The one thing importing course_lib does: before torch loads, cap how long OpenMP's idle threads spin
# (GNU libgomp on Linux wheels: GOMP_SPINCOUNT; LLVM libomp on macOS: KMP_BLOCKTIME, in ms) unless you
# set it yourself. OpenMP reads these once, when torch is imported, so a notebook imports course_lib
# first. See runtime.set_threads for why; `make` and CI set the same values.
OPENMP_ENV = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}
OPENMP_ENV_APPLIED = "torch" not in _sys.modules  # False: torch loaded first, so these came too late
for _name, _value in OPENMP_ENV.items():
    _os.environ.setdefault(_name, _value)

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .data import Batches, DataNotFoundError, ImageData, load_data
from .exercises import check
from .hints import hint
from .plots import LivePlot, image_grid, plot_history, show_images
from .profiles import PROFILES, Profile, get_profile
from .runtime import Course, setup
from .runs import load_or_train
from .train import NonFiniteLossError, Phase, TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "setup", "Course", "Profile", "PROFILES", "get_profile",
    "load_data", "ImageData", "Batches", "DataNotFoundError",
    "Trainer", "Phase", "TrainConfig", "NonFiniteLossError", "load_or_train",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
    "show_images", "image_grid", "plot_history", "LivePlot",
    "check", "hint",
]
