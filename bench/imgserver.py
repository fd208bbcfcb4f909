"""A loopback image server for the download benchmark (127.0.0.1 only, its own process).

Bodies are held in memory and written straight from asyncio (HTTP/1.1, keep-alive for the
clients that use it, ``Connection: close`` honoured for those that do not), so the server
costs a small fraction of what decoding the images costs and is not the bottleneck:
``python bench/imgserver.py --ceiling`` measures what it sustains on this machine.

    python bench/imgserver.py --port 0 --corpus phone:50 --corpus mixed:200

prints ``PORT <n>`` once it listens. ``GET /<corpus>/<n>.<ext>`` serves image ``n % count``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora  # noqa: E402

TYPES = {"jpg": b"image/jpeg", "png": b"image/png"}


class Images:
    def __init__(self, specs: list[str]) -> None:
        self.corpora: dict[str, list[tuple[str, bytes]]] = {}
        for spec in specs:
            name, _, count = spec.partition(":")
            self.corpora[name] = corpora.build(name, int(count or 50))

    def lookup(self, path: str) -> tuple[bytes, bytes] | None:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] not in self.corpora:
            return None
        stem, _, ext = parts[1].partition(".")
        images = self.corpora[parts[0]]
        if not stem.isdigit():
            return None
        real_ext, body = images[int(stem) % len(images)]
        return (TYPES.get(real_ext, b"application/octet-stream"), body) if ext == real_ext else None


def make_handler(images: Images):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, version = (lines[0].split(" ") + ["", "", ""])[:3]
                headers = {
                    k.strip().lower(): v.strip().lower() for k, _, v in (x.partition(":") for x in lines[1:])
                }
                keep = headers.get("connection") != "close" and version == "HTTP/1.1"
                found = images.lookup(path) if method in ("GET", "HEAD") else None
                if found is None:
                    status, ctype, body = b"404 Not Found", b"text/plain", b"not found\n"
                else:
                    status, (ctype, body) = b"200 OK", found
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: "
                    + ctype
                    + b"\r\nContent-Length: "
                    + str(len(body)).encode()
                    + (b"\r\nConnection: keep-alive\r\n\r\n" if keep else b"\r\nConnection: close\r\n\r\n")
                )
                if method != "HEAD":
                    writer.write(body)
                await writer.drain()
                if not keep:
                    return
        finally:
            writer.close()

    return handle


async def serve(images: Images, port: int) -> None:
    server = await asyncio.start_server(make_handler(images), "127.0.0.1", port, backlog=1024)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _client(args: tuple[str, int, list[str], bool]) -> tuple[int, int]:
    """One client process: fetch ``paths`` with a few threads, return (requests, bytes)."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    host, port, paths, keep_alive = args

    def run(chunk: list[str]) -> tuple[int, int]:
        conn, total = None, 0
        for path in chunk:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("GET", path, headers={} if keep_alive else {"Connection": "close"})
            total += len(conn.getresponse().read())
            if not keep_alive:
                conn.close()
                conn = None
        return len(chunk), total

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, [paths[i::4] for i in range(4)]))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def measure_ceiling(port: int, paths: list[str], processes: int = 2, keep_alive: bool = True) -> dict:
    """Fetch-only throughput (no decoding): a lower bound on what the server can give."""
    from multiprocessing import Pool

    start = time.perf_counter()
    with Pool(processes) as pool:
        jobs = [("127.0.0.1", port, paths[i::processes], keep_alive) for i in range(processes)]
        results = pool.map(_client, jobs)
    seconds = time.perf_counter() - start
    count, size = sum(r[0] for r in results), sum(r[1] for r in results)
    return {"requests_per_s": round(count / seconds), "mb_per_s": round(size / seconds / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--corpus", action="append", default=[], help="name:unique_count, e.g. phone:50")
    args = parser.parse_args()
    asyncio.run(serve(Images(args.corpus or ["phone:50", "mixed:200"]), args.port))


if __name__ == "__main__":
    main()
