"""Publishing to object storage against a real S3-compatible server (moto's) on loopback."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import luigi
import pytest

from pipeline import PublishYear, RedCapsBatch
from redcaps import preflight
from redcaps.storage import Store
from tests.helpers import luigi_settings

moto_server = pytest.importorskip("moto.server")
REPO = Path(__file__).resolve().parents[1]
STEM = "sandboxcats_2020"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3(endpoint, monkeypatch, request) -> Iterator[tuple[str, object]]:
    """A fresh bucket; credentials and endpoint from the standard AWS variables."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"pub-{request.node.name[-20:].lower().replace('_', '-')}".rstrip("-")
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    yield bucket, client


def objects(client, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def build(task: luigi.Task) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="WARNING")


def test_a_published_year_is_a_no_op_from_a_second_empty_data_dir(sandbox_env, luigi_config, s3, tmp_path):
    bucket, client = s3
    settings = {"filters": {"enabled": "words"}, "redcaps": {"publish_to": f"s3://{bucket}/redcaps"}}
    with luigi_settings(settings):
        result = build(PublishYear(subreddit="sandboxcats", year=2020))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    data = luigi_config
    published = objects(client, bucket)
    manifest = json.loads(published.pop(f"redcaps/manifests/{STEM}.json"))
    assert set(manifest["objects"]) == {k.removeprefix("redcaps/") for k in published}
    assert not [k for k in published if ".partial-" in k]  # no temporary key is left behind
    local = [data / "annotations" / f"{STEM}.json", data / "stages" / "report" / f"{STEM}.html"]
    local += [p for p in (data / "tarfiles").glob(f"{STEM}_*") if p.suffix in (".tar", ".parquet", ".json")]
    assert len(local) >= 5
    for path in local:
        key = f"redcaps/{path.relative_to(data)}".replace("stages/report", "reports")
        assert published[key] == path.read_bytes(), key
        assert (
            manifest["objects"][key.removeprefix("redcaps/")]["sha256"]
            == hashlib.sha256(path.read_bytes()).hexdigest()
        )
    sizes = json.loads(published[f"redcaps/tarfiles/{STEM}_sizes.json"])
    assert sizes and all(name.startswith(STEM) for name in sizes)

    # another machine, an empty data dir: the year is done, nothing runs, nothing is fetched
    sandbox_env.reset_log()
    other = tmp_path / "other"
    with luigi_settings({**settings, "redcaps": {**settings["redcaps"], "data_dir": str(other)}}):
        luigi.task_register.Register.clear_instance_cache()
        again = build(PublishYear(subreddit="sandboxcats", year=2020))
    assert again.status == luigi.LuigiStatusCode.SUCCESS
    assert not other.exists()
    assert sandbox_env.log.for_host("127.0.0.1") == []  # NO_PROXY: loopback never went through the proxy
    assert sandbox_env.log.for_host("arctic-shift.photon-reddit.com") == []
    assert sandbox_env.log.for_host("i.redd.it") == []


def test_a_published_batch_is_a_no_op_from_a_second_empty_data_dir(sandbox_env, luigi_config, s3, tmp_path):
    bucket, client = s3
    config = tmp_path / "two.yaml"
    config.write_text("name: two\nsubreddits: [sandboxcats, sandboxroses]\nyears: [2019]\n")
    stems = ["sandboxcats_2019", "sandboxroses_2019"]
    settings = {"filters": {"enabled": "words"}, "redcaps": {"publish_to": f"s3://{bucket}/ds"}}
    with luigi_settings(settings):
        result = build(RedCapsBatch(config=str(config)))
        assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"ds/manifests/{stem}.json" for stem in stems} <= keys
    assert all(Store(f"s3://{bucket}/ds").is_published(stem) for stem in stems)
    assert list((luigi_config / "stages" / "batch").glob("two-*.json"))  # this machine's summary

    # another machine, an empty data dir: the batch is done, no task runs, nothing is written
    sandbox_env.reset_log()
    other = tmp_path / "other"
    again_settings = {**settings, "redcaps": {**settings["redcaps"], "data_dir": str(other)}}
    with luigi_settings(again_settings):
        again = build(RedCapsBatch(config=str(config)))
        assert again.status == luigi.LuigiStatusCode.SUCCESS, again.summary_text
        assert "Scheduled 1 tasks of which:\n* 1 complete ones were encountered" in again.summary_text
        assert "ran successfully" not in again.summary_text, again.summary_text
        assert RedCapsBatch(config=str(config)).summary_text() == f"published: 2 years to s3://{bucket}/ds"
        assert not other.exists()
        assert sandbox_env.log.for_host("arctic-shift.photon-reddit.com") == []

        # a year no longer wholly published makes the batch incomplete again, and only that year
        client.delete_object(Bucket=bucket, Key="ds/manifests/sandboxroses_2019.json")
        batch = RedCapsBatch(config=str(config))
        assert batch.output().missing() == ["sandboxroses_2019"]
        assert not batch.complete()
        assert not other.exists()


