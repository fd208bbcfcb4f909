"""The egress guard: image URLs come from strangers, so none may reach an internal address.

* A direct connection resolves its host once, checks every address with :mod:`ipaddress`
  and connects to the checked address (no DNS-rebinding gap); TLS keeps the name for SNI
  and certificate checks.
* IP literals are checked before any connection, in every spelling the OS resolver
  accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``, ``[::ffff:127.0.0.1]``);
  spellings other than the canonical ones are refused outright, since parsers disagree.
* A configured proxy is the user's own choice and may itself be internal. It resolves the
  names it is given, so through a proxy IP literals are checked as above and internal-only
  names (``localhost``, ``*.internal``, ``*.local``, names without a dot) are refused.
* ``allow_networks`` (CIDRs) lets people fetch from their own internal mirrors.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys

import requests.adapters
import requests.utils
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection, parse_url
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from redcaps.errors import RedCapsError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names only a local resolver answers: RFC 6761 (localhost), RFC 6762 (.local),
#: RFC 8375 (.home.arpa), ICANN's private-use .internal, and the common .localdomain/.lan.
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain", ".lan")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
#: NAT64 (RFC 6052) embeds an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddress(Exception):
    """A URL whose host is, or resolves to, an address the guard refuses.

    Not an ``OSError``: urllib3 and requests must let it through unchanged."""


def parse_ip_literal(host: str) -> tuple[Address | None, bool]:
    """``(address, canonical)`` for a host that is an IP literal in any spelling the OS
    resolver (inet_aton) accepts; ``(None, False)`` for a name. A numeric-looking host that
    is no valid address raises :class:`BlockedAddress` (the WHATWG URL rule: a host whose
    last label is a number is an IPv4 address or an error)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host), True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not _NUMBER.fullmatch(labels[-1]):
        return None, False
    if len(labels) > 4 or not all(_NUMBER.fullmatch(label) for label in labels):
        raise BlockedAddress(f"malformed IP address {host!r}")
    try:
        numbers = [int(x, 16) if x[:2] == "0x" else int(x, 8) if x[:1] == "0" else int(x) for x in labels]
    except ValueError:  # "0x" alone, or 8 and 9 in octal
        raise BlockedAddress(f"malformed IP address {host!r}") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise BlockedAddress(f"malformed IP address {host!r}")
    value = sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last
    return ipaddress.IPv4Address(value), False


def is_internal(address: Address) -> bool:
    """Loopback, private, link-local, shared (100.64/10), multicast, reserved, unspecified,
    or anything else not globally reachable; IPv4 inside IPv6 (mapped, 6to4, NAT64) too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # the IPv4 address itself is what gets connected to
            return is_internal(address.ipv4_mapped)
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_internal(embedded):
            return True
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def is_internal_name(host: str) -> bool:
    """Names that only a local resolver answers (through a proxy, the proxy's resolver)."""
    host = host.lower().rstrip(".")
    return "." not in host or host == "localhost" or host.endswith(INTERNAL_SUFFIXES)


class EgressGuard:
    """Decides which hosts and addresses may be fetched; ``allow_networks`` are CIDRs."""

    def __init__(self, allow_networks: tuple[str, ...] | list[str] = ()) -> None:
        try:
            self.allowed = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in allow_networks)
        except ValueError as exc:
            raise RedCapsError(f"allow_networks: {exc}") from None

    def address_allowed(self, address: Address) -> bool:
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        if any(a in net for a in candidates for net in self.allowed if a.version == net.version):
            return True
        return not is_internal(address)

    def check_address(self, host: str, address: Address) -> None:
        if not self.address_allowed(address):
            shown = host if host == str(address) else f"{host} ({address})"
            raise BlockedAddress(f"refused internal address {shown}")

    def check_url(self, url: str, proxied: bool) -> None:
        """Refuse before connecting: IP literals always; through a proxy, internal-only names."""
        host = (parse_url(url).host or "").lower().strip("[]")
        address, canonical = parse_ip_literal(host)
        if address is not None:
            if not canonical:
                raise BlockedAddress(f"refused non-canonical IP address {host!r} (means {address})")
            self.check_address(host, address)
        elif proxied and is_internal_name(host):
            raise BlockedAddress(f"refused internal name {host!r}")

    def resolve(self, host: str, port: int) -> list[tuple]:
        """``getaddrinfo`` once; every address must pass, or the host is refused."""
        infos = socket.getaddrinfo(host, port, connection.allowed_gai_family(), socket.SOCK_STREAM)
        for *_, sockaddr in infos:
            self.check_address(host, ipaddress.ip_address(sockaddr[0].split("%")[0]))
        return infos


def _connect(
    infos: list[tuple], timeout: object, source: tuple | None, options: list | None
) -> socket.socket:
    """Connect to the first address of ``infos`` that answers (urllib3's create_connection,
    minus its own resolving: the addresses given are the ones checked)."""
    error: OSError = OSError("getaddrinfo returned no address")
    for family, socktype, proto, _, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)  # type: ignore[arg-type]
            if source:
                sock.bind(source)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _GuardedConnection(HTTPConnection):
    """Connects only to addresses the guard checked (set per subclass as ``guard``)."""

    guard: EgressGuard

    def _new_conn(self) -> socket.socket:
        try:
            infos = self.guard.resolve(self._dns_host, self.port)  # urllib3's name for resolving
            sock = _connect(infos, self.timeout, self.source_address, self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out ({exc})") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


def _pool_classes(guard: EgressGuard) -> dict[str, type]:
    """Connection pools whose connections check with ``guard`` (urllib3 picks them by scheme)."""
    http = type("GuardedHTTPConnection", (_GuardedConnection,), {"guard": guard})
    https = type("GuardedHTTPSConnection", (_GuardedConnection, HTTPSConnection), {"guard": guard})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Sends from ``source_address`` (a local IP; "" = the OS's choice), proxied or not."""

    def __init__(self, source_address: str = "", **kwargs: object) -> None:
        self.source_address = source_address
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        if self.source_address:
            kwargs["source_address"] = (self.source_address, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: object) -> urllib3.ProxyManager:
        if self.source_address:
            proxy_kwargs["source_address"] = (self.source_address, 0)
        return super().proxy_manager_for(proxy, **proxy_kwargs)


class GuardedAdapter(SourceAddressAdapter):
    """A requests adapter that checks every request's URL, and every direct connection's
    address, with an :class:`EgressGuard`. Connections to a proxy are not checked."""

    def __init__(self, guard: EgressGuard, source_address: str = "", **kwargs: object) -> None:
        self.guard = guard
        super().__init__(source_address, **kwargs)

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.guard)

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: object = None,
        verify: bool | str = True,
        cert: object = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        self.guard.check_url(url, proxied=bool(requests.utils.select_proxy(url, proxies)))
        return super().send(request, stream, timeout, verify, cert, proxies)  # type: ignore[arg-type]
