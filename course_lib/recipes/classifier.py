"""The classifier's recipe (lecture 00): training it on a dataset with the course's sizes, and its bench.

    model, trainer = train_classifier(course, course.load_data("fashion-mnist"))
    model.accuracy(course.load_data("fashion-mnist", "test"))

The evaluation classifiers that the sample metrics use are trained by `course_lib.evaluators`, on
a recipe of their own (fixed sizes, not the profile's).
"""
from __future__ import annotations

from ..data import ImageData
from ..models.classifier import Classifier, ClassifierConfig
from ..runtime import Course
from ..train import TrainConfig, Trainer
from .common import quiet, training_figures

__all__ = ["train_classifier", "BENCHMARKS"]


def train_classifier(course: Course, data: ImageData, config: ClassifierConfig | None = None,
                     epochs: int | None = None, train_config: TrainConfig | None = None,
                     callback=None) -> tuple[Classifier, Trainer]:
    """Train a Classifier on `data` with the course's one loop; returns (classifier, trainer)."""
    config = config or ClassifierConfig(width=course.profile.width, in_channels=data.shape[0], n_classes=len(data.classes))
    model = Classifier(config, seed=course.seed).to(course.device)
    trainer = Trainer(model, train_config=train_config or TrainConfig(log_every=10), device=course.device)
    batch = min(course.profile.batch_size, len(data))
    trainer.fit(data.to(course.device).batches(batch, seed=course.seed), epochs=epochs or course.profile.epochs,
                callback=callback)
    return model, trainer


def bench_classifier(course: Course) -> dict:
    """Fashion-MNIST classifier: images/s and test accuracy after the profile's epochs."""
    p = course.profile
    train, test = course.load_data("fashion-mnist", "train"), course.load_data("fashion-mnist", "test")
    model, trainer = train_classifier(course, train, train_config=quiet())
    return {"dataset": "fashion-mnist", "train_images": len(train), "epochs": p.epochs, **training_figures(trainer),
            "final_loss": round(trainer.history["loss"][-1], 4), "test_accuracy": round(model.accuracy(test), 4)}


BENCHMARKS = {"classifier": bench_classifier}
