"""Shared fixtures: the sandbox (fake image hosts behind an HTTPS proxy) and Luigi config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

from redcaps.sandbox import Sandbox, reddit_apis
from redcaps.sandbox.world import World

#: The default filter models and the fixture photos, for every test module.
pytest_plugins = ["tests.models_fixture"]

#: Fast, still-polite limits for tests: retries and timeouts shortened, loopback hosts quick.
TEST_CONFIG = {
    "downloads": {
        "read_timeout": "1.5",
        "connect_timeout": "2",
        "max_attempts": "3",
        "backoff_base": "0.05",
        "workers": "8",
        "images_per_shard": "25",
    },
    "host_limits": {
        "imgur.com": "rate=20 burst=4 concurrency=2",
        "redd.it": "rate=50 burst=20 concurrency=8",
        "staticflickr.com": "rate=50 burst=20 concurrency=4",
        "*": "rate=50 burst=20 concurrency=8",
    },
    "shards": {"samples_per_tar": "20"},
}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(World(seed=0), state_dir=tmp_path_factory.mktemp("sandbox")) as box:
        yield box


@pytest.fixture(autouse=True)
def _own_host_budgets(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets fresh per-machine host budgets (its subprocesses share them): a Retry-After
    pause or a cut rate must not leak from one test, or another session, into the next."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))


@pytest.fixture()
def sandbox_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Route this test's HTTP(S) through the sandbox with the standard proxy variables."""
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    sandbox.reset_log()
    return sandbox


@pytest.fixture()
def apis(sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[reddit_apis.ApiState]:
    """The sandbox's Reddit-side APIs with fresh counters and knobs, and no keys in the environment."""
    for var in ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "IMGUR_CLIENT_ID", "PUSHSHIFT_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    api = reddit_apis.state(sandbox_env.world)
    api.reset()
    yield api
    api.reset()


@pytest.fixture()
def luigi_config(tmp_path: Path) -> Iterator[Path]:
    """Point the pipeline at a fresh data dir with TEST_CONFIG; restore the config after."""
    config = luigi.configuration.get_config()
    sections = {**TEST_CONFIG, "redcaps": {"data_dir": str(tmp_path / "data")}}
    saved = {s: dict(config.items(s)) if config.has_section(s) else None for s in sections}
    for section, values in sections.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            config.set(section, key, value)
    luigi.task_register.Register.clear_instance_cache()
    yield tmp_path / "data"
    for section, values in saved.items():
        config.remove_section(section)
        if values is not None:
            config.add_section(section)
            for key, value in values.items():
                config.set(section, key, value)
    luigi.task_register.Register.clear_instance_cache()
