"""Helpers shared by the benchmarks (each runs as a script, so this folder is on sys.path)."""

import time

HEADLINE = "headline:"  # prefix of the lines that run_all.py collects into the summary of results.md


def timed(fn) -> tuple[float, object]:
    """Call ``fn()``; return (seconds of wall time, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def headline(name: str, value: float, unit: str = "") -> None:
    """Print one headline figure as ``headline: name = value unit`` (4 significant digits)."""
    print(f"{HEADLINE} {name} = {value:.4g} {unit}".rstrip(), flush=True)
