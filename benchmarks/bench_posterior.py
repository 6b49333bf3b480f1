"""Neural posterior estimation on the gamma-ray report's Galactic Center sets: accuracy, calibration, mis-specification.

Simulates the report's set sizes like `gamma_ray_table` (8,192 training, 1,966 validation, 3,072 test images,
A_dm ~ U[0.5, 1.5]; ``--scale`` multiplies them), trains the posterior of ``configs/train/gc-posterior.yaml`` (CNN
embedding + neural spline flow over A_dm, frac_dm and the total point-source fraction frac_ps_disk + frac_ps_gc)
for ``--minutes``, and scores its best validation checkpoint with `evaluate_model` (``--samples`` posterior samples
per test image) on the test set and on a mis-specified test set (same seeds, ``ic_profile: exponential``).

Prints: the relative error of the A_dm posterior mean (issue 19's target: at most 1.2 x the template-fit oracle's,
`gamma_ray_table.template_oracle`), the mean absolute error of the DM and total point-source flux fractions
(List et al. 2020, arXiv:2006.12504, report about 0.005 on their simulations), the empirical coverage of the 68%
and 95% central credible intervals (target: within 3 points of nominal), TARP's largest gap, the same on the
mis-specified set with the shift of the posterior means, and the Markdown rows to add to the README's gamma-ray
table.

The quick default (``--scale 0.02 --minutes 1 --samples 200``: 164 training, 64 validation and 64 test images)
only shows that the pipeline runs (about 2 minutes on one thread; with ``--minutes 0.5`` 47 s); the figures worth
quoting come from ``--scale 1 --minutes 40`` (or on a GPU, ``--accelerator gpu``). Run:
``.venv/bin/python benchmarks/bench_posterior.py [--scale 1] [--minutes 40] [--samples 1000] [--threads 2]
[--out DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _timing import headline
from gamma_ray_table import SIM, simulate_sets, template_oracle

from astrogen.config import load_yaml
from astrogen.report.model_report import evaluate_model
from astrogen.sims import simulate_to_file
from astrogen.train import train

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "train" / "gc-posterior.yaml"
REPORT_A_DM = 0.0807  # the gamma-ray report's relative error of A_dm (single output)
LIST_FRACTION_ERROR = 0.005  # List et al. 2020: flux fractions to about 0.5% on average
TARGETS = {"A_dm": "A_dm", "frac_dm": "frac_dm", "ps": "frac_ps_disk+frac_ps_gc"}


def score(metrics: dict) -> dict[str, float]:
    """The benchmark's figures from an `evaluate_model` metrics dict."""
    a, dm, ps = TARGETS["A_dm"], TARGETS["frac_dm"], TARGETS["ps"]
    out = {"rel_error_A_dm": metrics[f"rel_error_{a}"], "mae_frac_dm": metrics[f"mae_{dm}"],
           "mae_frac_ps": metrics[f"mae_{ps}"], "tarp_max_deviation": metrics["tarp_max_deviation"]}
    for name, target in TARGETS.items():
        out[f"coverage68_{name}"] = metrics[f"coverage68_{target}"]
        out[f"coverage95_{name}"] = metrics[f"coverage95_{target}"]
        out[f"bias_sd_{name}"] = metrics[f"bias_sd_{target}"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.02, help="fraction of the report's set sizes")
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget")
    parser.add_argument("--samples", type=int, default=200, help="posterior samples per test image")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--accelerator", default="cpu", help="cpu or gpu")
    parser.add_argument("--out", type=Path, default=None, help="keep sets, runs and reports here [temporary]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_train, n_val, n_test = (max(64, round(n * args.scale)) for n in (8192, 1966, 3072))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data, test = simulate_sets(root, n_train + n_val, n_test)
        variant = simulate_to_file("galactic_center", n_test, root / "test_icexp.h5", seed=1,
                                   config={**SIM, "ic_profile": "exponential"}, overwrite=True)
        simulated = time.perf_counter() - start
        cfg = load_yaml(PRESET)
        cfg["data"] |= {"path": str(data), "val_fraction": n_val / (n_train + n_val)}
        cfg["trainer"] |= {"out": str(root / "posterior"), "max_steps": 10**7, "max_minutes": args.minutes,
                           "val_every_steps": 100, "accelerator": args.accelerator, "devices": 1,
                           "precision": "32-true"}
        print(f"sets: train {n_train}, val {n_val}, test {n_test} (simulated in {simulated:.0f} s); training "
              f"{args.minutes:g} min on {args.accelerator}, {args.threads} thread(s)", flush=True)
        result = train(cfg, progress=False, overwrite=True)
        ckpt = result.best or result.checkpoint
        device = "cuda" if args.accelerator in ("gpu", "cuda") else "cpu"
        scores = {}
        for name, path in (("default", test), ("ic exponential", variant)):
            evaluation = evaluate_model(ckpt, path, root / f"report-{name.split()[0]}", n_samples=args.samples,
                                        device=device)
            scores[name] = score(evaluation.metrics)
            print(f"\n{name} test set ({evaluation.report}):")
            for note in evaluation.notes:
                print(f"  {note}")
    oracle = template_oracle()
    ours, variant_scores = scores["default"], scores["ic exponential"]
    print(f"\ntrained {result.steps} steps; whole run {(time.perf_counter() - start) / 60:.1f} min")
    print(f"\n{'quantity':44s} {'ours':>8s} {'ic exponential':>15s}  target")
    rows = [("rel. error of the A_dm posterior mean", "rel_error_A_dm", f"<= {1.2 * oracle:.3f} (1.2 x oracle)"),
            ("abs. error frac_dm (posterior mean)", "mae_frac_dm", f"~{LIST_FRACTION_ERROR} (List et al.)"),
            ("abs. error PS fraction total", "mae_frac_ps", f"~{LIST_FRACTION_ERROR} (List et al.)")]
    rows += [(f"coverage {level}% {name}", f"coverage{level}_{name}", f"{level / 100:.2f} +- 0.03")
             for level in (68, 95) for name in TARGETS]
    rows += [(f"mean shift / posterior sd, {name}", f"bias_sd_{name}", "0") for name in TARGETS]
    rows += [("TARP largest |ECP - alpha|", "tarp_max_deviation", "<= 0.03")]
    for label, key, target in rows:
        print(f"{label:44s} {ours[key]:8.4f} {variant_scores[key]:15.4f}  {target}")
    headline("posterior rel. error A_dm", ours["rel_error_A_dm"])
    headline("posterior abs. error frac_dm", ours["mae_frac_dm"])
    headline("posterior abs. error frac_ps", ours["mae_frac_ps"])
    headline("posterior coverage 68% A_dm", ours["coverage68_A_dm"])
    headline("posterior coverage 95% A_dm", ours["coverage95_A_dm"])
    print("\nrows for the README's gamma-ray table (quantity | report | ours | ours / report):")
    print(f"| rel. error A_dm, posterior mean (NPE) | {REPORT_A_DM} (oracle {oracle:.3f}) | "
          f"{ours['rel_error_A_dm']:.3f} | {ours['rel_error_A_dm'] / REPORT_A_DM:.2f} |")
    print(f"| abs. error of the flux fractions: DM / PS total (NPE) | ~{LIST_FRACTION_ERROR} (List et al. 2020) | "
          f"{ours['mae_frac_dm']:.4f} / {ours['mae_frac_ps']:.4f} | |")
    print("| coverage of the 68% / 95% intervals: A_dm, frac_dm, PS total (NPE) | 0.68 / 0.95 | "
          + ", ".join(f"{ours[f'coverage68_{n}']:.3f} / {ours[f'coverage95_{n}']:.3f}" for n in TARGETS) + " | |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
