"""Learning curves of the diffusion formulations on the demo's data and model size: the scorecard figures after
a number of minutes of training, for each formulation side by side on this machine.

Formulations (overrides of `astrogen.pipelines.demo.demo_train_config`; the first three on standardised delta):
``epsilon`` (the DDPM noise prediction), ``v`` (v-prediction, Salimans & Ho 2022), ``v-minsnr`` (v-prediction
with min-SNR-5 loss weights, Hang et al. 2023) and ``v-log`` (v-prediction on ln(1.01 + delta), standardised: the
shipped matter-demo's formulation, which keeps delta above -1.01). Each trains once for the longest budget and
saves a checkpoint (raw weights and EMA) as each budget is reached; every checkpoint then samples ``--n`` maps
(DPM-Solver++, 20 steps) that are scored against ``--n`` held-out maps from independent boxes. Figures: worst
|P_gen / P_real - 1| up to k_Nyq / 2, pixel-PDF KS, peaks, Minkowski, clusters and bispectrum chi^2 per bin,
mean offset (real map-mean scatter units), out-of-range fraction, and rows passed.

The quick default (1 and 2 minutes, four formulations) takes about 15 minutes on 2 CPU cores; the issue's table is
``--minutes 2 5 10 20 40`` (about 4 hours). ``--results benchmarks/results.md`` also writes the table into that file
(section "Learning curves", replaced if present). Run: ``.venv/bin/python benchmarks/bench_learning_curve.py
[--minutes 2 5 10] [--formulations epsilon v v-minsnr v-log] [--n-train 2048] [--n 512] [--results FILE]``.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import lightning as L
from _fidelity import fidelity
from _timing import headline

from astrogen.generate import sample_to_file
from astrogen.pipelines.demo import DEMO_MATTER, demo_train_config
from astrogen.sims import simulate_to_file
from astrogen.train import train

STANDARDISED = [{"name": "Standardize"}]
FORMULATIONS = {"epsilon": {"model.prediction": "epsilon", "data.transform": STANDARDISED},
                "v": {"model.prediction": "v", "data.transform": STANDARDISED},
                "v-minsnr": {"model.prediction": "v", "model.snr_gamma": 5.0, "data.transform": STANDARDISED},
                "v-log": {"model.prediction": "v", "data.transform": [{"name": "Log1p", "eps": 0.01},
                                                                      {"name": "Standardize"}]}}
SECTION = "## Learning curves"


class SaveAtMinutes(L.Callback):
    """Save ``out/min-M.ckpt`` when the wall-clock time since the start of training first reaches M minutes."""

    def __init__(self, minutes: list[float], out: Path):
        self.marks, self.out, self.start, self.steps = sorted(minutes), out, None, {}

    def on_train_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        elapsed = (time.perf_counter() - self.start) / 60
        while self.marks and elapsed >= self.marks[0]:
            minutes = self.marks.pop(0)
            trainer.save_checkpoint(self.out / f"min-{minutes:g}.ckpt")
            self.steps[minutes] = trainer.global_step


def table(rows: list[dict]) -> str:
    lines = ["| formulation | minutes | steps | worst P ratio to k_Nyq/2 | pixel KS | peaks | Minkowski | clusters | "
             "bispectrum | mean offset | out of range | rows passed |", "|" + " --- |" * 12]
    for r in rows:
        d = r["rows"]
        lines.append(f"| {r['formulation']} | {r['minutes']:g} | {r['steps']} | {r['pk_mean_half']:.3f} | "
                     f"{d['pixel_pdf'][0]:.3f} | {d['peaks'][0]:.3g} | {d['minkowski'][0]:.3g} | "
                     f"{d['clusters'][0]:.3g} | {d['bispectrum'][0]:.3g} | {d['mean'][0]:.3f} | "
                     f"{d['out_of_range'][0]:.2g} | {sum(v[3] for v in d.values())} of {len(d)} |")
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the learning-curve section of ``path``, atomically."""
    old = path.read_text() if path.exists() else ""
    block = f"{SECTION}\n\n{text}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: block + "\n", old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(new)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2], help="training budgets")
    parser.add_argument("--formulations", nargs="+", default=list(FORMULATIONS), choices=list(FORMULATIONS))
    parser.add_argument("--n-train", type=int, default=2048, help="training slices (the demo's)")
    parser.add_argument("--n", type=int, default=512, help="held-out and generated slices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=None, help="also write the table into this Markdown file")
    parser.add_argument("--out", type=Path, default=None, help="keep runs and sets here [a temporary folder]")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        data, test = out / "train.h5", out / "test.h5"
        simulate_to_file("matter", args.n_train, data, seed=args.seed, config=DEMO_MATTER, overwrite=True)
        simulate_to_file("matter", args.n, test, seed=args.seed + 1, config=DEMO_MATTER, overwrite=True)
        for name in args.formulations:
            run = out / name
            config = demo_train_config(data, run, max(args.minutes) + 0.05, args.seed)
            saver = SaveAtMinutes(args.minutes, run)
            train(config, FORMULATIONS[name], progress=False, callbacks=[saver])
            for minutes, steps in saver.steps.items():
                gen = sample_to_file(run / f"min-{minutes:g}.ckpt", run / f"gen-{minutes:g}.h5", n=args.n,
                                     sampler="dpm", steps=20, seed=args.seed, overwrite=True)
                figures = fidelity(test, gen, seed=args.seed)
                rows.append({"formulation": name, "minutes": minutes, "steps": steps, **figures})
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = (f"Demo data ({args.n_train} training slices of 32 x 32, {args.n} generated vs {args.n} held-out), demo "
            f"model (0.7 M parameters), `benchmarks/bench_learning_curve.py --minutes "
            f"{' '.join(f'{m:g}' for m in args.minutes)}`, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}:"
            f"\n\n{table(rows)}")
    print("\n" + text)
    for r in rows:
        headline(f"{r['formulation']} {r['minutes']:g} min worst P ratio", r["pk_mean_half"])
    if args.results is not None:
        write_section(args.results, text)


if __name__ == "__main__":
    main()
