"""The terminal and the web UI show progress: every task reports a status and a percentage under a
worker, and a default command-line run prints progress lines and the summary, not DEBUG logs."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

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


#: A download shard's status with three host groups, one paused: ~170 characters in all.
DOWNLOAD = (
    "148/297 images: 140 ok, 8 failed; i.redd.it 42/s, i.imgur.com 3.1/s (paused 12 s), "
    "live.staticflickr.com 8.4/s"
)


def terminal(columns: int) -> tuple[int, object]:
    """A pseudo-terminal ``columns`` wide: its master fd and a writable stream on its slave."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return master, os.fdopen(slave, "w", encoding="utf-8")


def test_progress_lines_fit_an_80_column_terminal():
    master, stream = terminal(80)
    printer = progress.Printer(stream)
    printer.start("t", "DownloadImageShard sandboxcats_2020 shard 0")
    printer.running["t"].started -= 10
    for done in (20, 148):
        printer.update("t", message=DOWNLOAD.replace("148/", f"{done}/"), percent=50)
    printer.finish("t", ok=True)
    stream.close()
    output = os.read(master, 65536).decode()
    os.close(master)
    lines = [line for line in output.replace("\r\n", "\n").split("\r\033[K") if line]
    refreshed, final = lines[:-1], lines[-1]
    assert len(refreshed) == 2 and final.startswith("done DownloadImageShard")
    for line in refreshed:  # rewritten in place: one row each, the host rates given up first
        assert len(line) <= 79 and "\n" not in line, line
        assert line.startswith("DownloadImageShard sandboxcats_2020 shard 0: ") and "/s (paused" not in line
    assert "shard 0: 148/297 im" in refreshed[-1] and refreshed[-1].endswith("… · 14.8/s · ETA 0:00:10")
    assert DOWNLOAD in progress.Printer().line(progress._Running("x", message=DOWNLOAD), 400)


def test_a_count_of_chunks_gets_no_rate():
    state = progress._Running("RedCapsBatch", message="chunk 1/1: cats_2020 .. dogs_2020")
    state.started -= 10
    assert progress.Printer().line(state) == "RedCapsBatch: chunk 1/1: cats_2020 .. dogs_2020"


class Scheduler:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def set_task_status_message(self, task_id: str, message: str) -> None:
        self.messages.append(message)


def test_the_web_uis_status_names_what_the_task_works_on(monkeypatch):
    """luigid shows one family's tasks alike: the status message says which subreddit-year."""
    monkeypatch.setattr(progress, "PRINTER", Recorder())
    task = RedCapsYear(subreddit="sandboxcats", year=2020)
    progress.PRINTER.start(task.task_id, progress.label(task))
    monkeypatch.setitem(progress.SUBJECTS, task.task_id, progress.subject(task))
    scheduler = Scheduler()
    progress.ProgressReporter(scheduler, task.task_id, "worker", None).update_status_message("9 stages done")
    assert scheduler.messages == ["sandboxcats_2020: 9 stages done"]
    assert progress.PRINTER.seen[task.task_id]["messages"] == ["9 stages done"]


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
