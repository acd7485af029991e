"""The zoo's recipe: train a registry entry with its family's recipe, save it, and measure the saved file.

    entry = train_entry("vae-fashion-mnist-2d", device="cpu", out="runs/zoo")   # trains, saves, measures
    python -m course_lib.bench zoo --entry dcgan-fashion-mnist-hinge --profile gpu   # the figures of a shipped file

Every figure of an entry is measured on the weights as they were saved (half precision where that moved
no figure, else float32), loaded back from the file: what a lecture gets from `load_pretrained`.
`quick_check` measures a few of them at a size the tests can afford on a CPU, so CI catches a swapped
or broken file. A VQ-VAE's run makes two entries, the VQ-VAE and the PixelCNN prior over its codes
(`ZooRun.saves`): the prior trains on the codes of the VQ-VAE as saved, and the two are measured together
(`load_entry` gives the VQ-VAE with its prior attached), with the lecture's targets checked (`TARGETS`).
"""
from __future__ import annotations

import dataclasses
import math
import platform
import time
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import config_to_dict
from ..data import TEST_SIZES, ImageData
from ..metrics import evaluate
from ..models.cgan import CGAN
from ..models.dcgan import DCGAN
from ..models.likelihoods import binarize
from ..models.pixelcnn import PixelCNN
from ..models.vae import VAE
from ..models.vqvae import VQVAE
from ..runtime import device_name, setup
from ..zoo import RUNS, ZOO, ZooError, ZooRun, load_pretrained, manifest, update_entry, write_entry
from ..zoo.registry import made_by
from ..zoo.store import half, utc_now
from .cgan import caption_spread, cgan_config, class_accuracy, per_class_metrics, train_cgan
from .common import quiet, sample_figures
from .dcgan import dcgan_config, loss_config, train_dcgan
from .pixelcnn import evaluate_bpd, pixelcnn_config, train_pixelcnn
from .vae import evaluate_vae, iwae_k, train_vae, vae_config
from .vqvae import evaluate_vqvae, fit_prior, time_samples, train_vqvae, vqvae_config

__all__ = ["build", "train_entry", "finish", "finish_entry", "measure", "measure_entry", "quick_check", "half_check",
           "load_entry", "check_targets", "TARGETS", "BENCHMARKS"]

TRAIN = {"dcgan": train_dcgan, "cgan": train_cgan, "vae": train_vae, "pixelcnn": train_pixelcnn, "vqvae": train_vqvae}
HISTORY_POINTS = 200  # the loss curves a manifest keeps, evenly thinned
# A half-precision copy is kept when it moves no quick-check figure by more than this (else float32 ships).
HALF_TOLERANCE = {"fd": 0.01, "class_accuracy": 0.005, "attribute_accuracy": 0.005, "elbo": 0.05, "test_bpd": 0.001,
                  "mse": 1e-4, "perplexity": 0.5, "bits_per_code": 0.002}
# The prior's central 95% box in 2-D: each coordinate within +-1.96 holds 0.95 ** 2 of the mass, so the box
# whose square holds 95% has half-width Phi^-1((1 + sqrt(0.95)) / 2) = 2.236.
BOX_95 = 2.2365
CPU_HEAVY_N = 2000  # on a CPU: test images for IWAE (k = 200 a image) and PixelCNN bits/dim (about 4 minutes each)
# The VQ-VAE's targets compare it with these entries, as shipped: the VAE's FD at the same n, and the pixel
# PixelCNN's seconds per sample, timed in the same call on the same device at the same n (SPEED_N_CPU on a CPU,
# where the pixel PixelCNN's 784 steps at the gpu profile's size take about 0.8 s an image).
VAE_ENTRY, PIXELCNN_ENTRY = "vae-fashion-mnist-logistic256", "pixelcnn-fashion-mnist-gated"
SPEED_N_CPU = 20


def build(run: ZooRun, course) -> nn.Module:
    """The entry's untrained model: its family's course config at the course's profile, with its options."""
    options = dict(run.options)
    if run.family == "dcgan":
        return DCGAN(dcgan_config(course, run.dataset, **loss_config(options.pop("loss"), **options)), seed=run.seed)
    if run.family == "cgan":
        return CGAN(cgan_config(course, run.dataset, **options), seed=run.seed)
    if run.family == "vae":
        return VAE(vae_config(course, run.dataset, **options), seed=run.seed)
    if run.family == "vqvae":
        return VQVAE(vqvae_config(course, run.dataset, **options), seed=run.seed)
    return PixelCNN(pixelcnn_config(course, run.dataset, **options), seed=run.seed)


