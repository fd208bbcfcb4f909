"""One pass per dump file for a whole batch: staged posts equal what the dump source reads."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from redcaps.collect.month import collect_month
from redcaps.collect.scan import StagedDumpSource, months_of_years, scan_dump
from redcaps.collect.sources.dump import DumpSource, read_lines, write_dump
from redcaps.errors import RedCapsError
from redcaps.sandbox.posts import population


def month_of(post) -> str:
    return dt.datetime.fromtimestamp(post["created_utc"], dt.timezone.utc).strftime("%Y-%m")


def staging_in(folder: Path):
    return lambda subreddit, month: folder / f"{subreddit}_{month}.jsonl.zst"


def noise(n: int, month: str, seed: int = 0) -> list[dict]:
    """Posts of other subreddits, one a crosspost whose nested copy names a wanted subreddit."""
    rng = random.Random(seed)
    start = int(dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.timezone.utc).timestamp())
    posts = [
        {
            "id": f"n{i:05d}",
            "subreddit": f"Other{i % 40}",
            "created_utc": start + rng.randrange(86400 * 27),
            "title": "x",
            "url": "https://i.redd.it/x.jpg",
        }
        for i in range(n)
    ]
    posts[0]["crosspost_parent_list"] = [{"subreddit": "SandboxCats", "id": "zzz"}]
    return posts


@pytest.fixture
def dumps(tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    by_month: dict[str, list] = {}
    for post in population():
        by_month.setdefault(month_of(post), []).append(post)
    for month in ("2020-03", "2020-04", "2020-05"):
        posts = by_month[month] + noise(300, month)
        random.Random(month).shuffle(posts)
        write_dump(folder / f"RS_{month}.zst", posts)
    return folder


def test_staged_months_equal_the_dump_sources_byte_for_byte(dumps, tmp_path):
    staging = staging_in(tmp_path / "staging")
    wanted = ["SandboxCats", "sandboxroses", *[f"absent{i}" for i in range(348)]]  # 350 names
    for month in ("2020-03", "2020-04", "2020-05"):
        counts = scan_dump(dumps / f"RS_{month}.zst", wanted, staging, [month])
        assert counts.lines > 300 and counts.staged[("sandboxcats", month)] > 0
    for subreddit in ("sandboxcats", "sandboxroses"):
        for month in (3, 4, 5):
            direct = collect_month(subreddit, 2020, month, source=DumpSource(dumps))
            staged = collect_month(subreddit, 2020, month, source=StagedDumpSource(staging))
            assert staged.to_json() == direct.to_json()
            assert direct.annotations  # the comparison is not of two empty months
    assert (tmp_path / "staging" / "absent7_2020-04.jsonl.zst").exists()  # empty, but scanned
    assert list(read_lines(tmp_path / "staging" / "absent7_2020-04.jsonl.zst")) == []


def test_a_per_subreddit_file_is_read_once_for_every_month_of_the_years(tmp_path):
    cats = [p for p in population() if p["subreddit"] == "SandboxCats"]
    write_dump(tmp_path / "SandboxCats_submissions.zst", cats)
    staging = staging_in(tmp_path / "staging")
    scan_dump(tmp_path / "SandboxCats_submissions.zst", ["sandboxcats"], staging, months_of_years(2020, 2020))
    for month in range(1, 13):
        direct = collect_month(
            "sandboxcats", 2020, month, source=DumpSource(tmp_path / "SandboxCats_submissions.zst")
        )
        assert (
            collect_month("sandboxcats", 2020, month, source=StagedDumpSource(staging)).to_json()
            == direct.to_json()
        )


def test_each_dump_is_opened_once_for_a_batch(dumps, tmp_path):
    """Counted with an audit hook in a fresh process: one open per dump, whatever the batch's size."""
    script = f"""
import sys
from pathlib import Path
from redcaps.collect.scan import scan_dump
opened = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]).endswith(".zst")
                 and "RS_" in str(args[0]) and opened.append(str(args[0])))
dumps = Path({str(dumps)!r})
wanted = ["SandboxCats", "sandboxroses"] + [f"absent{{i}}" for i in range(348)]
staging = Path({str(tmp_path)!r})
for month in ("2020-03", "2020-04", "2020-05"):
    scan_dump(dumps / f"RS_{{month}}.zst", wanted, lambda s, m: staging / f"{{s}}_{{m}}.jsonl.zst", [month])
print(len(opened), len(set(opened)))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["3", "3"]


def test_a_month_without_its_scan_is_an_error_not_an_empty_month(tmp_path):
    with pytest.raises(RedCapsError, match="dump scan for r/sandboxcats 2020-03 has not run"):
        collect_month("sandboxcats", 2020, 3, source=StagedDumpSource(staging_in(tmp_path)))


def test_a_failed_scan_leaves_no_staging_file(dumps, tmp_path):
    raw = (dumps / "RS_2020-04.zst").read_bytes()
    (dumps / "RS_2020-04.zst").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RedCapsError, match="truncated"):
        scan_dump(dumps / "RS_2020-04.zst", ["sandboxcats"], staging_in(tmp_path / "staging"), ["2020-04"])
    assert list((tmp_path / "staging").iterdir()) == []


def _dump_with_a_long_line(path: Path, line_bytes: int) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=20)
    with open(path, "wb") as fh, zstandard.ZstdCompressor(compression_params=params).stream_writer(fh) as out:
        out.write(b'{"id": "a1", "subreddit": "SandboxCats", "created_utc": 1583020800}\n')
        out.write(b'{"id": "a2", "subreddit": "SandboxCats", "title": "')
        for _ in range(line_bytes >> 20):
            out.write(b"x" * (1 << 20))
        out.write(b'"}\n{"id": "a3", "subreddit": "SandboxCats", "created_utc": 1583020801}\n')


def test_a_line_over_the_cap_is_skipped_and_counted(tmp_path):
    _dump_with_a_long_line(tmp_path / "RS_2020-03.zst", 3 << 20)
    from collections import Counter

    skipped: Counter[str] = Counter()
    lines = list(read_lines(tmp_path / "RS_2020-03.zst", skipped=skipped))
    assert [line[:12] for line in lines] == [b'{"id": "a1",', b'{"id": "a3",']
    assert skipped == {"too_long": 1}


def test_a_huge_line_stays_within_a_memory_bound(tmp_path):
    """A 1 GiB line (34 KB compressed) is skipped with the reader's peak RSS under 200 MiB."""
    _dump_with_a_long_line(tmp_path / "RS_2020-03.zst", 1 << 30)
    # VmHWM, not ru_maxrss: the latter starts at the forking parent's peak (pytest's own)
    script = f"""
import re
from pathlib import Path
from redcaps.collect.sources.dump import read_lines
n = sum(1 for _ in read_lines(Path({str(tmp_path / "RS_2020-03.zst")!r})))
peak_kib = int(re.search(r"VmHWM:\\s*(\\d+)", Path("/proc/self/status").read_text()).group(1))
print(n, peak_kib // 1024)
"""
    lines, peak_mib = map(
        int,
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split(),
    )
    assert lines == 2
    assert peak_mib < 200