PUBLISH_SCRIPT = """
import sys
from redcaps.layout import Layout
from redcaps.storage import Store, year_objects
files, extra = year_objects(Layout.at(sys.argv[2]), sys.argv[3])
Store(sys.argv[1]).publish(sys.argv[3], files, extra)
"""


def fake_year(data: Path, stem: str, tar_bytes: int) -> None:
    (data / "annotations").mkdir(parents=True)
    (data / "annotations" / f"{stem}.json").write_text('{"info": {}, "annotations": []}')
    (data / "tarfiles").mkdir()
    (data / "tarfiles" / f"{stem}_00000000.tar").write_bytes(os.urandom(tar_bytes))
    (data / "tarfiles" / "sizes.json").write_text(json.dumps({f"{stem}_00000000.tar": 3}))


def test_a_kill_9_mid_upload_leaves_nothing_the_next_run_trusts(s3, tmp_path):
    bucket, client = s3
    data = tmp_path / "data"
    fake_year(data, STEM, 64 << 20)
    url = f"s3://{bucket}/ds"
    cmd = [sys.executable, "-c", PUBLISH_SCRIPT, url, str(data), STEM]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        if f"ds/annotations/{STEM}.json" in keys:  # uploaded first; the 64 MiB tar is under way
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert f"ds/manifests/{STEM}.json" not in keys, "the upload finished before the kill"
    assert f"ds/tarfiles/{STEM}_00000000.tar" not in keys  # never partly at its final key
    store = Store(url)
    assert not store.is_published(STEM)

    subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=300)
    assert store.is_published(STEM)
    tar = client.get_object(Bucket=bucket, Key=f"ds/tarfiles/{STEM}_00000000.tar")["Body"].read()
    assert tar == (data / "tarfiles" / f"{STEM}_00000000.tar").read_bytes()


def test_an_object_cut_short_after_publishing_is_not_trusted(s3, tmp_path):
    bucket, client = s3
    data = tmp_path / "data"
    fake_year(data, STEM, 1000)
    store = Store(f"s3://{bucket}/ds")
    subprocess.run(
        [sys.executable, "-c", PUBLISH_SCRIPT, store.url, str(data), STEM],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=120,
    )
    assert store.is_published(STEM)
    client.put_object(Bucket=bucket, Key=f"ds/tarfiles/{STEM}_00000000.tar", Body=b"short")
    assert not store.is_published(STEM)
    client.delete_object(Bucket=bucket, Key=f"ds/manifests/{STEM}.json")
    assert not store.is_published(STEM)


def test_a_missing_bucket_is_one_preflight_line_before_any_work(sandbox_env, luigi_config, s3):
    problems = preflight.check_publish_target("s3://no-such-bucket/ds")
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("[redcaps] publish_to s3://no-such-bucket/ds: not writable")
    assert "bucket does not exist" in problems[0]
    sandbox_env.reset_log()
    with luigi_settings({"redcaps": {"publish_to": "s3://no-such-bucket/ds"}}):
        result = build(PublishYear(subreddit="sandboxcats", year=2020))
    assert result.status != luigi.LuigiStatusCode.SUCCESS
    assert not luigi_config.exists()  # nothing was collected, downloaded or written
    assert sandbox_env.log.for_host("arctic-shift.photon-reddit.com") == []


def test_a_missing_bucket_ends_the_pipeline_command_with_one_line(endpoint, tmp_path):
    """``luigi --module pipeline PublishYear``: one line, a non-zero exit, nothing in the data dir."""
    url = "s3://no-such-bucket/ds"
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "secret-never-printed-42"}
    base = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH" and not k.startswith("AWS_")}
    env = {**base, **aws, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", "PublishYear", "--subreddit", "sandboxcats"]
    cmd += ["--year", "2020", "--local-scheduler", "--redcaps-publish-to", url]
    cmd += ["--redcaps-data-dir", str(tmp_path / "data")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: [redcaps] publish_to {url}: not writable ("), lines
    assert "bucket does not exist" in lines[0]
    assert aws["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()


def test_an_unreachable_endpoint_bad_options_and_unknown_targets_are_one_line(s3):
    bucket, _ = s3
    assert preflight.check_publish_target(f"s3://{bucket}/ds") == []
    refused = preflight.check_publish_target(f"s3://{bucket}/ds", '{"endpoint_url": "http://127.0.0.1:9"}')
    assert len(refused) == 1 and "not writable" in refused[0] and "\n" not in refused[0]
    bad_json = preflight.check_publish_target(f"s3://{bucket}/ds", "{key: 1}")
    assert bad_json == [
        "[redcaps] publish_options is not JSON (Expecting property name enclosed in double quotes)"
    ]
    unknown = preflight.check_publish_target("nosuchprotocol://b/p")
    assert len(unknown) == 1 and unknown[0].startswith("[redcaps] publish_to nosuchprotocol://b/p:")
