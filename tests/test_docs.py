"""The docs site builds with warnings as errors, and every code block in it runs, so the docs stay true.

Each page's fenced ```bash and ```python blocks run in order in a fresh temporary folder that holds links to the
repository's ``configs/`` and ``examples/`` (the docs are written for a shell at the repository root): bash
blocks with ``bash -e -o pipefail`` and the venv's ``astrogen`` first on PATH, python blocks in one namespace per
page. A block that cannot run here (GPU, SLURM, several nodes, hours) carries ``<!-- norun: REASON -->`` on the
line before its fence; a marker without a reason, or one not followed by a fence, fails. Every fence names its
language, so no block is left out by accident: ```text (and yaml, json, console) blocks are shown, not run.

Pages run as separate processes, ``os.cpu_count()`` at a time; ``python tests/test_docs.py docs/PAGE.md``
runs one page by hand (``--keep`` keeps its folder).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains, samples or builds the site: `make test`, not `make test-fast`

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUN = {"bash", "python"}
SHOW = {"text", "yaml", "json", "console"}
LINKED = ("configs", "examples")  # what a reader at the repository root has beside them
BLOCK_TIMEOUT_S = 300
FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,})(?P<lang>[\w+-]*)\s*$")
NORUN = re.compile(r"^\s*<!--\s*norun:(?P<reason>.*?)-->\s*$")


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    norun: str | None  # the reason, when the block is marked not to run


def parse(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown page, with its norun reason; malformed markers raise ValueError."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = path.relative_to(DOCS).as_posix() if path.is_relative_to(DOCS) else str(path)
    blocks, norun, i = [], None, 0
    while i < len(lines):
        marker = NORUN.match(lines[i])
        if marker:
            reason = marker.group("reason").strip()
            if not reason:
                raise ValueError(f"{name}:{i + 1}: <!-- norun: --> needs a reason")
            norun = (reason, i + 1)
            i += 1
            continue
        fence = FENCE.match(lines[i])
        if fence is None:
            if norun is not None and lines[i].strip():
                raise ValueError(f"{name}:{norun[1]}: a norun marker must be followed by a code fence")
            i += 1
            continue
        lang, start, ticks, indent = fence.group("lang"), i + 1, fence.group("ticks"), len(fence.group("indent"))
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{name}:{start}: unclosed code fence")
        if lang not in RUN | SHOW:
            raise ValueError(f"{name}:{start}: fence language {lang!r}; use one of {sorted(RUN | SHOW)}")
        blocks.append(Block(name, start, lang, "\n".join(body) + "\n", norun[0] if norun else None))
        norun = None
        i += 1
    if norun is not None:
        raise ValueError(f"{name}:{norun[1]}: a norun marker must be followed by a code fence")
    return blocks


def _has_runnable_blocks(page: Path) -> bool:
    try:
        return any(b.lang in RUN and b.norun is None for b in parse(page))
    except ValueError:
        return True  # a malformed page fails its run (and test_markers_and_fences_are_well_formed) with the reason


PAGES = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)
RUNNABLE = [p for p in PAGES if _has_runnable_blocks(p)]


def _cpu_seconds() -> float:
    """User + system time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_page(page: Path, workdir: Path) -> None:
    """Run one page's blocks in order in ``workdir`` (this process: python blocks share one namespace)."""
    for name in LINKED:
        (workdir / name).symlink_to(ROOT / name, target_is_directory=True)
    os.chdir(workdir)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    os.environ.update(MPLBACKEND="Agg")
    namespace: dict = {"__name__": "__main__"}
    page_start, page_cpu = time.perf_counter(), _cpu_seconds()
    for block in parse(page):
        if block.lang not in RUN or block.norun is not None:
            continue
        where = f"{block.page}:{block.line}"
        print(f"\n===== {where} ({block.lang})", flush=True)
        start, cpu = time.perf_counter(), _cpu_seconds()
        if block.lang == "bash":
            try:
                done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=workdir, env=env,
                                      timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise SystemExit(f"FAILED {where}: timed out after {BLOCK_TIMEOUT_S} s") from None
            if done.returncode != 0:
                raise SystemExit(f"FAILED {where}: exit status {done.returncode}")
        else:
            try:
                exec(compile(block.code, where, "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                raise SystemExit(f"FAILED {where}") from None
        print(f"----- {where}: {time.perf_counter() - start:.1f} s wall, {_cpu_seconds() - cpu:.1f} s CPU", flush=True)
    print(f"===== {page.name}: {time.perf_counter() - page_start:.1f} s wall, {_cpu_seconds() - page_cpu:.1f} s CPU",
          flush=True)


# Rough CPU seconds of the slowest pages (measured), to start them first.
PAGE_WEIGHT = {"scaling.md": 40, "getting-started.md": 40, "gans.md": 30, "command-line.md": 20, "training.md": 20,
               "inference.md": 20, "diffusion.md": 20, "redshift-judge.md": 20}


def _run_in_subprocess(page: Path) -> tuple[int, str, float]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="astrogen-docs-") as tmp:
        done = subprocess.run([sys.executable, __file__, str(page), "--workdir", tmp], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, cwd=tmp)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


@pytest.fixture(scope="session")
def page_runs(request):
    """The selected pages, started together on a pool of os.cpu_count() processes; {page: future}."""
    selected = [item.callspec.params["page"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_page_blocks_run"]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
    # Longest first, so the pool does not end on a long page alone.
    order = sorted(selected, key=lambda page: -PAGE_WEIGHT.get(page.relative_to(DOCS).as_posix(), 1))
    futures = {page: pool.submit(_run_in_subprocess, page) for page in order}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def test_markers_and_fences_are_well_formed():
    norun = []
    for page in PAGES:
        blocks = parse(page)  # raises on a marker without a reason or fence, or an unnamed fence language
        norun += [b for b in blocks if b.norun is not None]
    assert all(b.lang in RUN and len(b.norun) >= 10 for b in norun), [
        (b.page, b.line, b.norun) for b in norun if b.lang not in RUN or len(b.norun) < 10]
    assert RUNNABLE, "no page with a runnable block"


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.relative_to(DOCS).as_posix() for p in RUNNABLE])
def test_page_blocks_run(page, page_runs):
    code, output, seconds = page_runs[page].result()
    print(f"{page.relative_to(DOCS)}: {seconds:.1f} s")
    assert code == 0, output[-6000:]


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing page or a docstring griffe cannot read fails."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert (tmp_path / "site" / "index.html").exists()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run one docs page's code blocks in order.")
    parser.add_argument("page", type=Path)
    parser.add_argument("--workdir", type=Path, help="run here (default: a fresh temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    page = args.page.resolve()
    if args.workdir is not None:
        run_page(page, args.workdir)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="astrogen-docs-"))
        try:
            run_page(page, tmp)
        finally:
            print(f"folder {tmp}" if args.keep else "", flush=True)
            if not args.keep:
                with contextlib.suppress(OSError):
                    shutil.rmtree(tmp)
