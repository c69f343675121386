"""One run per workdir (a lock), and paths refused up front when they cannot be used.

The lock is ``<workdir>/.lock``, held with ``fcntl.flock`` for as long as :func:`gan_jax.train`
runs: the kernel drops it when its process ends in any way (SIGKILL included), so a killed run
never leaves it stuck; the file keeps the holder's pid, host and start time, so a second run
on the same workdir is refused with a message naming the first. On several hosts only process
0 takes it. Where ``fcntl`` is missing (Windows), or the filesystem refuses ``flock``, no
lock is taken and a warning says so.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
from typing import Optional

from absl import logging

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"


class WorkdirInUse(ValueError):
    """Another live process holds the workdir's lock; the message names it."""


def check_writable_folder(path: str, what: str) -> str:
    """``path`` as an absolute path, if it is a folder that can be written to or can be created.

    Raises:
      ValueError: naming ``what`` (e.g. ``"--workdir"``) and the reason: it is a file, a part
        of it is a file, or the folder (or the nearest existing one above it) is not writable.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{what} {path} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{what} {path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: {existing} is not writable")
    return path


def check_output_file(path: str, what: str) -> str:
    """``path`` as an absolute path, if a file can be written there (its folder is usable and
    it is not a folder itself)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} {path} is a folder, not a file")
    check_writable_folder(os.path.dirname(path), f"the folder of {what}")
    return path


class WorkdirLock:
    """Context manager holding ``<workdir>/.lock`` (module docstring); ``enabled=False`` (the
    processes other than 0 of a multi-host run) makes it a no-op."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
        self.enabled = enabled and fcntl is not None
        self._file = None

    def __enter__(self) -> "WorkdirLock":
        if not self.enabled:
            return self
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _describe_holder(f)
            f.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WorkdirInUse(
                    f"{os.path.dirname(self.path)} is in use by another training run "
                    f"({holder}); wait for it to end or stop it, or use another --workdir") from e
            logging.warning("%s: cannot lock (%s); running without the one-run-per-workdir "
                            "check", self.path, e)
            return self
        f.seek(0)
        f.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": datetime.datetime.now().isoformat(timespec="seconds")}, f)
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.close()  # closing releases the flock
            self._file = None


def _describe_holder(f) -> str:
    f.seek(0)
    try:
        info: Optional[dict] = json.loads(f.read() or "null")
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return "its details are not readable yet"
    return f"process {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
