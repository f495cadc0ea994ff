"""Atomic file writes: a reader never sees a half-written manifest, report or checkpoint."""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give them the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class FileLock:
    """An exclusive advisory lock on ``path`` (``fcntl.flock``) that names its holder.

    The lock belongs to the open file, so it is released by :meth:`release` or when the holding
    process ends however it ends (``kill -9`` included): a crashed run never leaves a stale lock.
    The file holds the holder's pid, for the message another process gets.

    Args:
        path: the lock file (created; its folder must exist).
        what: what the lock protects, for messages ("the store data/embeddings/x").
        wait: block until the holder releases it (logging once who holds it) instead of raising.

    Raises:
        ConfigError: ``wait`` is false and another process holds the lock, or the folder is not
            writable.
    """

    def __init__(self, path: str | os.PathLike, what: str, wait: bool = False) -> None:
        import fcntl
        import logging

        from speakerid.errors import ConfigError

        self.path = Path(path)
        try:
            self._file = open(self.path, "a+")  # noqa: SIM115 (held until release)
        except OSError as err:
            raise ConfigError(f"{self.path.parent}: cannot write here ({err.strerror})") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            if not wait:
                self._file.close()
                raise ConfigError(
                    f"{what} is being written by {holder} (lock {self.path}); wait for it to "
                    "finish or choose another output"
                ) from None
            logging.getLogger(__name__).info("Waiting for %s, which holds %s", holder, self.path)
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()

    def release(self, remove: bool = False) -> None:
        """Release the lock (``remove``: also delete the file, while still holding it)."""
        if self._file.closed:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        self._file.close()


def writable_folder(folder: str | os.PathLike, what: str = "output") -> Path:
    """``folder``, created if needed, after proving a file can be written in it (before any
    work whose results would go there).

    Raises:
        ConfigError: it cannot be created or written (read-only, full, not a folder).
    """
    from speakerid.errors import ConfigError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"{folder}: cannot write the {what} here ({err.strerror or err}); choose another"
        ) from None
    return folder