def _thin(history: dict, points: int = HISTORY_POINTS) -> dict:
    """Every curve of a training history, evenly thinned to at most `points` values (rounded)."""
    out = {}
    for key, values in history.items():
        values = list(values)
        if not values or not all(isinstance(v, (int, float)) for v in values):
            continue
        stride = max(1, math.ceil(len(values) / points))
        out[key] = [round(float(v), 5) for v in values[::stride]]
    return out


def _first(data: ImageData, n: int) -> ImageData:
    """The first n images of `data` (already a seeded draw) with their labels."""
    return dataclasses.replace(data, images=data.images[:n], labels=data.labels[:n])


# -- measuring a saved entry ----------------------------------------------------------------------------------
def _z_spread(gan: CGAN, test, per_caption: int, generator: torch.Generator) -> dict:
    """Whether a caption's samples differ by z: per class, the mean per-pixel std of `per_caption` samples of one
    caption (the first test image's of that class) over the same std of the real test images of that class."""
    r = torch.tensor([row["samples"] / row["class"] for row in caption_spread(gan, test, per_caption, generator)])
    return {"z_spread_ratio_median": round(float(r.median()), 4), "z_spread_ratio_worst": round(float(r.min()), 4),
            "z_spread_classes_under_half": int((r < 0.5).sum())}


def _latent_map(vae: VAE, test, grid: int = 12) -> dict:
    """A 2-D VAE's map: how many classes the evaluator sees in the decoded grid of prior quantiles, and the
    fraction of test posterior means inside the prior's central 95% box."""
    from ..metrics import features

    u = torch.linspace(0.5 / grid, 1 - 0.5 / grid, grid)
    ticks = torch.distributions.Normal(0.0, 1.0).icdf(u)
    z = torch.stack(torch.meshgrid(ticks, ticks, indexing="xy"), -1).reshape(-1, 2)  # (grid^2, 2)
    with torch.no_grad():
        decoded = vae.decode(z.to(vae.device)).float()
        mu = torch.cat([vae.encode(x.to(vae.device))[0] for x in test.images.split(500)]).cpu()
    _, logits = features(decoded, test.name)
    classes = logits.argmax(1).cpu()
    return {"grid_classes": int(classes.unique().numel()), "grid": grid,
            "posterior_in_box": round(float((mu.abs() <= BOX_95).all(1).double().mean()), 4), "box_half_width": BOX_95}


