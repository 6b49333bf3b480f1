"""benchmarks/run_all.py keeps what a partial run (``--only``) does not re-measure."""

import importlib
from pathlib import Path


def test_a_partial_run_keeps_the_other_rows_sections_and_machines(monkeypatch):
    monkeypatch.syspath_prepend(Path(__file__).resolve().parents[1] / "benchmarks")
    module = importlib.import_module("run_all")
    first = module.render(
        [{"name": name, "command": f"python benchmarks/{name}.py", "started": "T0", "load": 0.5, "seconds": 2.0,
          "returncode": 0, "lines": [f"headline: {name} = 1 s"], "stderr": []} for name in ("bench_a", "bench_b")],
        ["- machine one"], ["bench_a", "bench_b"])
    first += "\n## Learning curves\n\na table\n"
    again = {"name": "bench_b", "command": "python benchmarks/bench_b.py", "started": "T1", "load": 1.5,
             "seconds": 3.0, "returncode": 0, "lines": ["headline: bench_b = 2 s"], "stderr": []}
    second = module.render([again], ["- machine two"], ["bench_b"], first)
    assert "| bench_a | ok (earlier run) | 2 | bench_a = 1 s |" in second
    assert "| bench_b | ok | 3 | bench_b = 2 s |" in second and "bench_b = 1 s" not in second
    assert "started T0" in second and "started T1" in second and "\n## Learning curves\n\na table\n" in second
    assert "- machine two\n- machines of earlier runs (their sections say when):\n  - machine one\n" in second
    third = module.render([again], ["- machine three"], ["bench_b"], second)
    assert "(earlier run) (earlier run)" not in third
    assert "  - machine two\n  - machine one\n" in third
    pending = module.render([again], ["- m"], ["bench_b", "bench_a"], first)  # bench_a not yet run again
    assert "| bench_a | ok (earlier run) | 2 | bench_a = 1 s |" in pending and "not run" not in pending
    assert "| bench_a | not run | | |" in module.render([again], ["- m"], ["bench_b", "bench_a"])
