"""Wall-clock timing shared by the benchmarks (each runs as a script, so this folder is on sys.path)."""

import time


def timed(fn) -> tuple[float, object]:
    """Call ``fn()``; return (seconds of wall time, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result
