"""Atomic file writes that leave nothing behind when they fail, are interrupted or are killed.

A writer of ``NAME`` fills the hidden file ``.NAME.partial`` beside it while holding an exclusive
`fcntl.flock` lock on it, and renames it to ``NAME`` only once it is complete. The lock dies with its
process, so a partial file that nobody holds locked was left by a killed writer (kill -9, out of
memory, power loss) and the next writer of ``NAME`` takes it over; a locked one belongs to a live
writer, and a second writer of ``NAME`` refuses to start.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from astrogen.errors import InputFileError


class PartialFile:
    """The locked partial file of ``path``: write it, then `commit` it into place or `discard` it.

    It is also the file object HDF5 writes through (``h5py.File(partial, "w")``, h5py's ``fileobj``
    driver). A failed write or truncate (disk full, I/O error) is kept in ``error`` and raised by
    `commit` rather than reported to HDF5, which cannot recover from one: it leaves the file half
    closed and the process crashes on exit (h5py issue #2160). For the same reason, make HDF5 calls on
    it inside `signals_deferred`. As a context manager it commits on success and discards on an error.

    Parameters
    ----------
    path : the file to write.
    overwrite : replace an existing ``path`` (when committing); otherwise an existing one is an error.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputFileError(f"{self.path.parent}: output directory does not exist")
        if self.path.is_dir():
            raise InputFileError(f"{self.path}: is a directory; give a file name")
        if self.path.exists() and not overwrite:
            raise InputFileError(f"{self.path}: file exists (choose another name or overwrite it)")
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        self.error: OSError | None = None
        self._fd: int | None = _claim(self.tmp, self.path)
        self._pos = 0

    def _fail(self, err: OSError) -> None:
        if self.error is None:
            self.error = OSError(err.errno, err.strerror, str(self.path))

    # The file-object protocol of h5py's fileobj driver (it recognises a file object by read and seek).

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            offset += os.fstat(self._fd).st_size
        elif whence == os.SEEK_CUR:
            offset += self._pos
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def read(self, size: int) -> bytes:
        data = os.pread(self._fd, size, self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:
        try:
            done = os.preadv(self._fd, [buffer], self._pos)
        except OSError as err:
            self._fail(err)
            return 0
        self._pos += done
        return done

    def write(self, data) -> int:
        """Write ``data`` at the current position; a failure goes to ``error`` (see the class)."""
        view = memoryview(data).cast("B")
        while view and self.error is None:  # after a failure the file is lost: skip the rest
            try:
                done = os.pwrite(self._fd, view, self._pos)
            except OSError as err:
                self._fail(err)
            else:
                view, self._pos = view[done:], self._pos + done
        return len(data)

    def truncate(self, size: int) -> None:
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as err:
                self._fail(err)

    def flush(self) -> None:
        """Nothing to do: writes go straight to the OS, and `commit` syncs them to disk."""

    def commit(self) -> None:
        """Sync the file to disk, rename it to ``path`` and release it; on any failure discard it and raise."""
        try:
            if self.error is not None:
                raise self.error
            os.fsync(self._fd)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        os.close(self._fd)
        self._fd = None

    def discard(self) -> None:
        """Remove the partial file and release it (nothing to do once committed or discarded)."""
        if self._fd is None:
            return
        try:
            self.tmp.unlink(missing_ok=True)  # while still locked: the name is ours until we let go
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _claim(tmp: Path, path: Path) -> int:
    """Open ``tmp`` locked and empty, taking it over from a killed writer; refuse one held by a live one."""
    while True:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputFileError(
                    f"{path}: another process is writing it (its partial file {tmp.name} is locked)"
                ) from None
            except OSError:
                pass  # no flock on this file system (e.g. Lustre without -o flock): cannot detect a live writer
            try:
                if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                    os.ftruncate(fd, 0)  # drop what a killed writer left
                    return fd
            except FileNotFoundError:
                pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its writer renamed or removed it between our open and our lock: start again


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then pass them to their handlers as usual.

    For HDF5 calls on a `PartialFile`: HDF5 reads and writes it through Python methods, and an exception
    raised in one (the KeyboardInterrupt of Ctrl-C, or of the CLI's SIGTERM handler) leaves HDF5 as
    broken as a failed write does.
    """
    with ExitStack() as stack:  # which puts back every handler even if passing one signal on raises
        if threading.current_thread() is threading.main_thread():  # the only one to run signal handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                stack.enter_context(_held(signum))
        yield


@contextmanager
def _held(signum: int) -> Iterator[None]:
    handler = signal.getsignal(signum)
    if handler is None:  # installed outside Python: it could not be put back
        yield
        return
    caught = []
    signal.signal(signum, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signum, handler)
        for args in caught:
            if callable(handler):
                handler(*args)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, replacing any existing file."""
    with PartialFile(path, overwrite=True) as partial:
        partial.write(text.encode("utf-8"))


def format_size(size: float) -> str:
    """``size`` bytes in words, e.g. ``"4.2 MB"``."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            break
        size /= 1000
    return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"


def check_free_space(path: str | os.PathLike, size: int) -> None:
    """Raise `InputFileError` if the file system of ``path`` has less than ``size`` bytes free."""
    free = shutil.disk_usage(Path(path).parent).free
    if size > free:
        raise InputFileError(
            f"{path}: needs about {format_size(size)}, but only {format_size(free)} is free on its file system"
        )


def jsonable(value):
    """``value`` as plain JSON data: NumPy arrays and scalars to lists and numbers, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
