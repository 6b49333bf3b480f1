"""The demo behind ``make demo``: simulate a Gaussian-blob set to disk, read it back, summarise it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.table import Table

from astrogen.data import FieldSet
from astrogen.data.transforms import ChannelStats
from astrogen.sims import simulate_to_file


def count_peaks(images: torch.Tensor, threshold: float) -> torch.Tensor:
    """Number of 8-neighbour local maxima above ``threshold`` in each image of ``[N, 1, H, W]``."""
    neighbourhood_max = F.max_pool2d(images, kernel_size=3, stride=1, padding=1)
    return ((images == neighbourhood_max) & (images > threshold)).sum(dim=(1, 2, 3))


@dataclass
class DemoResult:
    """What the demo made and measured."""

    path: Path
    n: int
    seconds: float
    file_mib: float
    stats: ChannelStats
    blobs_per_image: float
    peaks_per_image: float

    def table(self) -> Table:
        table = Table(title="astrogen demo: Gaussian-blob set", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        s = self.stats
        for key, value in [
            ("file", f"{self.path} ({self.file_mib:.1f} MiB)"),
            ("images", f"{self.n} in {self.seconds:.2f} s ({self.n / self.seconds:,.0f} images/s, with writing)"),
            ("pixel mean / std", f"{s.mean[0]:.4f} / {s.std[0]:.4f}"),
            ("pixel min / max", f"{s.min[0]:.4f} / {s.max[0]:.4f}"),
            ("blobs per image", f"{self.blobs_per_image:.1f} injected"),
            ("peaks per image", f"{self.peaks_per_image:.1f} found above 0.5 (blended blobs merge)"),
            ("next", f"astrogen info {self.path}"),
        ]:
            table.add_row(key, value)
        return table


def run_demo(out_dir: str | os.PathLike = "astrogen-demo", n: int = 2000, seed: int = 0,
             progress: bool = False) -> DemoResult:
    """Simulate ``n`` 50-blob images into ``out_dir/blobs.h5`` and summarise them from the file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "blobs.h5"
    start = time.perf_counter()
    simulate_to_file("blobs", n, path, seed=seed, config={"n_blobs": 50}, overwrite=True, progress=progress)
    seconds = time.perf_counter() - start
    with FieldSet(path) as fs:
        stats = ChannelStats.of(fs)
        peaks = torch.cat([count_peaks(torch.from_numpy(b.images), 0.5) for b in fs.batches(512)])
        blobs = float(fs.params["n_blobs"].mean())
    return DemoResult(path, n, seconds, path.stat().st_size / 2**20, stats, blobs, float(peaks.float().mean()))