def measure(name: str, model: nn.Module, course, n: int | None = None, samples: bool | None = None) -> dict:
    """Entry `name`'s figures, on `model` (the saved weights, loaded), at the course's profile's sizes.

    GANs: FD (and floor), KID, precision, recall, coverage of n samples; the label cGAN also class accuracy and
    per-class FD / recall; the caption cGAN attribute accuracy and how much its samples differ by z. VAEs: test
    ELBO and IWAE bounds in bits/dim, and the FD of n_fd = min(n, 2000) prior samples (decoder means); the 2-D
    VAE its latent map. PixelCNN: test bits/dim on n images, and with `samples` the FD, precision and recall of
    n_fd = min(n, 2000) samples and the seconds each took (sampling costs H W network steps, about 0.8 s an image
    on one CPU core: by default on a GPU only; `bench zoo` always samples, so that a lecture can compare every
    model at one n). On a CPU the costly figures (IWAE with k samples an image, PixelCNN bits/dim) use the first
    CPU_HEAVY_N test images; the figures record the sizes used (iwae_n, bpd_n). VQ-VAE (`model` with its prior
    attached, `load_entry`): test MSE, perplexity, dead codes, bits per code and per image on n test images,
    and the FD of n_fd samples with their seconds, beside the pixel PixelCNN's at the same n (`_speed`); its
    prior's entry: the code figures only.
    """
    run = made_by(name)
    dataset = run.dataset
    n = min(n or course.profile.eval_size, TEST_SIZES[dataset])
    device = course.device
    cuda = device.type == "cuda"
    model = model.to(device).eval()
    g = lambda offset: course.generator(offset, device=device)  # noqa: E731  (the bench's noise offsets)
    train = course.load_data(dataset, "train")
    test = course.load_data(dataset, "test", size=n)
    out: dict = {"entry": name, "eval_n": n}
    with torch.no_grad():
        if run.family == "dcgan":
            ev = evaluate(model.sample(n, generator=g(3)), dataset, train=train, profile=course.profile, n=n)
            out.update(sample_figures(ev, ("fd", "fd_floor", "kid", "precision", "recall", "coverage", "memorised")))
        elif run.family == "cgan" and model.captioner is None:
            labels = torch.arange(n) % model.config.n_classes
            x = model.sample(n, generator=g(3), cond=labels)
            ev = evaluate(x, dataset, labels=labels, train=train, profile=course.profile, n=n)
            per_class = per_class_metrics(x, labels, test)
            fds, recalls = (torch.tensor([m[key] for m in per_class]) for key in ("fd", "recall"))
            out.update(sample_figures(ev, ("fd", "fd_floor", "precision", "recall", "coverage", "class_accuracy")))
            out.update(fd_class_median=round(float(fds.median()), 4), fd_class_worst=round(float(fds.max()), 4),
                       recall_class_median=round(float(recalls.median()), 4),
                       recall_class_worst=round(float(recalls.min()), 4))
        elif run.family == "cgan":
            captions = model.captioner.caption(test.images.to(device), test.labels.to(device))
            x = model.sample(n, generator=g(3), cond=captions)
            labels = torch.tensor([model.captioner.parse(t)[0] for t in captions])
            out.update(attribute_accuracy=round(model.captioner.attribute_accuracy(x, captions), 4),
                       caption_class_accuracy=round(class_accuracy(x, labels, dataset), 4),
                       **_z_spread(model, test, 64, g(6)))
        elif run.family == "vae":
            images = test.images
            if model.config.binarize:
                images = binarize(images.to(device), g(5))
            f = evaluate_vae(model, images, k=1, generator=g(4))
            k = iwae_k(course.profile) if model.config.likelihood == "logistic256" else 1
            iwae_n = len(images) if cuda or k == 1 else min(len(images), CPU_HEAVY_N)
            sub = evaluate_vae(model, images[:iwae_n], k=k, generator=g(4)) if k > 1 else f  # both bounds, same images
            out.update(test_elbo_nats=round(f["elbo"], 3), iwae_nats=round(sub["iwae"], 3), iwae_k=k, iwae_n=iwae_n,
                       test_kl_nats=round(f["kl"], 3), active_dims=f["active_dims"])
            if model.config.binarize:
                out["binarised_elbo_nats"] = out["test_elbo_nats"]
            else:
                bits = model.pixels * math.log(2)
                out.update(test_bpd=round(-f["elbo"] / bits, 4), iwae_bpd=round(-sub["iwae"] / bits, 4),
                           iwae_n_elbo_bpd=round(-sub["elbo"] / bits, 4))  # the ELBO on the IWAE's images
                n_fd = min(n, 2000)  # the target's size: decoder means are blurred, and FD at 2,000 is what was set
                ev = evaluate(model.sample(n_fd, generator=g(3)), dataset, train=train, profile=course.profile, n=n_fd)
                out.update({**sample_figures(ev), "eval_n": n, "fd_n": n_fd})
            if model.config.z_dim == 2:
                out.update(_latent_map(model, test))
        elif run.family == "vqvae":
            f = evaluate_vqvae(model, test.images)
            out.update(bits_per_code=round(f["bits_per_code"], 4), bits_per_image=round(f["bits_per_image"], 2),
                       uniform_bits_per_image=round(f["uniform_bits_per_image"], 2))
            if name == run.name:  # the VQ-VAE's own figures and its samples (s^2 = 49 prior steps: cheap on a CPU too)
                out.update(test_mse=round(f["mse"], 5), perplexity=round(f["perplexity"], 2),
                           dead_codes=f["dead_codes"], codebook_size=model.config.codebook_size)
                n_fd = min(n, 2000)
                x, seconds = time_samples(model, n_fd, g(3))  # (n_fd, 1, H, W)
                ev = evaluate(x, dataset, train=train, profile=course.profile, n=n_fd)
                out.update({**sample_figures(ev), "eval_n": n, "fd_n": n_fd,
                            "sample_seconds_per_image": round(seconds / n_fd, 5), **_speed(model, course, n_fd, g)})
        else:
            bpd_n = len(test) if cuda else min(len(test), CPU_HEAVY_N)
            out.update(test_bpd=round(evaluate_bpd(model, _first(test, bpd_n)), 4), bpd_n=bpd_n)
            if cuda if samples is None else samples:
                n_fd = min(n, 2000)
                started = time.perf_counter()
                x = model.sample(n_fd, generator=g(3))  # (n_fd, 1, H, W), H W network steps
                seconds = time.perf_counter() - started
                ev = evaluate(x, dataset, train=train, profile=course.profile, n=n_fd)
                out.update({**sample_figures(ev), "eval_n": n, "fd_n": n_fd,
                            "sample_seconds_per_image": round(seconds / n_fd, 4)})
    return out


