"""Sharded simulation: one unsharded write vs the same set as shards, then merged (copy and virtual).

Writes ``--n`` blob images (``--size`` pixels, 50 blobs) once unsharded and once as ``--shards`` shards
one after another (what an array job does in parallel), best of ``--repeats`` interleaved runs; merges
the shards by copying and as an HDF5 virtual set, checks that both merges equal the unsharded file, and
times a full streamed read of each.
Run: ``.venv/bin/python benchmarks/bench_shards.py [--n 20000 --size 64 --shards 4]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _timing import timed

from astrogen.data import FieldSet, merge_fieldsets
from astrogen.sims import simulate_to_file


def read_all(path: Path) -> float:
    """Stream every image once; returns the sum (so the read cannot be skipped)."""
    with FieldSet(path) as fs:
        return float(sum(batch.images.sum(dtype=np.float64) for batch in fs.batches(256)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the writes (best kept)")
    args = parser.parse_args()
    config = {"n_blobs": 50, "size": args.size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "shards").mkdir()
        whole = root / "whole.h5"
        whole_runs, shard_runs = [], []
        for _ in range(args.repeats):  # interleaved, best of each: a write's disk flush slows the next one
            whole_runs.append(timed(lambda: simulate_to_file("blobs", args.n, whole, seed=0, config=config,
                                                             overwrite=True))[0])
            shard_runs.append([
                timed(lambda i=i: simulate_to_file("blobs", args.n, root / "shards" / f"part-{i}.h5", seed=0,
                                                   config=config, shard=(i, args.shards), overwrite=True))[0]
                for i in range(args.shards)
            ])
        whole_s, shard_times = min(whole_runs), min(shard_runs, key=sum)
        parts = sorted((root / "shards").glob("part-*.h5"))
        copy_s, copy = timed(lambda: merge_fieldsets(parts, root / "copy.h5"))
        virtual_s, virtual = timed(lambda: merge_fieldsets(parts, root / "virtual.h5", virtual=True))
        with FieldSet(whole) as a, FieldSet(copy) as b, FieldSet(virtual) as c:
            reference = a[:].images
            assert np.array_equal(reference, b[:].images) and np.array_equal(reference, c[:].images)
        reads = {name: timed(lambda p=p: read_all(p))[0] for name, p in
                 [("unsharded", whole), ("merged copy", copy), ("merged virtual", virtual)]}
        megabytes = whole.stat().st_size / 1e6
        print(f"{args.n} blob images of {args.size}x{args.size} ({megabytes:.0f} MB), {args.shards} shards; "
              f"both merges equal the unsharded file bit for bit")
        rows = [
            ("unsharded write", f"{whole_s:7.2f} s"),
            (f"{args.shards} shards, one after another", f"{sum(shard_times):7.2f} s  (longest shard "
             f"{max(shard_times):.2f} s: the wall time of a parallel array job)"),
            ("merge, copy", f"{copy_s:7.2f} s  ({megabytes / copy_s:.0f} MB/s)"),
            ("merge, virtual", f"{virtual_s:7.3f} s  ({virtual.stat().st_size / 1e3:.0f} kB file)"),
            ("shards + copy vs unsharded", f"{(sum(shard_times) + copy_s) / whole_s:7.2f}x the time"),
            ("shards + virtual vs unsharded", f"{(sum(shard_times) + virtual_s) / whole_s:7.2f}x the time"),
            *((f"full read, {name}", f"{seconds:7.2f} s") for name, seconds in reads.items()),
        ]
        for label, value in rows:
            print(f"{label:<31}: {value}")

if __name__ == "__main__":
    main()
