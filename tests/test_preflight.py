"""The preflight: each newcomer's mistake is one line and a non-zero exit before any file is written."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import luigi
import pytest
import requests

from pipeline import RedCapsYear
from redcaps import preflight
from redcaps.sandbox import reddit_apis
from redcaps.settings import CollectionSettings

REPO = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def luigi_run(tmp_path: Path, *args: str, cfg: str = "", env: dict[str, str] | None = None):
    """``luigi --module pipeline RedCapsYear ...`` from the command line, in a fresh data dir."""
    (tmp_path / "luigi.cfg").write_text(cfg)
    environ = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    environ["LUIGI_CONFIG_PATH"] = str(tmp_path / "luigi.cfg")
    environ.update(env or {})
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", *args, "--local-scheduler"]
    cmd += ["--redcaps-data-dir", str(tmp_path / "data")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return proc, lines


def assert_one_line(tmp_path: Path, proc, lines: list[str], expected: str) -> None:
    assert proc.returncode != 0
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "data").exists()


YEAR = ("RedCapsYear", "--subreddit", "sandboxcats", "--year", "2020")
WORDS_ONLY = "[filters]\nenabled = words\n"


def test_a_mistyped_setting_is_one_line(tmp_path, sandbox_env):
    proc, lines = luigi_run(tmp_path, *YEAR, cfg=WORDS_ONLY + "[images]\nresize = big\n")
    assert_one_line(tmp_path, proc, lines, "error: [images] resize: 'big' must be an integer")


def test_a_mistyped_option_on_the_command_line_is_one_line(tmp_path, sandbox_env):
    proc, lines = luigi_run(tmp_path, *YEAR, "--shards-format", "xml", cfg=WORDS_ONLY)
    assert proc.returncode != 0 and not (tmp_path / "data").exists()
    proc, lines = luigi_run(tmp_path, *YEAR, "--downloads-workers", "many", cfg=WORDS_ONLY)
    assert_one_line(tmp_path, proc, lines, "error: [downloads] workers: 'many' must be an integer")


def test_a_bad_subreddit_is_one_line(tmp_path, sandbox_env):
    args = ("RedCapsYear", "--subreddit", "ro/ses", "--year", "2020")
    proc, lines = luigi_run(tmp_path, *args, cfg=WORDS_ONLY)
    assert_one_line(tmp_path, proc, lines, "unsafe subreddit name 'ro/ses'")


def test_a_batch_with_a_mistyped_setting_is_one_line(tmp_path):
    batch = tmp_path / "b.yaml"
    batch.write_text("name: b\nsubreddits: [sandboxcats]\nyears: [2020]\nsettings: {images: {resize: big}}\n")
    proc, lines = luigi_run(tmp_path, "RedCapsBatch", "--config", str(batch))
    expected = f"error: {batch}: settings.images.resize: 'big' must be an integer"
    assert_one_line(tmp_path, proc, lines, expected)


def test_missing_models_are_one_line_each(tmp_path, sandbox_env):
    env = {"REDCAPS_MODELS_DIR": str(tmp_path / "no-models")}
    proc, lines = luigi_run(tmp_path, *YEAR, cfg="[filters]\nenabled = nsfw,faces\n", env=env)
    assert proc.returncode != 0 and not (tmp_path / "data").exists()
    assert len(lines) == 2, lines
    assert "[filter_nsfw] nsfw model not found" in lines[0]
    assert "[filter_faces] faces model not found" in lines[1]


def test_a_data_dir_under_a_regular_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    problems, _ = preflight.check_data_dir(tmp_path / "file" / "data")
    assert problems == [f"data dir {tmp_path / 'file' / 'data'}: {tmp_path / 'file'} is not a directory"]


def test_a_read_only_data_dir_is_one_line_even_for_root(tmp_path):
    """A read-only bind mount (in a private mount namespace) cannot be written by root either."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux) for a private read-only mount")
    locked = tmp_path / "locked"
    locked.mkdir()
    check = "import sys; from redcaps import preflight; print(preflight.check_data_dir(sys.argv[1])[0])"
    mount_then_check = 'mount --bind -o ro "$1" "$1" && exec "$2" -c "$3" "$1/data"'
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", mount_then_check, "sh", str(locked), sys.executable, check],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 and proc.stderr.startswith(("unshare:", "mount:")):
        pytest.skip(f"no private mount namespace here: {proc.stderr.strip()}")
    assert proc.stdout.strip() == str([f"data dir {locked / 'data'}: {locked} is not writable"])


def test_free_space_is_reported(tmp_path):
    problems, note = preflight.check_data_dir(tmp_path / "data")
    assert problems == [] and "GiB free" in note and not (tmp_path / "data").exists()


def test_broken_credentials_are_one_line(tmp_path, sandbox_env):
    (tmp_path / "creds.json").write_text("{not json")
    cfg = WORDS_ONLY + f"[collection]\ncredentials = {tmp_path / 'creds.json'}\n"
    proc, lines = luigi_run(tmp_path, *YEAR, cfg=cfg)
    assert proc.returncode != 0 and not (tmp_path / "data").exists()
    assert all("malformed credentials file (invalid JSON at line 1)" in line for line in lines), lines
    assert "not json" not in proc.stderr


