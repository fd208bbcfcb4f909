"""RedCapsYear killed with SIGKILL at several points resumes to byte-identical outputs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_CONFIG
from tests.helpers import kill_process_group

REPO = Path(__file__).resolve().parents[1]


def write_cfg(path: Path, data_dir: Path) -> Path:
    sections = {
        "core": {"autoload_range": "false"},
        "redcaps": {"data_dir": str(data_dir)},
        **TEST_CONFIG,
        "downloads": {**TEST_CONFIG["downloads"], "workers": "2"},
        # slow enough that each stage can be caught half-way
        "host_limits": {**TEST_CONFIG["host_limits"], "redd.it": "rate=15 burst=1 concurrency=2"},
        "filters": {"enabled": "words,faces"},
        "filter_faces": {"batch_size": "4", "workers": "1"},
    }
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(sandbox, cfg: Path) -> subprocess.Popen:
    env = {**os.environ, **sandbox.env(), "LUIGI_CONFIG_PATH": str(cfg)}
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", "RedCapsYear"]
    cmd += ["--subreddit", "sandboxroses", "--year", "2020", "--local-scheduler", "--log-level", "WARNING"]
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def outputs(data: Path) -> dict[str, str]:
    files = [data / "annotations" / "sandboxroses_2020.json", *sorted((data / "tarfiles").glob("*.tar"))]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            kill_process_group(proc)
            return
        time.sleep(0.02)
    pytest.fail("the run ended before the kill point" if proc.poll() is not None else "not reached in time")


@pytest.mark.slow
def test_sigkill_at_three_points_then_resume_gives_identical_outputs(sandbox, tmp_path):
    clean = tmp_path / "clean"
    proc = start(sandbox, write_cfg(tmp_path / "clean.cfg", clean))
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-3000:]
    expected = outputs(clean)
    assert len(expected) >= 2

    data = tmp_path / "killed"
    cfg = write_cfg(tmp_path / "killed.cfg", data)
    months = data / "annotations"
    journals = data / "images" / ".manifests"
    words_done = data / "stages" / "filter_words" / "sandboxroses_2020.json"
    kill_points = [
        ("collection", lambda: len(list(months.glob("sandboxroses_2020-*.json"))) >= 4),
        ("download", lambda: any(len(j.read_bytes().splitlines()) >= 5 for j in journals.rglob("*.partial"))),
        ("face filter", words_done.exists),  # the face filter starts right after
    ]
    for _stage, ready in kill_points:
        kill_when(start(sandbox, cfg), ready)
        assert not (data / "annotations" / "sandboxroses_2020.json").exists()  # never published half-way

    proc = start(sandbox, cfg)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-3000:]
    assert outputs(data) == expected
