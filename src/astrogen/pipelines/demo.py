"""The demo behind ``make demo``: the shipped matter model against held-out simulations, or a model trained here.

Every step is the public library call a user would make. By default (`run_demo`): `simulate_to_file` (held-out
slices from boxes the shipped model never saw, with the simulator config it was trained on), `sample_to_file`
from ``pretrained:matter-demo`` (DPM-Solver++), and `evaluate` (the scorecard and ``report.html``). With
``train_model=True`` the model is trained from scratch under a wall-clock budget instead (a training set is simulated
first). No step adjusts the generated images: nothing is clamped, and the scorecard's out_of_range row would
show it if anything were.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group
from rich.table import Table

from astrogen.generate import sample_to_file
from astrogen.pretrained import config as pretrained_config
from astrogen.report import evaluate
from astrogen.sims import simulate_to_file
from astrogen.stats.compare import Scorecard
from astrogen.train import train

PRETRAINED = "matter-demo"

# 256 Mpc/h periodic boxes of 32^3 particles (8 Mpc/h cells) evolved to z = 0 with 10 PM steps from
# z = 9; each box gives 8 periodic 32 x 32 slices of 4-cell (32 Mpc/h) slabs: coarse, but nonlinear
# (delta up to ~10) and cheap enough for a 2-core CPU (about 0.1 s per box). configs/sims/matter_demo.yaml.
DEMO_MATTER = {"box_size": 256.0, "n_grid": 32, "slab_thickness": 4, "tile_size": 32, "redshift": 0.0,
               "z_init": 9.0, "n_steps": 10}


def demo_train_config(data: Path, out: Path, minutes: float, seed: int = 0) -> dict:
    """The from-scratch demo's training config: the shipped matter-demo's formulation (configs/train/matter-demo.yaml),
    a 0.7 M-parameter periodic DDPM with v-prediction on ln(1.01 + delta), standardised.

    Narrower than ``preset: small`` at full resolution and with attention only at 8 x 8: about twice the
    training steps per minute on a CPU, which matters more than width in a 10-minute budget. The formulation is
    the best of benchmarks/bench_learning_curve.py on this data: after 5 CPU minutes v-prediction on the log
    passes 7 of 8 scorecard rows, v-prediction on delta 5, epsilon-prediction 3 (and puts pixels far out of range).
    """
    return {
        "data": {"path": str(data), "val_fraction": 0.1, "batch_size": 32, "augment": True, "shift": True,
                 "transform": [{"name": "Log1p", "eps": 0.01}, {"name": "Standardize"}]},
        "model": {"channels": [16, 32, 64], "layers_per_block": 1, "attention_levels": 1, "periodic": True,
                  "prediction": "v"},
        "optim": {"lr": 5e-4, "warmup_steps": 100, "ema_decay": 0.995},
        "trainer": {"out": str(out), "max_steps": 1_000_000, "max_minutes": minutes, "val_every_steps": 250,
                    "seed": seed},
    }


@dataclass
class DemoResult:
    """What the demo made, how long each stage took and the scorecard it reached."""

    out_dir: Path
    report: Path
    scorecard: Scorecard
    model: str
    steps: int | None
    seconds: dict[str, float] = field(default_factory=dict)

    def table(self) -> Group:
        stages = Table(title=f"astrogen demo: matter fields -> {self.model} -> DPM-Solver samples",
                       show_header=False, title_justify="left")
        stages.add_column(style="bold")
        stages.add_column()
        for stage, seconds in self.seconds.items():
            stages.add_row(stage, f"{seconds:.1f} s" + (f" ({self.steps} steps)" if stage == "train" else ""))
        stages.add_row("report", str(self.report))
        return Group(stages, self.scorecard.table())


def run_demo(out_dir: str | os.PathLike = "astrogen-demo", train_model: bool = False, minutes: float = 8.0,
             n_train: int = 2048, n_test: int = 1000, n_generate: int = 1000, steps: int = 20, seed: int = 0,
             progress: bool = False) -> DemoResult:
    """Run the demo into ``out_dir``.

    By default the shipped ``pretrained:matter-demo`` model generates ``n_generate`` slices that are scored
    against ``n_test`` held-out ones. ``train_model`` instead trains a model from scratch on ``n_train`` simulated
    slices for ``minutes`` of wall-clock time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}

    def timed(stage, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[stage] = time.perf_counter() - start
        return result

    train_path, test_path = out / "matter_train.h5", out / "matter_test.h5"
    # The shipped model's training set was simulated with seed 0: held-out boxes come from seed + 1 (>= 1).
    sets = [(n_test, test_path, seed + 1)] + ([(n_train, train_path, seed)] if train_model else [])
    timed("simulate", lambda: [
        simulate_to_file("matter", n, path, seed=s, config=DEMO_MATTER, overwrite=True, progress=progress)
        for n, path, s in sets
    ])
    if train_model:
        run = timed("train", train, demo_train_config(train_path, out / "run", minutes, seed), progress=progress,
                    overwrite=True)
        model, trained_steps = str(run.checkpoint), run.steps
    else:
        model, trained_steps = f"pretrained:{PRETRAINED}", pretrained_config(PRETRAINED).get("global_step")
    generated = timed("sample", sample_to_file, model, out / "generated.h5", n=n_generate,
                      sampler="dpm", steps=steps, seed=seed, overwrite=True, progress=progress)
    evaluation = timed("evaluate", evaluate, test_path, generated, out, seed=seed)
    return DemoResult(out, evaluation.report, evaluation.scorecard, model, trained_steps, seconds)