def _speed(vq: VQVAE, course, n: int, g) -> dict:
    """Seconds per sample of the VQ-VAE and of the shipped pixel PixelCNN, timed here at the same n (n on a GPU,
    SPEED_N_CPU on a CPU), and the ratio; {} when the zoo ships no pixel PixelCNN."""
    if PIXELCNN_ENTRY not in manifest():
        return {}
    pixel = load_pretrained(PIXELCNN_ENTRY, device=course.device)
    n = n if course.device.type == "cuda" else min(n, SPEED_N_CPU)
    time_samples(pixel, 2, g(3))  # warm-up: the first call pays for kernels and allocations
    mine, pixels = time_samples(vq, n, g(3))[1] / n, time_samples(pixel, n, g(3))[1] / n
    return {"speed_n": n, "pixelcnn_sample_seconds_per_image": round(pixels, 5),
            "speedup_vs_pixelcnn": round(pixels / mine, 1)}


def _target_fd(figures: dict, vq: VQVAE) -> dict:
    vae = manifest().get(VAE_ENTRY, {}).get("figures", {})
    if vae.get("fd_n") != figures["fd_n"]:
        return {"value": figures["fd"], "bound": None, "met": None,
                "note": f"{VAE_ENTRY}'s FD is at n={vae.get('fd_n')}, this one's at n={figures['fd_n']}: measure both "
                        f"at the same n (python -m course_lib.zoo measure NAME, at their profile)"}
    return {"value": figures["fd"], "bound": vae["fd"], "met": figures["fd"] <= vae["fd"]}


def _target_speed(figures: dict, vq: VQVAE) -> dict:
    if "speedup_vs_pixelcnn" not in figures:
        return {"value": None, "bound": 10, "met": None, "note": f"no {PIXELCNN_ENTRY} in the zoo to time beside it"}
    return {"value": figures["speedup_vs_pixelcnn"], "bound": 10, "met": figures["speedup_vs_pixelcnn"] >= 10}


def _target_perplexity(figures: dict, vq: VQVAE) -> dict:
    bound = 0.5 * vq.config.codebook_size
    return {"value": figures["perplexity"], "bound": bound, "met": figures["perplexity"] >= bound}


# The lecture's targets for a VQ-VAE entry (issue [19]): name -> (what it says, (figures, model) -> value, bound, met).
TARGETS = {
    "perplexity": ("perplexity of the test codes >= 0.5 K", _target_perplexity),
    "fd_vs_vae": (f"sample FD <= {VAE_ENTRY}'s at the same n", _target_fd),
    "speed_vs_pixelcnn": (f"sampling >= 10x faster per image than {PIXELCNN_ENTRY} (same device, same n)",
                          _target_speed),
}


def check_targets(run: ZooRun, figures: dict, model: nn.Module) -> dict:
    """Entry `run`'s targets (`run.targets`, from TARGETS) on its measured `figures` and its `model`: name ->
    {target, value, bound, met}; met is None where the comparison cannot be made here (a note says why)."""
    return {key: {"target": TARGETS[key][0], **TARGETS[key][1](figures, model)} for key in run.targets}


def load_entry(name: str, device: str | torch.device = "cpu", folder: Path | None = None) -> nn.Module:
    """Entry `name` from `folder` (default the course's zoo) as a lecture uses it: `load_pretrained`, except that
    both entries of a VQ-VAE's run give the VQ-VAE with its prior attached."""
    where = {} if folder is None else {"folder": folder}
    run = made_by(name)
    if run.family != "vqvae":
        return load_pretrained(name, device=device, **where)
    vq = load_pretrained(run.name, device=device, **where)
    vq.prior = load_pretrained(run.saves[1], device=device, **where)
    return vq


