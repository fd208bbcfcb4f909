"""What an outside request may do: timeouts, sizes, retries, host limits and where it may go."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from redcaps import __version__
from redcaps.net.limits import DEFAULT_HOST_POLICIES, HostPolicy
from redcaps.net.retry import RetryPolicy
from redcaps.settings import AT_LEAST_ONE, POSITIVE, ranged


def strip_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part: requests would send it as ``Authorization:
    Basic``, and a post's link is no place for credentials (nor is an annotation file)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def default_user_agent() -> str:
    return f"redcaps/{__version__} (+https://github.com/redcaps-dataset/redcaps-downloader; dataset research)"


@dataclass
class HttpConfig:
    user_agent: str = field(default_factory=default_user_agent)
    connect_timeout: float = ranged(10.0, **POSITIVE)
    read_timeout: float = ranged(30.0, **POSITIVE)
    max_bytes: int = ranged(50 * 2**20, **POSITIVE)
    max_attempts: int = ranged(5, **AT_LEAST_ONE)
    backoff_base: float = ranged(1.0, low=0)
    backoff_max: float = ranged(60.0, low=0)
    retry_after_max: float = ranged(120.0, low=0)
    host_policies: dict[str, HostPolicy] = field(default_factory=lambda: dict(DEFAULT_HOST_POLICIES))
    pool_size: int = ranged(32, **AT_LEAST_ONE)
    #: Seconds for one request from connecting to the body's last byte.
    request_deadline: float = ranged(60.0, **POSITIVE)
    #: Seconds for one URL across all attempts, redirects and backoff waits.
    url_deadline: float = ranged(180.0, **POSITIVE)
    #: CIDRs of internal networks that may be fetched (e.g. your own mirror); none by default.
    allow_networks: tuple[str, ...] = ()
    #: "machine" (default): all processes on this machine share each host's budget, as hosts
    #: count per client IP; "global": the same here, and the scheduler runs one shard per host at
    #: a time; "process": each process has its own.
    host_scope: str = "machine"
    #: Local IP to send from ("" = the OS's choice); the machine's budget is kept per address.
    source_address: str = ""
    #: Where the machine's shared budgets live ("" = $XDG_RUNTIME_DIR/redcaps/hosts or /tmp).
    budget_dir: str = ""

    def retry_policy(self) -> RetryPolicy:
        """Image downloads: full jitter, and a ``Retry-After`` over ``retry_after_max`` ends
        the retries (a later run tries again)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            fixed_share=0.0,
            retry_after_max=self.retry_after_max,
            give_up_on_longer=True,
        )
