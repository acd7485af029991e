"""The model zoo: trained weights that ship with the course, offline and checksummed.

A lecture that draws a conclusion needs a converged model, and a laptop cannot train one in a
lecture's minutes. The zoo holds models trained once, at full size, each with the record of how:

    python -m course_lib.zoo list                          # every entry: size, device, its figures
    model = load_pretrained("cgan-fashion-mnist-label")     # the trained process, in eval mode, on the CPU
    run = train_dcgan(course, gan, data, zoo="dcgan-fashion-mnist-hinge")   # a recipe, loading instead of training

`registry.py` says what each entry is (family, options, data, seed, epochs per device); `store.py` keeps
the files and their manifest. `python -m course_lib.zoo train NAME|all --device cuda|cpu --out DIR` trains
entries with their recipes and measures the saved files (`course_lib.recipes.zoo`); `install DIR` brings
them into the course. `make zoo-gpu` is the whole zoo in one GPU call.
"""
from .registry import RUNS, ZooRun
from .store import (ZOO, ZooError, add_entry, entry_config, entry_figures, install, load_pretrained, load_weights,
                    manifest, match_line, rebuild_command, update_entry, write_entry)

__all__ = ["RUNS", "ZooRun", "ZOO", "ZooError", "manifest", "load_pretrained", "load_weights", "entry_config",
           "write_entry", "update_entry", "install", "add_entry", "match_line", "entry_figures", "rebuild_command"]
