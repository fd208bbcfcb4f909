"""The sandbox's request/response types, its router, and the request log tests read."""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    client: str

    @property
    def url(self) -> str:
        return f"https://{self.host}{self.path}"


@dataclass
class Response:
    """``fault``: None, "reset" (drop the connection), "truncate" (send half the body),
    "slow" (headers, then a stall longer than any sane read timeout), "trickle" (the body a
    byte at a time, each sooner than any read timeout) or "huge" (stream
    ``headers['Content-Length']`` bytes of zeros)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    fault: str | None = None
    delay: float = 0.0


Handler = Callable[[Request], "Response | None"]


class Router:
    """Handlers by hostname pattern; the first that answers wins."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, Handler]] = []

    def add(self, host_pattern: str, handler: Handler) -> None:
        self._routes.append((host_pattern.lower(), handler))

    def knows(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host.lower(), p) for p, _ in self._routes)

    def dispatch(self, request: Request) -> Response:
        for pattern, handler in self._routes:
            if fnmatch.fnmatchcase(request.host.lower(), pattern):
                response = handler(request)
                if response is not None:
                    return response
        return Response(404, {"Content-Type": "text/plain"}, b"not found")


@dataclass
class RequestRecord:
    host: str
    method: str
    path: str
    status: int
    started: float
    finished: float
    client: str
    user_agent: str


class RequestLog:
    """Every request the sandbox answered, for politeness assertions."""

    #: How long a reader waits for requests still being answered (a client can hold the
    #: whole response a moment before the server thread records it).
    SETTLE = 2.0

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Condition()
        self._in_flight = 0
        self._cleared_at = float("-inf")

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def end(self, record: RequestRecord | None) -> None:
        with self._lock:
            self._in_flight -= 1
            if record is not None and record.started >= self._cleared_at:
                self._records.append(record)
            self._lock.notify_all()

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        """Forget every request started so far, including those still being answered (a
        stalled response from an earlier test never shows up after the clear)."""
        with self._lock:
            self._records.clear()
            self._cleared_at = now()

    def records(self) -> list[RequestRecord]:
        """Every record, once requests in flight are recorded (waiting at most ``SETTLE`` s)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight <= 0, timeout=self.SETTLE)
            return list(self._records)

    def for_host(self, host: str) -> list[RequestRecord]:
        return [r for r in self.records() if r.host == host]

    def max_concurrency(self, host: str) -> int:
        """Most requests to ``host`` in flight at one moment (a sweep over intervals)."""
        events = sorted(
            [(r.started, 1) for r in self.for_host(host)] + [(r.finished, -1) for r in self.for_host(host)]
        )
        best = current = 0
        for _, delta in events:
            current += delta
            best = max(best, current)
        return best

    def max_rate(self, host: str, window: float) -> int:
        """Most requests to ``host`` that started within any ``window`` seconds."""
        starts = sorted(r.started for r in self.for_host(host))
        best, low = 0, 0
        for high, start in enumerate(starts):
            while start - starts[low] > window:
                low += 1
            best = max(best, high - low + 1)
        return best


def now() -> float:
    return time.monotonic()