def quick_check(name: str, model: nn.Module, vqvae: VQVAE | None = None) -> dict:
    """A few of entry `name`'s figures at a size the tests afford on a CPU (seconds), with fixed noise and data.

    Recorded in the manifest when the entry is made; `tests/test_zoo.py` measures them again on the shipped file.
    A VQ-VAE's prior (a PixelCNN, as `load_pretrained` gives it) is scored on the codes of `vqvae`, default the
    zoo's VQ-VAE of its run.
    """
    run = made_by(name)
    model = model.to("cpu").eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    from ..data import load_data

    test = load_data(run.dataset, "test", size=500, seed=0)
    with torch.no_grad():
        if run.family == "dcgan":
            return {"n": 1000, "fd": round(evaluate(model.sample(1000, generator=g()), run.dataset, n=1000)["fd"], 4)}
        if run.family == "cgan" and model.captioner is None:
            labels = torch.arange(1000) % model.config.n_classes
            ev = evaluate(model.sample(1000, generator=g(), cond=labels), run.dataset, labels=labels, n=1000)
            return {"n": 1000, "fd": round(ev["fd"], 4), "class_accuracy": round(ev["class_accuracy"], 4)}
        if run.family == "cgan":
            captions = model.captioner.caption(test.images, test.labels)
            x = model.sample(len(captions), generator=g(), cond=captions)
            return {"n": 500, "attribute_accuracy": round(model.captioner.attribute_accuracy(x, captions), 4)}
        if run.family == "vae":
            images = binarize(test.images, g()) if model.config.binarize else test.images
            return {"n": 500, "elbo": round(evaluate_vae(model, images, k=1, generator=g())["elbo"], 3)}
        if run.family == "vqvae" and name == run.name:
            f = evaluate_vqvae(model, test.images)
            return {"n": 500, "mse": round(f["mse"], 5), "perplexity": round(f["perplexity"], 2)}
        if run.family == "vqvae":
            vq = (vqvae or load_pretrained(run.name)).to("cpu").eval()
            codes = vq.to_codes(test.images)[:, None]  # (500, 1, s, s)
            bits = -model.log_prob_levels(codes).double().mean() / (vq.grid ** 2 * math.log(2))
            return {"n": 500, "bits_per_code": round(float(bits), 4)}
        return {"n": 100, "test_bpd": round(evaluate_bpd(model, load_data(run.dataset, "test", size=100, seed=0)), 4)}


def close_enough(name: str, a: dict, b: dict, scale: float = 1.0) -> list[str]:
    """The quick-check figures where `a` and `b` differ by more than the tolerance (times `scale`)."""
    return [f"{k}: {a[k]} vs {b[k]}" for k in a if k != "n" and k in b
            and abs(a[k] - b[k]) > scale * HALF_TOLERANCE.get(k, 0.01) * (max(1.0, abs(b[k])) if k == "fd" else 1.0)]


def half_check(name: str, model: nn.Module, **options) -> dict:
    """The quick-check figures of the float32 model and of its half-precision copy (on the CPU); `options` go to
    quick_check."""
    full = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    float32 = quick_check(name, model, **options)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half(full).items()})
    float16 = quick_check(name, model, **options)
    model.load_state_dict(full)
    return {"float32": float32, "float16": float16, "n": float32["n"]}


# -- training an entry ------------------------------------------------------------------------------------------
def _stop_after(seconds: float | None):
    """A training callback that ends the run (as the stop button does: status 'interrupted') after `seconds`."""
    if not seconds:
        return None
    started = time.perf_counter()

    def check(trainer) -> None:
        if time.perf_counter() - started > seconds:
            raise KeyboardInterrupt  # fit() keeps the model and history, and says where it stopped

    return check


def finish(run: ZooRun, model: nn.Module, data: ImageData, course) -> dict:
    """Run the entry's finishing steps (`run.finish`: methods of the process, given the training images) on the
    trained model; returns what each returned, for the record (e.g. the VAE's prior-scale factors)."""
    out = {}
    for step in run.finish:
        result = getattr(model, step)(data.images, generator=course.generator(7, device=course.device))
        out[step] = [round(float(v), 5) for v in result.flatten()] if isinstance(result, torch.Tensor) else result
    return out


