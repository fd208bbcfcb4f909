"""The one way to build an HTTP session: the egress guard on every request and connection,
proxies and CA bundle from the environment (requests' ``trust_env``), our User-Agent, no
urllib3 retries (:mod:`redcaps.net.retry` decides those)."""

from __future__ import annotations

import requests

from redcaps.net.config import HttpConfig
from redcaps.net.egress import EgressGuard, GuardedAdapter


def guarded_session(config: HttpConfig | None = None) -> requests.Session:
    """A pooled session whose requests pass :class:`~redcaps.net.egress.EgressGuard` first."""
    config = config or HttpConfig()
    session = requests.Session()
    adapter = GuardedAdapter(
        EgressGuard(config.allow_networks),
        config.source_address,
        pool_connections=config.pool_size,
        pool_maxsize=config.pool_size,
        max_retries=0,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = config.user_agent
    return session
