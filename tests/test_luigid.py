"""Two workers on a real luigid (loopback): shared host limits, no task run twice, live progress.

Like two machines sharing one batch: each runs ``RedCapsBatch --part i/2`` against luigid."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import TEST_CONFIG
from tests.helpers import kill_process_group

REPO = Path(__file__).resolve().parents[1]
DONE = re.compile(r"done\s+(\w+\(.*\))$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_cfg(path: Path, data_dir: Path, history: Path) -> Path:
    sections = {
        "core": {"autoload_range": "false", "log_level": "INFO"},  # done_tasks reads luigi's INFO lines
        "redcaps": {"data_dir": str(data_dir)},
        **TEST_CONFIG,
        # two shards on one host at once would show up as 4 concurrent requests
        "host_limits": {**TEST_CONFIG["host_limits"], "redd.it": "rate=50 burst=20 concurrency=2"},
        "filters": {"enabled": "words"},
        "worker": {"keep_alive": "true", "max_reschedules": "1"},
        "scheduler": {"record_task_history": "true", "retry_delay": "1"},
        "task_history": {"db_connection": f"sqlite:///{history}"},
        "resources": {"host_redd.it": "1", "host_imgur.com": "1", "host_staticflickr.com": "1"},
        # one budget across machines: luigid runs one shard per host at a time
        "downloads": {**TEST_CONFIG["downloads"], "host_scope": "global"},
    }
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"luigid did not listen on {port}")


def task_list(port: int, status: str) -> dict:
    query = urllib.parse.urlencode({"data": json.dumps({"status": status})})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list?{query}", timeout=10) as resp:
        return json.load(resp)["response"]


def shard_run_intervals(history: Path) -> list[tuple[dt.datetime, dt.datetime]]:
    """(RUNNING, DONE) times of every DownloadImageShard in luigid's task history, in order."""
    with sqlite3.connect(history) as db:
        rows = db.execute(
            "SELECT t.task_id, e.event_name, e.ts FROM task_events e JOIN tasks t ON e.task_id = t.id "
            "WHERE t.name = 'DownloadImageShard' AND e.event_name IN ('RUNNING', 'DONE') ORDER BY e.ts"
        ).fetchall()
    times: dict[str, dict[str, dt.datetime]] = {}
    for task_id, event, ts in rows:
        times.setdefault(task_id, {})[event] = dt.datetime.fromisoformat(ts)
    return sorted((t["RUNNING"], t["DONE"]) for t in times.values())


def done_tasks(log: str) -> list[str]:
    return [m.group(1) for line in log.splitlines() if (m := DONE.search(line))]


@pytest.mark.slow
def test_two_workers_on_luigid_share_limits_and_never_repeat_a_task(sandbox, tmp_path):
    port = free_port()
    history = tmp_path / "history.db"
    cfg = write_cfg(tmp_path / "luigi.cfg", tmp_path / "data", history)
    env = {**os.environ, **sandbox.env(), "LUIGI_CONFIG_PATH": str(cfg)}
    batch = tmp_path / "pets.yaml"
    batch.write_text("name: pets\nsubreddits: [sandboxcats, sandboxroses]\nyears: [2020]\n")

    luigid = subprocess.Popen(
        ["luigid", "--address", "127.0.0.1", "--port", str(port), "--logdir", str(tmp_path)],
        cwd=tmp_path,  # no ./luigi.cfg there: the test's config only
        env={**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        sandbox.reset_log()
        common = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--workers", "1"]
        luigi = [sys.executable, "-m", "luigi", "--module", "pipeline"]
        workers = [
            subprocess.Popen(
                [*luigi, "RedCapsBatch", "--config", str(batch), "--part", part, *common],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            for part in ("1/2", "2/2")
        ]
        logs = [w.communicate(timeout=600)[1] for w in workers]
        for worker, log in zip(workers, logs, strict=True):
            assert worker.returncode == 0, log[-3000:]

        # each worker did its own part, and no task was done twice
        first, second = done_tasks(logs[0]), done_tasks(logs[1])
        assert any("sandboxcats" in t for t in first) and any("sandboxroses" in t for t in second)
        assert max(Counter(first + second).values()) == 1
        with sqlite3.connect(history) as db:
            runs = db.execute(
                "SELECT t.task_id, COUNT(*) FROM task_events e JOIN tasks t ON e.task_id = t.id "
                "WHERE e.event_name = 'RUNNING' GROUP BY t.task_id"
            ).fetchall()
        # tasks with dynamic dependencies run again (from the top) once their new deps are done
        reentered = ("RedCapsBatch", "DownloadImages_")
        assert runs and max(n for t, n in runs if not t.startswith(reentered)) == 1, runs
        assert sum(1 for task_id, _ in runs if task_id.startswith("DownloadImageShard")) > 2

        # one slot per image host across both workers: no two download shards (each has
        # i.redd.it images) ever ran at once, by the scheduler's own clock
        intervals = shard_run_intervals(history)
        assert len(intervals) > 2
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(intervals)), intervals
        # and the host saw at most one shard's 2 connections (+1: the sandbox stamps a request's
        # end after its last write, which can run late on a busy machine)
        assert sandbox.log.for_host("i.redd.it")
        assert sandbox.log.max_concurrency("i.redd.it") <= 2 + 1

        # progress reached the scheduler (the web UI shows these)
        shards = [t for k, t in task_list(port, "DONE").items() if k.startswith("DownloadImageShard")]
        assert shards and all(t["progress_percentage"] == 100 for t in shards)
        assert all(re.search(r"\d+/\d+ images: \d+ ok", t["status_message"] or "") for t in shards)
        for stem in ("sandboxcats_2020", "sandboxroses_2020"):
            assert (tmp_path / "data" / "annotations" / f"{stem}.json").exists()
    finally:
        for proc in [luigid, *locals().get("workers", [])]:
            kill_process_group(proc)  # and whatever it forked
