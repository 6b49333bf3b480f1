"""Peak memory of `astrogen sample`: generated images stream to disk batch by batch.

A small VAE (fast to decode, so the run measures the sampling loop, not the network) is trained for a few
steps on 128x128 blob maps; ``astrogen sample`` then writes N / 10 and N images, each in a subprocess whose
peak RSS is read from ``getrusage(RUSAGE_CHILDREN)`` (the smaller run first, so the maximum so far is its own).
Printed side by side: peak RSS and the size of the images written, for both N: streaming keeps RSS flat.

    python benchmarks/bench_sampling_memory.py [--n 10000]
"""

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import headline, timed

from astrogen.sims import simulate_to_file
from astrogen.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images to sample")
    parser.add_argument("--size", type=int, default=128, help="image side, pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = simulate_to_file("blobs", 64, tmp / "blobs.h5", config={"size": args.size, "n_blobs": 10})
        run = train({"kind": "vae", "data": {"path": str(data), "batch_size": 16, "val_fraction": 0.25},
                     "model": {"base": 8, "latent": 8}, "trainer": {"out": str(tmp / "run"), "max_steps": 2,
                                                                   "accelerator": "cpu"}}, progress=False)
        rows = []
        for n in (args.n // 10, args.n):
            command = [sys.executable, "-c", "from astrogen.cli import main; main()", "sample", str(run.checkpoint),
                       "-o", str(tmp / f"generated-{n}.h5"), "-n", str(n), "--batch-size", "64", "--device", "cpu"]
            seconds, done = timed(lambda command=command: subprocess.run(command, capture_output=True, text=True))
            if done.returncode:
                sys.exit(done.stderr[-2000:])
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
            rows.append((n, n * args.size**2 * 4 / 2**30, peak, seconds))
    for n, written, peak, seconds in rows:
        print(f"astrogen sample {n:>6} images {args.size}x{args.size}: wrote {written:5.2f} GiB (float32) in "
              f"{seconds:5.1f} s, peak RSS {peak:.2f} GiB")
    (_, small_written, small_peak, _), (_, written, peak, _) = rows
    print(f"{written / small_written:.0f}x the images, {peak / small_peak:.2f}x the peak RSS")
    headline("sample peak RSS", peak, "GiB")
    headline("peak RSS growth for 10x the images", peak / small_peak, "x")

if __name__ == "__main__":
    main()
