"""Recipes: how the course trains and measures each model family, one file each, on top of `models/`.

    common.py       Run (model, trainer, snapshots), train_with_snapshots, the bench's shared figures
    classifier.py   train_classifier (lecture 00)
    toy_gan.py      the 8-Gaussian ring: BASELINE and REMEDY, train_ring_gan, ring_metrics (lecture 01)
    dcgan.py        dcgan_config, loss_config, train_dcgan (lecture 03)
    cgan.py         cgan_config, train_cgan, class_grid, per-class metrics (lecture 04)
    vae.py          vae_config, train_vae, evaluate_vae (lecture 05)
    pixelcnn.py     pixelcnn_config, train_pixelcnn, evaluate_bpd (lecture 06)
    vqvae.py        vqvae_config, prior_config, train_vqvae, fit_prior, evaluate_vqvae (lecture 07)
    vqgan.py        vqgan_config, train_vqgan (and its control), sharpness, evaluate_sharpening (lecture 07)
    zoo.py          train, save and measure the model zoo's entries (`python -m course_lib.zoo`)

A family's `*_config(course, dataset)` sizes its model for the profile and the dataset; its
`train_*(course, model, data, ...)` runs the one training loop through `train_with_snapshots`
(loading a finished run from `checkpoint=` instead), and returns a `Run`. A file that has
benchmarks lists them in a module-level dict `BENCHMARKS = {name: fn}`, fn(course) -> dict of
figures; `python -m course_lib.bench` finds them by walking this folder.

The layers: the core (`train`, `data`, `checkpoint`, `runtime`, ...) < `models/` (networks and
processes) < `metrics`, `evaluators` < `recipes/` < `bench`, `zoo`. Nothing imports upwards, and
importing a recipe has no side effects.
"""
