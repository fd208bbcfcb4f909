"""A publish target that refuses us is one line from the ``luigi`` command, before any task runs.

moto's server enforces IAM once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have passed unchecked
(https://docs.getmoto.org/en/latest/docs/iam.html): the first three create the bucket, a user and
its access key; every later request must be signed by a known key with a policy allowing it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from redcaps import preflight

pytest.importorskip("moto.server")
BUCKET = "guarded"
WRONG_SECRET = "wrongSecretKeyThatMustNeverBePrinted0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")


@pytest.fixture(scope="module")
def guarded() -> Iterator[dict[str, str]]:
    """A moto server enforcing IAM, a bucket in it, and a user's key pair with no policy."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        anyone = {"aws_access_key_id": "x", "aws_secret_access_key": "x", "region_name": "us-east-1"}
        boto3.client("s3", endpoint_url=endpoint, **anyone).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", endpoint_url=endpoint, **anyone)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        yield {"endpoint": endpoint, "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def aws_env(endpoint: str, key_id: str, secret: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }


def luigi_command(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The pipeline command as a user types it, with a fresh data dir and the given AWS variables."""
    base = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH" and not k.startswith("AWS_")}
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", *args, "--local-scheduler"]
    cmd += ["--redcaps-data-dir", str(tmp_path / "data")]
    return subprocess.run(cmd, cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=120)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_refused_credentials_are_one_preflight_line(guarded, monkeypatch):
    url = f"s3://{BUCKET}/ds"
    for key, value in aws_env(guarded["endpoint"], "AKIAWRONGWRONGWRONG0", WRONG_SECRET).items():
        monkeypatch.setenv(key, value)
    wrong = preflight.check_publish_target(url)
    assert len(wrong) == 1 and wrong[0].startswith(f"[redcaps] publish_to {url}: not writable (")
    assert "PermissionError" in wrong[0] and WRONG_SECRET not in wrong[0]
    for key, value in aws_env(guarded["endpoint"], guarded["key_id"], guarded["secret"]).items():
        monkeypatch.setenv(key, value)
    denied = preflight.check_publish_target(url)  # a known key without a policy allowing PutObject
    assert len(denied) == 1 and "not writable (PermissionError" in denied[0]
    assert guarded["secret"] not in denied[0]


@pytest.mark.parametrize(
    "args",
    [
        ["PublishYear", "--subreddit", "sandboxcats", "--year", "2020"],
        ["RedCapsBatch", "--config", "configs/demo.yaml"],
    ],
    ids=["year", "batch"],
)
def test_wrong_keys_end_the_command_with_one_line_before_any_task(guarded, tmp_path, args):
    repo = Path(__file__).resolve().parents[1]
    args = [str(repo / a) if a.endswith(".yaml") else a for a in args]
    url = f"s3://{BUCKET}/ds"
    env = aws_env(guarded["endpoint"], "AKIAWRONGWRONGWRONG0", WRONG_SECRET)
    proc = luigi_command(tmp_path, env, *args, "--redcaps-publish-to", url)
    assert proc.returncode != 0
    line = one_line(proc)
    assert line.startswith(f"error: [redcaps] publish_to {url}: not writable (PermissionError"), line
    assert WRONG_SECRET not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()  # no task ran, nothing was written
