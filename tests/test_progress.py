"""The terminal and the web UI show progress: every task reports a status and a percentage under a
worker, and a default command-line run prints progress lines and the summary, not DEBUG logs."""

from __future__ import annotations

import os
import subprocess
import sys

import luigi
import pytest

from pipeline import RedCapsYear, progress


class Recorder(progress.Printer):
    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, dict[str, list]] = {}

    def start(self, task_id: str, name: str) -> None:
        self.seen.setdefault(task_id, {"name": name.split()[0], "messages": [], "percents": []})

    def update(self, task_id: str, message: str | None = None, percent: float | None = None) -> None:
        entry = self.seen[task_id]
        if message is not None:
            entry["messages"].append(message)
        if percent is not None:
            entry["percents"].append(percent)

    def finish(self, task_id: str, ok: bool) -> None:
        pass


def test_the_printer_adds_a_rate_and_an_eta():
    state = progress._Running("DownloadImageShard roses_2020 shard 0", message="50/200 images: 48 ok")
    state.started -= 10
    line = progress.Printer().line(state)
    assert line.startswith("DownloadImageShard roses_2020 shard 0: 50/200 images: 48 ok · 5.0/s")
    assert line.endswith("ETA 0:00:30")


@pytest.mark.slow
def test_every_task_reports_a_status_and_a_percentage(sandbox_env, luigi_config, monkeypatch):
    config = luigi.configuration.get_config()
    config.set("filters", "enabled", "words") if config.has_section("filters") else None
    if not config.has_section("filters"):
        config.add_section("filters")
        config.set("filters", "enabled", "words")
    luigi.task_register.Register.clear_instance_cache()
    recorder = Recorder()
    monkeypatch.setattr(progress, "PRINTER", recorder)
    result = luigi.build(
        [RedCapsYear(subreddit="sandboxcats", year=2020)], local_scheduler=True, detailed_summary=True
    )
    config.remove_option("filters", "enabled")
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    families = {}
    for entry in recorder.seen.values():
        families.setdefault(entry["name"], []).append(entry)
    expected = {"FetchMonth", "MergeYear", "DownloadImages", "DownloadImageShard", "FilterWords"}
    expected |= {"Publish", "Validate", "Tarify", "RedCapsYear"}
    assert expected <= set(families)
    for family, entries in families.items():
        for entry in entries:
            assert entry["messages"] and entry["percents"], (family, entry)
            assert entry["percents"][-1] == 100, (family, entry)


@pytest.mark.slow
def test_a_default_run_shows_progress_and_ends_with_the_summary(sandbox_env, tmp_path):
    (tmp_path / "luigi.cfg").write_text(
        "[filters]\nenabled = words\n[downloads]\nread_timeout = 5\nmax_attempts = 2\nbackoff_base = 0.05\n"
    )
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}
    cmd = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "pipeline",
        "RedCapsYear",
        "--subreddit",
        "sandboxroses",
    ]
    cmd += ["--year", "2020", "--local-scheduler", "--redcaps-data-dir", str(tmp_path / "data")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEBUG" not in proc.stdout + proc.stderr and "INFO:" not in proc.stderr
    assert "done FetchMonth r/sandboxroses 2020-01:" in proc.stderr
    assert "images:" in proc.stderr and "/s" in proc.stderr
    assert proc.stdout.rstrip().endswith(f"tars: {tmp_path / 'data' / 'tarfiles'}")
    assert "images attempted:" in proc.stdout and "summary file:" in proc.stdout

    debug = subprocess.run(
        cmd + ["--log-level", "DEBUG"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert debug.returncode == 0 and "DEBUG: Checking if RedCapsYear" in debug.stderr