def finish_entry(name: str, device: str = "cpu", folder: Path | None = None) -> dict:
    """Apply the registry's finishing steps that entry `name`'s record does not list yet to its shipped weights
    (an entry trained before its recipe had them) and save the file again; its figures are then to be measured
    again (`python -m course_lib.zoo finish` does). The result is what `zoo train` makes now: the same
    training, then the same steps, on these weights."""
    from ..zoo import manifest

    folder = Path(folder or ZOO)
    run, entry = RUNS[name], manifest(folder)[name]
    todo = [step for step in run.finish if step not in entry.get("finished", {})]
    if not todo:
        return entry
    course = setup(seed=run.seed, device=device, profile=entry["profile"], quiet=True)
    model = load_pretrained(name, device=course.device, folder=folder)
    data = course.load_data(run.dataset, "train")
    done = finish(dataclasses.replace(run, finish=tuple(todo)), model, data, course)
    weights = half(model.state_dict()) if entry["dtype"] == "float16" else model.state_dict()
    # the figures were measured before these steps: dropped, to be measured again (`zoo measure`)
    record = {k: v for k, v in entry.items() if k not in ("file", "bytes", "sha256", "figures", "check", "measured")}
    record["finished"] = {**entry.get("finished", {}), **done}
    record["finished_later"] = {"steps": todo, "device": device_name(course.device), "torch": torch.__version__,
                                "date": utc_now(),
                                "command": f"python -m course_lib.zoo finish {name} --device {course.device.type}"}
    return write_entry(folder, name, weights, record)


def _save(out: Path, name: str, run: ZooRun, course, model: nn.Module, trainer, data: ImageData, epochs: int | None,
          command: str, finished: dict, **check_options) -> dict:
    """Save one trained model as entry `name` of `out` (half precision where that moves no quick-check figure) with
    the record of how it was made; returns the quick-check figures of the weights as saved."""
    if trainer.status != "done":
        print(f"{name}: training ended {trainer.status} at step {trainer.step}; saving what it has, marked so.")
    check = half_check(name, model, **check_options)
    moved = close_enough(name, check["float16"], check["float32"])
    weights = model.state_dict() if moved else half(model.state_dict())
    about = run.about if name == run.name else f"the PixelCNN prior over the codes of {run.name}, trained after it"
    record = {
        "about": about, "lectures": list(run.lectures), "family": run.family, "options": dict(run.options),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}", "config": config_to_dict(model.config),
        "seed": run.seed, "dataset": run.dataset, "train_images": len(data), "profile": course.profile.name,
        "epochs": epochs, "steps": trainer.step, "images_seen": int(trainer.samples_seen),
        "train_seconds": round(trainer.seconds, 1), "train_status": trainer.status,
        "device": device_name(course.device), "device_type": course.device.type, "torch": torch.__version__,
        "python": platform.python_version(), "command": command,
        "trained": utc_now(),
        "dtype": "float32" if moved else "float16", "half_check": {**check, "moved": moved}, "finished": finished,
        "history": _thin(trainer.history),
    }
    write_entry(out, name, weights, record)
    return check["float32" if moved else "float16"]


