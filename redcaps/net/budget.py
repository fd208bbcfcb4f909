"""Where the per-host throttle state lives: in one process, or shared by every process of a machine.

Hosts count requests per client IP, so by default every download process on a machine draws on
one budget per host and egress route (source address and proxy): a 104-byte record per host in a
file under the user's runtime directory, read and written under ``fcntl.flock``. Processes that
start later pick up the rate the others have learned.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from redcaps.net.throttle import STALE_AFTER, ThrottleState

Fresh = Callable[[], ThrottleState]


class ProcessBudget:
    """Throttle states kept in this process (shared by its threads only)."""

    def __init__(self) -> None:
        self._states: dict[str, ThrottleState] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def state(self, key: str, fresh: Fresh) -> Iterator[ThrottleState]:
        with self._lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = fresh()
            yield state


def default_budget_dir() -> Path:
    """``$XDG_RUNTIME_DIR/redcaps/hosts`` (per user, cleared at logout), else a per-user temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "redcaps" / "hosts"
    return Path(tempfile.gettempdir()) / f"redcaps-{os.getuid()}" / "hosts"


class MachineBudget:
    """Throttle states in files under ``directory``, shared by every process that uses it."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_budget_dir()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fds: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        readable = re.sub(r"[^A-Za-z0-9.-]+", "_", key.rsplit("|", 1)[-1])[:60]
        return self.directory / f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def _open(self, key: str) -> tuple[int, threading.Lock]:
        with self._lock:
            if key not in self._fds:
                self._fds[key] = os.open(self.path(key), os.O_RDWR | os.O_CREAT, 0o600)
                self._locks[key] = threading.Lock()
            return self._fds[key], self._locks[key]

    @contextlib.contextmanager
    def state(self, key: str, fresh: Fresh) -> Iterator[ThrottleState]:
        # flock excludes other processes; threads of this one share the descriptor, hence the Lock
        fd, lock = self._open(key)
        size = ThrottleState.FORMAT.size
        with lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(fd, size, 0)
                state = fresh()
                if len(raw) == size:
                    stored = ThrottleState.unpack(raw)
                    if abs(state.stamp - stored.stamp) < STALE_AFTER:
                        state = stored
                yield state
                os.pwrite(fd, state.pack(), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def egress_route(source_address: str = "", proxy: str = "") -> str:
    """What hosts see as the client, the first part of a budget's key: the proxy when there is
    one, else this machine (or the bound source address)."""
    return f"{source_address or '-'}|{proxy or '-'}"