def test_an_unreachable_proxy_is_one_line_with_a_hint(tmp_path):
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": ""}
    proc, lines = luigi_run(tmp_path, *YEAR, cfg=WORDS_ONLY, env=env)
    expected = "unreachable at https://arctic-shift.photon-reddit.com/: the proxy"
    assert_one_line(tmp_path, proc, lines, expected)
    assert f"HTTPS_PROXY={proxy}" in lines[0]


def test_the_network_check_can_be_skipped(tmp_path):
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {"HTTPS_PROXY": proxy, "REDCAPS_MODELS_DIR": str(tmp_path / "no-models")}
    cfg = "[filters]\nenabled = nsfw\n[preflight]\nnetwork = false\n"
    proc, lines = luigi_run(tmp_path, *YEAR, cfg=cfg, env=env)
    assert proc.returncode != 0 and len(lines) == 1 and "nsfw model not found" in lines[0], lines


def test_name_resolution_failures_name_dns(monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    [problem] = preflight.check_reachable(CollectionSettings(arctic_shift_url="https://api.example.test"))
    assert "name resolution failed for api.example.test: check DNS" in problem
    assert "HTTPS_PROXY is not set" in problem


def test_the_sandbox_is_reachable(sandbox_env):
    assert preflight.check_reachable(CollectionSettings()) == []
    assert preflight.check_reachable(CollectionSettings(source="dump", dump_dir="x")) == []


def test_settings_are_checked_against_the_dataclasses_types():
    problems = preflight.check_settings(
        {
            "images": {"resize": "384", "edge": "diagonal", "upscale": "maybe", "max_aspect_ratio": "x"},
            "collection": {"source": "reddit", "min_score": "2"},
            "downloads": {"read_timeout": "1.5", "max_attempts": "1.5"},
            "filter_faces": {"pad": "true", "device": "tpu"},
        }
    )
    assert problems == [
        "[images] edge: 'diagonal' must be one of shorter, longer",
        "[images] upscale: 'maybe' must be true or false",
        "[images] max_aspect_ratio: 'x' must be a number",
        "[collection] source: 'reddit' must be one of arctic-shift, pushshift, dump",
        "[downloads] max_attempts: '1.5' must be an integer",
        "[filter_faces] device: 'tpu' must be one of auto, cpu, cuda",
    ]


def test_pushshift_without_its_token_is_a_problem(monkeypatch):
    monkeypatch.delenv("PUSHSHIFT_TOKEN", raising=False)
    problems = preflight.check_credentials(CollectionSettings(source="pushshift", credentials=""))
    assert problems == ["[collection] source pushshift needs its token in $PUSHSHIFT_TOKEN"]


@pytest.mark.parametrize(
    "error, expected",
    [
        (requests.exceptions.SSLError("x"), "REQUESTS_CA_BUNDLE"),
        (requests.exceptions.ConnectTimeout("x"), "no answer"),
    ],
)
def test_hints_name_tls_and_timeouts(error, expected):
    assert expected in preflight._hint(error, "https://a.test/")


def test_an_unknown_subreddit_is_one_line(tmp_path, sandbox_env):
    args = ("RedCapsYear", "--subreddit", "sandboxcatz", "--year", "2020")
    proc, lines = luigi_run(tmp_path, *args, cfg=WORDS_ONLY)
    assert_one_line(tmp_path, proc, lines, "--subreddit sandboxcatz: Arctic Shift knows no such subreddit")


def test_the_sandbox_knows_its_subreddits_whatever_the_case(sandbox_env):
    api = reddit_apis.state(sandbox_env.world)
    api.reset()
    settings = CollectionSettings()
    assert preflight.check_subreddits_exist(settings, ["sandboxcats", "SandboxRoses"]) == []
    assert len(preflight.check_subreddits_exist(settings, ["sandboxcatz"])) == 1
    assert api.arctic_queries == []  # not a post query: fault counters stay put


def test_an_empty_year_is_loud_and_marked(sandbox_env, luigi_config):
    config = luigi.configuration.get_config()
    if not config.has_section("filters"):
        config.add_section("filters")
    config.set("filters", "enabled", "words")
    luigi.task_register.Register.clear_instance_cache()
    try:
        result = luigi.build([RedCapsYear(subreddit="sandboxcats", year=2021)], local_scheduler=True)
    finally:
        config.remove_option("filters", "enabled")
    assert result
    summary = json.loads((luigi_config / "stages" / "year" / "sandboxcats_2021.json").read_text())
    expected = "r/sandboxcats: no posts at all in 2021-01..2021-12 from arctic-shift"
    assert summary["empty"].startswith(expected)
    # the command's closing lines (the year's summary text) say so
    assert f"warning: {expected}" in RedCapsYear(subreddit="sandboxcats", year=2021).summary_text()


def test_the_collect_command_runs_the_preflight(tmp_path, sandbox_env, monkeypatch):
    from click.testing import CliRunner

    from redcaps.cli.main import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "anns"
    args = ["download-anns", "-s", "sandboxcatz", "-m", "2020-01", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and not out.exists()
    assert result.output.count("\n") == 1 and "Arctic Shift knows no such subreddit" in result.output

    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{closed_port()}")
    result = CliRunner().invoke(main, [*args[:2], "sandboxcats", *args[3:]])
    assert result.exit_code == 1 and not out.exists()
    assert result.output.count("\n") == 1 and "unreachable" in result.output and "the proxy" in result.output
