"""course_lib: the small, tested library behind the deep generative models course.

Importing it has no side effects: nothing is seeded, downloaded or printed until you call
`setup()`, which every notebook does in its first code cell.
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import Batches, DataNotFoundError, ImageData, load_data
from .exercises import check
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
    "check",
]
