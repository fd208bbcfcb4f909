"""One lock per data dir and stem: a busy lock names its holder, a killed holder blocks nothing,
a stage another run did meanwhile is not redone, and two concurrent runs of a year equal one."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from redcaps import annotations as ann
from redcaps.locks import LockBusyError, holding, lock_path
from redcaps.sandbox import posts
from tasks.validate import Validate
from tests.conftest import TEST_CONFIG
from tests.helpers import annotation_file, luigi_settings, record

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, records: list[dict]) -> str:
    path.write_text(json.dumps(annotation_file(records).to_json()))
    return str(path)


def hold_in_another_process(path: Path, seconds: float = 60.0, shared: bool = False) -> subprocess.Popen:
    """A process holding the lock at ``path`` for ``seconds``; returns once it holds it."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from redcaps.locks import holding
        with holding(Path({str(path)!r}), "Holder_task", shared={shared}):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_busy_lock_refuses_with_one_line_naming_the_holder(tmp_path):
    path = lock_path(tmp_path, "roses_2020")
    holder = hold_in_another_process(path)
    try:
        with pytest.raises(LockBusyError) as refused, holding(path, "Second", wait=0):
            pytest.fail("two holders at once")
    finally:
        holder.kill()
        holder.wait()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("roses_2020 is being worked on by ")
    assert f"pid {holder.pid} on {socket.gethostname()} since 20" in message and "Holder_task" in message


def test_a_waiting_run_says_whom_it_waits_for_and_runs_once_the_holder_is_done(tmp_path):
    path = lock_path(tmp_path, "roses_2020")
    holder = hold_in_another_process(path, seconds=1.0)
    held_since, told = time.monotonic(), list[str]()
    with holding(path, "Second", wait=60, on_wait=told.append):
        assert time.monotonic() - held_since >= 0.9  # only once the holder was done
    assert holder.wait(timeout=30) == 0
    assert len(told) == 1 and f"pid {holder.pid} on {socket.gethostname()}" in told[0]
    assert "waiting up to 60 s" in told[0]


def test_a_holder_killed_with_sigkill_blocks_nothing(tmp_path):
    path = lock_path(tmp_path, "roses_2020")
    holder = hold_in_another_process(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with holding(path, "Next", wait=0):
        assert json.loads(path.read_text())["pid"] == os.getpid()  # the next holder names itself
    assert time.monotonic() - started < 5


def test_shared_holders_hold_together_and_exclude_an_exclusive_one(tmp_path):
    path = lock_path(tmp_path, "roses_2020")
    holder = hold_in_another_process(path, shared=True)
    try:
        with (
            holding(path, "Another part", shared=True, wait=0),
            pytest.raises(LockBusyError, match=f"pid {holder.pid}|Another part"),
            holding(lock_path(tmp_path, "roses_2020"), "A whole stage", wait=0),
        ):
            pytest.fail("an exclusive holder beside shared ones")
    finally:
        holder.kill()
        holder.wait()


def test_a_stage_whose_stem_another_run_holds_fails_naming_it_and_writes_nothing(luigi_config, tmp_path):
    task = Validate(annotations=write(tmp_path / "roses_2020.json", [record("a1")]))
    holder = hold_in_another_process(lock_path(luigi_config, "roses_2020"))
    try:
        with luigi_settings({"redcaps": {"lock_wait": "0"}}), pytest.raises(LockBusyError) as refused:
            task.run()
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid}" in str(refused.value) and "Holder_task" in str(refused.value)
    assert not Path(task.output().path).exists()
    task.run()  # the holder is gone (killed): nothing is left to block the next run
    assert Path(task.output().path).exists()


def test_a_stage_done_meanwhile_is_not_redone_but_a_newer_input_reruns_it(luigi_config, tmp_path):
    source = write(tmp_path / "roses_2020.json", [record("a1")])
    task = Validate(annotations=source)
    task.run()
    output = Path(task.output().path)
    done = output.stat()
    task.run()  # as a second run scheduled before the first finished: its output is the first's
    assert output.stat().st_ino == done.st_ino and output.stat().st_mtime_ns == done.st_mtime_ns
    os.utime(source, ns=(done.st_mtime_ns + 10**9, done.st_mtime_ns + 10**9))  # the input was redone
    task.run()
    assert output.stat().st_ino != done.st_ino


def _write_cfg(path: Path, data_dir: Path) -> Path:
    sections = {
        "core": {"autoload_range": "false"},
        "redcaps": {"data_dir": str(data_dir)},
        **TEST_CONFIG,
        "collection": {"min_score": "750"},  # a small year (46 posts) that still has two faces
        "downloads": {**TEST_CONFIG["downloads"], "read_timeout": "10"},  # three runs at once: slow hosts
        "filters": {"enabled": "words,faces"},
    }
    path.write_text(
        "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in v.items()) for s, v in sections.items())
    )
    return path


def _start(sandbox, cfg: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **sandbox.env(), "LUIGI_CONFIG_PATH": str(cfg)}
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", "RedCapsYear", "--subreddit", "sandboxcats"]
    cmd += ["--year", "2020", "--local-scheduler", "--log-level", "WARNING", *extra]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _published(data: Path) -> dict[str, str]:
    files = [data / "annotations" / "sandboxcats_2020.json", *sorted((data / "tarfiles").glob("*.tar"))]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_two_runs_of_a_year_started_together_give_one_runs_result(sandbox, tmp_path):
    single, shared = tmp_path / "single", tmp_path / "shared"
    runs = [
        _start(sandbox, _write_cfg(tmp_path / "single.cfg", single)),
        # two spellings luigi's own pid-file lock does not tie together
        _start(sandbox, _write_cfg(tmp_path / "shared.cfg", shared), "--no-lock"),
        _start(sandbox, tmp_path / "shared.cfg", "--no-lock", "--workers", "2"),
    ]
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read().decode()[-3000:]  # type: ignore[union-attr]

    expected = _published(single)
    assert len(expected) >= 2 and _published(shared) == expected

    merged = {
        r["image_id"] for r in ann.load(shared / "stages" / "merged" / "sandboxcats_2020.json").annotations
    }
    faces = {p["id"] for m in range(1, 13) for p in posts.month_posts("sandboxcats", 2020, m)}
    faces = {i for i in faces if posts.case_of(i) == "face"} & merged
    published = ann.load(shared / "annotations" / "sandboxcats_2020.json")
    assert faces and not faces & {r["image_id"] for r in published.annotations}
    assert published.info["face_filter"]["num_removed"] == len(faces)
