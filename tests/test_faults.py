"""Writes that survive faults: full disks, I/O errors, signals, killed processes, bad output paths."""

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from astrogen._io import format_size, signals_deferred
from astrogen.data import FieldMeta, FieldSet, FieldSetWriter
from astrogen.errors import InputFileError
from astrogen.sims import get_simulator


def simulate(n):
    """Arguments of ``astrogen simulate`` for ``n`` small (8 x 8) blob images."""
    return ["simulate", "blobs", "--n", str(n), "--set", "size=8", "--set", "n_blobs=1"]


BIG = simulate(300_000)  # minutes of work (about 100 MB): always stopped long before the end


def start_cli(*args, **popen) -> subprocess.Popen:
    """``astrogen ARGS`` in a child process."""
    return subprocess.Popen([sys.executable, "-c", "from astrogen.cli import main; main()", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **popen)


def wait_for_data(partial, proc, timeout=120.0):
    """Wait until the child has written samples into ``partial``."""
    stop = time.monotonic() + timeout
    while not (partial.exists() and partial.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < stop, f"{partial} not written within {timeout} s"
        time.sleep(0.05)


def fail_when_armed(monkeypatch, name, code):
    """Make ``os.<name>`` raise OSError(code) once ``armed.on`` is set."""
    armed, real = SimpleNamespace(on=False), getattr(os, name)

    def call(*args, **kwargs):
        if armed.on:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, call)
    return armed


def write(path, n=4, overwrite=False):
    with FieldSetWriter(path, (1, 8, 8), FieldMeta(channels=["x"]), overwrite=overwrite) as writer:
        writer.append(np.ones((n, 1, 8, 8)))


# HDF5's last writes and size change at close, the fsync before the rename, the rename.
@pytest.mark.parametrize(("call", "code"), [("pwrite", errno.ENOSPC), ("ftruncate", errno.ENOSPC),
                                            ("fsync", errno.EIO), ("replace", errno.EISDIR)])
def test_a_failure_at_close_flush_or_rename_raises_one_error_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                                     call, code):
    path = tmp_path / "set.h5"
    write(path)
    before = path.read_bytes()
    armed = fail_when_armed(monkeypatch, call, code)
    with pytest.raises(InputFileError) as caught, \
            FieldSetWriter(path, (1, 8, 8), FieldMeta(channels=["x"]), overwrite=True) as writer:
        writer.append(np.zeros((4, 1, 8, 8)))
        armed.on = True  # the failure comes when the block ends
    assert str(caught.value) == f"{path}: cannot write it ({os.strerror(code)}); its partial file was removed"
    assert list(tmp_path.iterdir()) == [path] and path.read_bytes() == before


def test_a_full_disk_stops_the_writer_at_once(tmp_path, monkeypatch):
    armed = fail_when_armed(monkeypatch, "pwrite", errno.ENOSPC)
    with pytest.raises(InputFileError, match="No space left on device"), \
            FieldSetWriter(tmp_path / "set.h5", (1, 2048, 2048), FieldMeta(channels=["x"])) as writer:
        armed.on = True
        writer.append(np.ones((1, 1, 2048, 2048), np.float32))  # 16 MiB: over HDF5's 8 MiB chunk cache
        pytest.fail("the failed append should have raised")
    assert list(tmp_path.iterdir()) == []


def test_cli_write_failure_prints_one_error_line(tmp_path, monkeypatch, cli):
    fail_when_armed(monkeypatch, "fsync", errno.ENOSPC).on = True
    code, _, err = cli(*simulate(50), "--out", str(tmp_path / "set.h5"))
    assert code == 2 and err.startswith("error:") and "No space left on device" in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_really_full_file_system_gives_one_error_line_not_a_crash(tmp_path):
    # The file-size limit makes every write past 1 MB fail (EFBIG), as a full disk does, inside HDF5;
    # before, HDF5 was left half closed and the process died with a segfault at exit.
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    proc = start_cli(*simulate(20_000), "--out", tmp_path / "set.h5", preexec_fn=limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert err.startswith("error:") and "File too large" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_during_simulate_removes_the_partial_file(tmp_path, signum):
    out = tmp_path / "set.h5"
    proc = start_cli(*BIG, "--out", out)
    try:
        wait_for_data(tmp_path / ".set.h5.partial", proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert err.strip() == "interrupted; no partial output was kept"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_rerun_takes_over_the_partial_file_of_a_killed_run(tmp_path, cli):
    out, partial = tmp_path / "set.h5", tmp_path / ".set.h5.partial"
    proc = start_cli(*BIG, "--out", out)
    try:
        wait_for_data(partial, proc)
    finally:
        proc.kill()  # SIGKILL: no clean-up runs
        proc.communicate()
    assert list(tmp_path.iterdir()) == [partial]
    code, _, err = cli(*simulate(50), "--out", str(out))
    assert code == 0, err
    assert list(tmp_path.iterdir()) == [out]
    with FieldSet(out) as fs:
        assert len(fs) == 50


def test_a_second_writer_is_refused_while_the_first_lives(tmp_path):
    path = tmp_path / "set.h5"
    first = FieldSetWriter(path, (1, 8, 8), FieldMeta(channels=["x"]))
    with pytest.raises(InputFileError, match=r"set\.h5: another process is writing it"):
        FieldSetWriter(path, (1, 8, 8), FieldMeta(channels=["x"]))
    first.append(np.ones((2, 1, 8, 8)))
    first.close().close()
    write(path, overwrite=True)  # the lock went with the first writer
    assert list(tmp_path.iterdir()) == [path]


def test_a_directory_as_output_is_refused_in_one_line(tmp_path, cli):
    folder = tmp_path / "set.h5"
    folder.mkdir()
    code, _, err = cli(*simulate(50), "--out", str(folder), "--overwrite")
    assert code == 2 and err.strip() == f"error: {folder}: is a directory; give a file name"
    assert list(tmp_path.iterdir()) == [folder] and list(folder.iterdir()) == []


def test_too_little_free_space_is_refused_before_simulating(tmp_path, monkeypatch, cli):
    monkeypatch.setattr("shutil.disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9, free=10**6))
    monkeypatch.setattr("astrogen.sims.base.iter_blocks", lambda *args: pytest.fail("simulated anyway"))
    out = tmp_path / "set.h5"
    code, _, err = cli(*simulate(4000), "--out", str(out))
    spec = get_simulator("blobs", {"size": 8, "n_blobs": 1}).spec()
    size = 4000 * (4 * 64 + 8 * len(spec.param_names))
    assert code == 2 and err.strip() == (f"error: {out}: needs about {format_size(size)}, but only 1.0 MB is "
                                         "free on its file system")
    assert list(tmp_path.iterdir()) == []


def test_signals_wait_for_the_end_of_an_hdf5_call():
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            assert received == []
        assert received == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt), signals_deferred():  # Ctrl-C: Python's own handler
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
