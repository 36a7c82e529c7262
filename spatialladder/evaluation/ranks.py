"""The processes of one evaluation run: each rank's distributed state, ranks that die with their
launcher, and the lock that keeps two runs out of one output folder.

* :func:`rank_state` is accelerate's :class:`~accelerate.PartialState` with a gloo process group (the
  runner only synchronises and broadcasts small objects; NCCL's watchdog would kill a rank that waits at
  a barrier longer than its timeout while a slower rank is still generating).
* :func:`die_with_launcher`: when ``torchrun`` / ``accelerate launch`` is killed (SIGKILL, OOM killer),
  its ranks used to run on to the end; a rerun then raced them and wrote duplicate doc ids. A rank that
  a launcher started now receives SIGKILL the moment its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``;
  elsewhere a watchdog thread polls the parent pid). The runner is built to be killed at any line:
  replies are fsynced one per line and a truncated last line is repaired on resume.
* :class:`OutputLock`: an exclusive ``flock`` on ``OUTPUT/.run.lock`` held by rank 0 for the whole run,
  with the holder's pid written inside. The kernel drops the lock when its holder dies however it dies,
  so a lock left by a dead run is free and is simply taken over; a live holder is named in the refusal.
"""

from __future__ import annotations

import ctypes
import datetime
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["LAUNCHER_PID_ENV", "LOCK_FILE", "OutputLock", "OutputLocked", "die_with_launcher", "rank_state"]

# Exported by eval/run_eval.sh before it execs the launcher, so a rank knows its launcher's pid even
# if the launcher died before the rank could arm its death signal.
LAUNCHER_PID_ENV = "SPATIALLADDER_LAUNCHER_PID"
LOCK_FILE = ".run.lock"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _launcher_pid() -> int | None:
    """The pid of the launcher that started this process, or None for a process no launcher started."""
    value = os.environ.get(LAUNCHER_PID_ENV)
    if value:
        pid = int(value)
        return None if pid == os.getpid() else pid  # LAUNCHER=python: run_eval.sh exec'd this process
    if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun / accelerate's multi-process launch, run directly
        return os.getppid()
    return None


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_launcher() -> int | None:
    """Make this process die (SIGKILL) when the launcher that started it dies; returns the launcher's pid,
    or None (nothing armed) for a process started without a launcher: a plain ``python`` run must outlive
    the shell that started it (nohup)."""
    parent = _launcher_pid()
    if parent is None:
        return None
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    else:
        threading.Thread(target=_watch_parent, args=(parent,), name="launcher-watchdog", daemon=True).start()
    if os.getppid() != parent:  # the launcher died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
    return parent


def rank_state() -> Any:
    """This rank's :class:`accelerate.PartialState` (rank, world size, device, barrier), tied to its
    launcher first. Under ``torchrun``/``accelerate launch`` it joins a gloo process group (also on GPUs:
    see the module docstring), whose barrier waits ``SPATIALLADDER_EVAL_BARRIER_HOURS`` (default 48)."""
    import torch
    from accelerate import PartialState

    die_with_launcher()
    kwargs: dict[str, Any] = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        hours = float(os.environ.get("SPATIALLADDER_EVAL_BARRIER_HOURS", "48"))
        kwargs = {"backend": "gloo", "timeout": datetime.timedelta(hours=hours)}
    # cpu=True on a machine without CUDA: accelerate only forms a multi-process CPU group when told so.
    return PartialState(cpu=not torch.cuda.is_available(), **kwargs)


class OutputLocked(RuntimeError):
    """Another live run holds the output folder's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class OutputLock:
    """Exclusive lock on one output folder for the lifetime of a run (see the module docstring).

    The lock file is never deleted: unlinking a flock'ed file lets a waiting process lock the old inode
    while a third one creates and locks a new file. Release empties it instead."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    @staticmethod
    def _read(fd: int) -> dict[str, Any] | None:
        data = os.pread(fd, 65536, 0)
        try:
            holder = json.loads(data)
        except ValueError:
            return None  # empty (released) or being written
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock; returns the record of a dead run whose lock this takes over (None if none).
        Raises :class:`OutputLocked` naming the live holder's pid."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this process")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_live_holder(fd)
            os.close(fd)
            raise OutputLocked(self._refusal(holder)) from None
        except BaseException:
            os.close(fd)
            raise
        previous = self._read(fd)
        record = {
            "pid": os.getpid(),
            "launcher_pid": _launcher_pid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return previous

    def _read_live_holder(self, fd: int) -> dict[str, Any] | None:
        # The holder writes its record just after locking: a reader can briefly see the previous
        # (dead) run's record or nothing. Re-read a moment until the record names a live process.
        holder = None
        for _ in range(50):
            holder = self._read(fd)
            if holder is not None and (holder.get("host") != socket.gethostname() or _pid_alive(holder["pid"])):
                return holder
            time.sleep(0.02)
        return holder

    def _refusal(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            who = "another process (its pid is not written yet)"
        else:
            launcher = f", launched by pid {holder['launcher_pid']}" if holder.get("launcher_pid") else ""
            who = (f"pid {holder['pid']} on {holder.get('host', '?')}{launcher}, started "
                   f"{holder.get('started', '?')}: {' '.join(holder.get('argv') or [])}")  # fmt: skip
        return (
            f"{self.folder} is in use by another evaluation run ({who}). Wait for it to finish or stop it "
            "(killing its launcher stops its ranks), or use another --output-dir. Nothing was changed."
        )

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file: no run holds or left the folder
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
