"""Run every ``benchmarks/bench_*.py`` (or those named) and write their printed lines to ``results.md``.

Each script runs as a subprocess with its quick defaults; its stdout is echoed live and recorded; its
stderr (warnings, Lightning's banners) is kept aside and, only when the script fails, its last lines are
shown and recorded. ``results.md`` starts with the machine (CPU model, cores, load, torch version, device, threads),
a summary table of the ``headline:`` lines each script prints, then per benchmark its command, start
time, wall time, exit status and output. The file is rewritten atomically after every benchmark, so an
interrupted run leaves the benchmarks finished so far. What the previous file holds that this run does not
produce is kept: the benchmarks not (yet) run, marked "earlier run" in the summary, and other sections such as
`bench_learning_curve`'s "Learning curves". Exits 1 if any benchmark failed. Run:
``.venv/bin/python benchmarks/run_all.py [--out benchmarks/results.md] [--only stats matter] [--note TEXT]``
(``make bench BENCH_ARGS="--only stats"`` passes these on).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import torch
from _timing import HEADLINE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STDERR_LINES = 20  # lines of a failing script's stderr kept in results.md
EARLIER = "machines of earlier runs"  # results.md's header line over those of the rows kept from earlier runs


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> list[str]:
    """Markdown bullet lines describing this machine and the settings that change the timings."""
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu (no CUDA device)"
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average at start "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)",
        f"- Python {platform.python_version()}, torch {torch.__version__}, device {device}",
        f"- OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {torch.get_num_threads()}",
        f"- platform {platform.platform()}; code at {commit or 'unknown commit'}",
    ]


def run(script: Path) -> dict:
    """Run one benchmark script; return its command, start time, seconds, exit status and output lines."""
    command = [sys.executable, str(script.relative_to(ROOT))]
    # This checkout's src first (the venv may hold another checkout's editable install); unbuffered for live echo.
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load = os.getloadavg()[0]  # the machine may be shared: other jobs slow every figure down
    print(f"== {script.name}", flush=True)
    lines = []
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                              bufsize=1) as process:
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip("\n"))
        stderr.seek(0)
        tail = list(deque(stderr, maxlen=STDERR_LINES)) if process.returncode else []
        if tail:
            sys.stderr.writelines(tail)
    return {"name": script.stem, "command": " ".join(["python", *command[1:]]), "started": started, "load": load,
            "seconds": time.perf_counter() - start, "returncode": process.returncode, "lines": lines,
            "stderr": [line.rstrip("\n") for line in tail]}


def earlier(text: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(one line per earlier run describing its machine, summary row per benchmark, section text per heading but
    the summary's) of a previous ``results.md``."""
    head = text.split("\n## ", 1)[0]
    own = "; ".join(line for line in re.findall(r"^- (.*)$", head, re.M) if not line.startswith(EARLIER))
    machine_lines = [own, *re.findall(r"^  - (.*)$", head, re.M)] if own else []
    rows = {m[1]: m[0] for m in re.finditer(r"^\| (bench_\w+) \|.*$", text, re.M)}
    sections = {m[1]: m[0].strip("\n") for m in re.finditer(r"^## ([^\n]+)\n.*?(?=^## |\Z)", text, re.M | re.S)}
    sections.pop("Summary", None)
    return list(dict.fromkeys(machine_lines)), rows, sections


def render(results: list[dict], header: list[str], names: list[str], previous: str = "") -> str:
    """The markdown of ``results.md``: ``results`` so far of this run of the benchmarks ``names``; what
    ``previous`` (the file's earlier text) holds for any other benchmark or section is kept."""
    machine_lines, rows, sections = earlier(previous)
    done = {r["name"]: r for r in results}
    kept = set(rows) - set(done)
    out = ["# astrogen benchmarks", "",
           "Written by `make bench` (`benchmarks/run_all.py`); every figure was measured in the run below, each",
           "ratio side by side within one script's run, except in the rows marked as from an earlier run.", "", *header]
    if kept:
        out += [f"- {EARLIER} (their sections say when):", *(f"  - {line}" for line in machine_lines)]
    out += ["", "## Summary", "", "| benchmark | status | seconds | headline figures |", "| --- | --- | --- | --- |"]
    for name in sorted(set(names) | kept):
        if r := done.get(name):
            figures = "; ".join(line[len(HEADLINE):].strip() for line in r["lines"] if line.startswith(HEADLINE))
            status = "ok" if r["returncode"] == 0 else f"FAILED (exit {r['returncode']})"
            out.append(f"| {name} | {status} | {r['seconds']:.0f} | {figures} |")
        elif name in rows:
            first, status, rest = rows[name].split(" | ", 2)
            out.append(" | ".join([first, status if "earlier run" in status else f"{status} (earlier run)", rest]))
        else:
            out.append(f"| {name} | not run | | |")
    for name in sorted(set(done) | set(sections), key=lambda name: (not name.startswith("bench_"), name)):
        out.append("")
        if r := done.get(name):
            out += [f"## {name}", "", f"`{r['command']}`: started {r['started']} (load average {r['load']:.2f}), "
                    f"{r['seconds']:.1f} s, exit {r['returncode']}", "", "```", *r["lines"], "```"]
            if r["stderr"]:
                out += ["", f"last {len(r['stderr'])} lines of stderr:", "", "```", *r["stderr"], "```"]
        else:
            out.append(sections[name])
    return "\n".join(out) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.partial`` and a rename."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="benchmarks to run, e.g. stats (bench_stats.py)")
    parser.add_argument("--note", default="", help="a line added under the machine description")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.only}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            sys.exit(f"run_all.py: no benchmarks named {sorted(unknown)}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    header = machine() + ([f"- {args.note}"] if args.note else [])
    previous = args.out.read_text() if args.out.is_file() else ""
    results = []
    for script in scripts:
        results.append(run(script))
        write_atomic(args.out, render(results, header, [s.stem for s in scripts], previous))
    failed = [r["name"] for r in results if r["returncode"]]
    total = sum(r["seconds"] for r in results)
    print(f"== {len(results) - len(failed)} of {len(results)} benchmarks passed in {total / 60:.1f} min; "
          f"wrote {args.out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