def train_entry(name: str, device: str = "auto", out: str | Path = "runs/zoo", profile: str | None = None,
                steps: int | None = None, measure_n: int | None = None, time_limit: float | None = None) -> dict:
    """Train registry entry `name` on `device`, save it into the zoo folder `out` and measure the saved file.

    profile: the sizes to build and measure at (default the entry's, `gpu`; `smoke` for a test). steps:
    a shorter run than the entry's epochs on this device (a test). time_limit: seconds of training after
    which the run stops where it is (the record says train_status 'interrupted' and the steps it took); the
    saving and measuring after it are not cut short. Returns the manifest record, which
    says how it was made: config, seed, steps, images seen, seconds, device, torch, the command.
    A VQ-VAE's run then trains its prior on the codes of the VQ-VAE as saved (in what is left of time_limit,
    for the same `steps` in a test) and saves it as the entry NAME-prior; both are measured together.
    """
    if name not in RUNS:
        raise ZooError(f"No zoo entry {name!r} in the registry; it has: {', '.join(RUNS)}.")
    run = RUNS[name]
    started = time.perf_counter()
    course = setup(seed=run.seed, device=device, profile=profile or run.profile, quiet=True)
    model = build(run, course)
    data = course.load_data(run.dataset, "train")
    epochs = None if steps is not None else run.epochs_on(course.device.type)
    trained = TRAIN[run.family](course, model, data, steps=steps, epochs=epochs, snapshots=0, train_config=quiet(),
                                callback=_stop_after(time_limit))
    finished = finish(run, model, data, course)
    command = run.command(course.device.type) + ("" if profile is None else f" --profile {profile}") + (
        "" if steps is None else f" --steps {steps}")
    out = Path(out)
    check = _save(out, name, run, course, model, trained.trainer, data, epochs, command, finished)
    if run.family == "vqvae":  # stage 2: the prior, on the codes of the VQ-VAE as it was saved
        vq = load_pretrained(name, device=course.device, folder=out)
        prior_epochs = None if steps is not None else run.prior_epochs_on(course.device.type)
        left = max(time_limit - trained.trainer.seconds, 1e-3) if time_limit else None
        prior_run = fit_prior(course, vq, data, steps=steps, epochs=prior_epochs, snapshots=0, train_config=quiet(),
                              callback=_stop_after(left))
        _save(out, run.saves[1], run, course, vq.prior, prior_run.trainer, data, prior_epochs, command, {}, vqvae=vq)
    measure_entry(name, course, out, measure_n, check=check)
    return update_entry(out, name, wall_seconds=round(time.perf_counter() - started, 1))


def measure_entry(name: str, course, folder: Path, n: int | None = None, check: dict | None = None) -> dict:
    """Load entry `name` from its file in `folder` (checked), measure it at the course's sizes (`measure`) and
    at the tests' (`quick_check`, unless given: the half-precision check already measured the saved weights),
    and record the figures, where and how they were measured, in its manifest entry, which is returned.
    Either entry of a VQ-VAE's run measures both (the VQ-VAE's figures need its prior, the prior's the VQ-VAE's
    codes), and records the run's targets (`check_targets`) with the VQ-VAE; unmet ones are printed."""
    run = made_by(name)
    saved = load_entry(name, device=course.device, folder=folder)
    options = f" --profile {course.profile.name}" + ("" if Path(folder) == ZOO else f" --folder {folder}")
    entries = run.saves if run.family == "vqvae" else (name,)
    figures = {entry: measure(entry, saved, course, n) for entry in entries}
    targets = check_targets(run, figures[run.name], saved)
    for key, t in targets.items():
        if not t["met"]:
            print(f"{run.name}: target {key} ({t['target']}) {'not met' if t['met'] is False else 'not checked'}: "
                  f"{t['value']} against {t['bound']}" + (f"; {t['note']}" if "note" in t else ""))
    records = {}
    for entry in entries:  # the quick checks last: they move the models to the CPU
        if check and entry == name:
            quick = check
        elif entry == run.name:
            quick = quick_check(entry, saved)
        else:
            quick = quick_check(entry, saved.prior, vqvae=saved)
        extra = {"targets": targets} if targets and entry == run.name else {}
        command = f"python -m course_lib.zoo measure {entry} --device {course.device.type}{options}"
        records[entry] = update_entry(folder, entry, figures=figures[entry], check=quick, **extra, measured={
            "device": device_name(course.device), "torch": torch.__version__, "profile": course.profile.name,
            "date": utc_now(), "command": command})
    return records[name]


# -- the bench ----------------------------------------------------------------------------------------------------
def bench_zoo(course, entry: str = "dcgan-fashion-mnist-non-saturating") -> dict:
    """A shipped zoo entry, loaded from its file: the figures its manifest records, measured again (no training).

    At the profile's eval_size (the cpu profile's 2,000: every family's samples at one n, with the FD floor at
    that n); the PixelCNN's samples too, even on a CPU (about half an hour for 2,000 on one core)."""
    from ..zoo import manifest

    record = manifest().get(entry)
    if record is None:
        raise ZooError(f"The zoo ships no {entry!r} yet: train it with {RUNS[entry].command('cuda')}.")
    model = load_entry(entry, device=course.device)
    return {**measure(entry, model, course, samples=True), "steps": record["steps"], "trained_on": record["device"],
            "sha256": record["sha256"][:12]}


bench_zoo.choices = {"entry": tuple(RUNS)}

BENCHMARKS = {"zoo": bench_zoo}
