"""Files that every process of one machine shares, in a directory no other local user can tamper with.

The directory is trusted only if this process's user owns it and neither its group nor others may write to it:
it is opened once (no symbolic link followed) and kept open, and its files are opened relative to it, without
following links, and checked to be this user's own regular files. So another local user can neither plant a
link that makes a process overwrite a file nor a file whose content every process would believe. Each file is
read and written under an exclusive ``flock`` (released by the kernel if the process dies).

Used by the ``host`` rate budget (:mod:`~airflow_provider_ghl.hooks.budget_host`) and the shared agency
location tokens (:mod:`~airflow_provider_ghl.hooks.location_tokens`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path


class LockedFile:
    """One file held under its lock: what it held when locked, and a way to replace it.

    :param fd: the open, locked file.
    :param data: its content when it was locked.
    """

    def __init__(self, fd: int, data: bytes) -> None:
        self.fd = fd
        self.data = data

    def write(self, data: bytes) -> None:
        """Make ``data`` the file's content (in place; cut only when it shrank: truncating to 0 first cost
        more than a whole budget step, since the filesystem frees the blocks)."""
        if data == self.data:
            return
        os.pwrite(self.fd, data, 0)
        if len(data) < len(self.data):
            os.ftruncate(self.fd, len(data))
        self.data = data


class PrivateDirectory:
    """A directory of this user's, created private when missing, opened and held.

    :param path: the directory.
    :param error: makes the exception to raise from a problem's description (it completes "<path> ...").
    """

    def __init__(self, path: Path, error: Callable[[str], Exception]) -> None:
        self.path = path
        self._error = error
        # flock belongs to an open file, not a thread: threads of this process take turns here first.
        self._mutex = threading.Lock()
        self._fd = self._open()

    def _open(self) -> int:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.path.is_symlink():
                raise self._error("is a symbolic link: name the directory itself")
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as err:
            raise self._error(f"is not usable: {err.strerror or err}") from None
        info = os.fstat(fd)
        problem = None
        if info.st_uid != os.geteuid():
            problem = f"is owned by uid {info.st_uid}, not by this process's user (uid {os.geteuid()})"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"may be written by its group or others (mode {stat.filemode(info.st_mode)})"
        if problem is not None:
            os.close(fd)
            raise self._error(f"{problem}: use a directory only the Airflow user can write to (chmod 700)")
        return fd

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[LockedFile]:
        """File ``name`` of the directory (created 0600 when missing) under its exclusive lock, with its content.

        :param name: a plain file name.
        """
        with self._mutex:
            fd = self._open_file(name)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield LockedFile(fd, _read_all(fd))
            except OSError as err:
                raise self._error(f"is not usable: {err.strerror or err}") from None
            finally:
                os.close(fd)  # also releases the lock

    def _open_file(self, name: str) -> int:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=self._fd)
        except OSError as err:
            raise self._error(f"holds {name!r}, which cannot be opened as a file: {err.strerror or err}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
            os.close(fd)
            raise self._error(f"holds {name!r}, which is not this user's own regular file")
        return fd

    def unlink(self, name: str) -> None:
        """Remove file ``name`` if it is there."""
        with self._mutex, contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
