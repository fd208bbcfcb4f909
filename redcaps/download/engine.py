"""Run the per-image work of a shard in threads, or in processes that share the host budgets.

Threads hide the hosts' latency; processes let decoding and resizing use every core. The
processes draw on the machine's host budgets together and hand their outcomes to the shard's
process, the journal's one writer.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from redcaps.annotations import Record
from redcaps.download.manifest import Outcome
from redcaps.net.config import HttpConfig
from redcaps.net.fetcher import Fetcher
from redcaps.net.limits import SharedLimits

#: The work on one image: (record, fetcher, decode slots) -> its outcome. Picklable, so that
#: download processes get it whole (a function at module level, or a partial of one).
ImageWork = Callable[[Record, Fetcher, threading.Semaphore], Outcome]

#: Fewer images than this per process are not worth starting one (about 0.4 s each).
MIN_IMAGES_PER_PROCESS = 50


def in_threads(
    records: Sequence[Record], work: ImageWork, fetcher: Fetcher, workers: int
) -> Iterator[tuple[Record, Outcome]]:
    """Each record with its outcome, as ``workers`` threads finish them (at most one decoding per
    core). A failure that is not the image's (a full disk) cancels what has not started."""
    cpu_slots = threading.BoundedSemaphore(os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(work, r, fetcher, cpu_slots): r for r in records}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def in_processes(
    records: Sequence[Record],
    work: ImageWork,
    config: HttpConfig,
    limits: SharedLimits,
    workers: int,
    processes: int,
) -> Iterator[tuple[Record, Outcome]]:
    """:func:`in_threads` in ``processes`` child processes, each taking every n-th record with its
    share of the threads; a child's error is raised here, and children stop with this process.
    Each child may decode one image per core: while one of its images is in Python code (GIL),
    another process's can use that core."""
    context = multiprocessing.get_context("spawn")  # forking a threaded process is unsafe
    results = context.Queue()
    by_id = {r["image_id"]: r for r in records}
    threads = max(1, -(-workers // processes))
    shared = (work, config, limits, threads, results, os.getpid())
    children = [
        context.Process(target=_download_part, args=(records[i::processes], *shared), daemon=True)
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        running = processes
        while running:
            try:
                message = results.get(timeout=1.0)
            except queue.Empty:
                dead = [child.exitcode for child in children if child.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a download process died (exit {dead[0]}); a rerun resumes") from None
                continue
            if message[0] == "outcome":
                yield by_id[message[1]], Outcome.from_dict(message[2])
            elif message[0] == "error":
                raise message[1]
            else:
                running -= 1
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
        results.close()


def _download_part(
    records: Sequence[Record],
    work: ImageWork,
    config: HttpConfig,
    limits: SharedLimits,
    threads: int,
    results: multiprocessing.Queue,
    parent: int,
) -> None:
    """A child of :func:`in_processes`: its records' outcomes (or its error) go to ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()
    fetcher = Fetcher(config, limits.limiter())
    try:
        for record, outcome in in_threads(records, work, fetcher, threads):
            results.put(("outcome", record["image_id"], outcome.as_dict()))
        results.put(("done",))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        results.put(("error", exc))
    finally:
        fetcher.close()


def _exit_without(parent: int) -> None:
    """End this child soon after its parent is gone (killed, so it never stopped us)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
