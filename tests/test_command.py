"""The ``luigi --module pipeline`` command on its own: mistakes are one line with a documented exit
code before anything is scheduled, a missing luigid is found in seconds, and the root task's
summary ends the run once, also when it was already done."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pytest

from pipeline import command

LAST_YEAR = dt.date.today().year


def luigi_command(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", *args]
    cmd += ["--redcaps-data-dir", str(tmp_path / "data")]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "2031"], f"error: --year: year 2031 is outside 2005..{LAST_YEAR}"),
        (["--year", "1999"], f"error: --year: year 1999 is outside 2005..{LAST_YEAR}"),
        (["--year", "99999"], f"error: --year: year 99999 is outside 2005..{LAST_YEAR}"),
        (["--year", "abc"], "error: --year 'abc': invalid literal for int() with base 10: 'abc'"),
        (["--year", "2020", "--first-year", "2021"], "error: --first-year: 2021 is after --year 2020"),
        (["--year", "2020", "--colour", "red"], "error: unrecognized arguments: --colour red"),
        (["--year", "2020", "--subreddit", ""], "error: --subreddit is required"),
        (["--year", "2020", "--subreddit", "a.b"], "error: unsafe subreddit name 'a.b'"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_and_exit_2(tmp_path, args, message):
    subreddit = [] if "--subreddit" in args else ["--subreddit", "cats"]
    proc = luigi_command(tmp_path, "RedCapsYear", *subreddit, *args, "--local-scheduler")
    assert proc.returncode == command.USAGE_ERROR == 2, proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr[-2000:]
    assert not (tmp_path / "data").exists()


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_luigid_and_no_local_scheduler_is_one_line_in_seconds(tmp_path):
    port = free_loopback_port()
    started = time.monotonic()
    proc = luigi_command(
        tmp_path, "RedCapsYear", "--subreddit", "cats", "--year", "2020",
        "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), timeout=30,
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert proc.returncode == command.NO_SCHEDULER == 3, proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr[-2000:]
    assert f"no luigid scheduler at 127.0.0.1:{port}" in lines[0]
    assert "make scheduler" in lines[0] and "--local-scheduler" in lines[0]
    assert not (tmp_path / "data").exists()


def test_every_problem_of_a_batch_file_at_once_without_luigis_prefix(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(
        "subreddits: [cats, 'a/b']\nyears: [1999]\ncolour: red\nsettings: {images: {resize: big}}\n"
    )
    proc = luigi_command(tmp_path, "RedCapsBatch", "--config", str(config), "--local-scheduler")
    assert proc.returncode == command.USAGE_ERROR, proc.stderr[-2000:]
    assert "Uncaught exception" not in proc.stderr and "Traceback" not in proc.stderr
    assert error_lines(proc) == [
        f"error: {config}: unknown keys ['colour'] (allowed: ['date_range', 'first_year', 'name', "
        "'runs', 'settings', 'subreddits', 'years'])",
        f"error: {config}.subreddits[1]: unsafe subreddit name 'a/b' (allowed: letters, digits, '_')",
        f"error: {config}.years: year 1999 is outside 2005..{LAST_YEAR}",
    ]


class SummarizedChild(luigi.Task):
    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path + ".child")

    def run(self) -> None:
        Path(self.output().path).write_text("child")

    def summary_text(self) -> str:
        return "a child's summary"


class SummarizedRoot(luigi.Task):
    path = luigi.Parameter()

    def requires(self) -> SummarizedChild:
        return SummarizedChild(path=self.path)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)

    def run(self) -> None:
        Path(self.path).write_text("root")

    def summary_text(self) -> str:
        return "the root's summary"


def test_the_root_tasks_summary_ends_every_run_once(tmp_path, capsys):
    argv = ["SummarizedRoot", "--path", str(tmp_path / "root"), "--local-scheduler", "--no-lock"]
    for _ in range(2):  # a run, then a rerun with everything done
        luigi.task_register.Register.clear_instance_cache()
        luigi.interface.run(argv)
        out = capsys.readouterr().out
        assert out.count("the root's summary") == 1
        assert out.rstrip().endswith("the root's summary") and "a child's summary" not in out
