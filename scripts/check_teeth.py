"""Break each guarantee of docs/security.md in turn and check that its test then fails.

Each mutation replaces one line of product code (restored afterwards, whatever happens) and
runs the guarantee's tests; a mutation the tests do not catch makes the script exit 1.
Run from the repo root: ``.venv/bin/python scripts/check_teeth.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple


class Mutation(NamedTuple):
    guarantee: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "lone surrogates cleaned",
        "redcaps/collect/captions.py",
        'return _LONE_SURROGATES.sub("\\ufffd", text).replace("\\x00", "")',
        "return text",
        ("tests/test_hostile_posts.py",),
    ),
    Mutation(
        "scores clamped to int64",
        "redcaps/collect/month.py",
        "return int(min(max(value, INT64[0]), INT64[1]))",
        "return int(value)",
        ("tests/test_hostile_posts.py",),
    ),
    Mutation(
        "only http(s) image links",
        "redcaps/collect/rules.py",
        'if parts.scheme not in ("http", "https"):',
        'if parts.scheme not in ("http", "https", "ftp"):',
        ("tests/test_hostile_posts.py",),
    ),
    Mutation(
        "URL userinfo stripped",
        "redcaps/net/config.py",
        'if "@" not in parts.netloc:',
        "if True:",
        ("tests/test_userinfo.py",),
    ),
    Mutation(
        "zip bombs refused",
        "redcaps/dataset/official.py",
        "if size > _CHUNK and size / packed > MAX_RATIO:",
        "if False:",
        ("tests/test_official.py",),
    ),
    Mutation(
        "dump lines capped",
        "redcaps/collect/sources/dump.py",
        "MAX_LINE = 1 << 20",
        "MAX_LINE = 1 << 40",
        ("tests/test_dump_scan.py",),
    ),
    Mutation(
        "YAML duplicate keys refused",
        "redcaps/batch.py",
        "key in seen:",
        "key in seen and False:",
        ("tests/test_setting_ranges.py",),
    ),
    Mutation(
        "settings ranges checked",
        "redcaps/preflight.py",
        "return None if value == value and value in bounds else",
        "return None if True else",
        ("tests/test_setting_ranges.py",),
    ),
    Mutation(
        "directory fsynced after a rename",
        "redcaps/atomic.py",
        "        os.fsync(fd)\n    finally:",
        "        pass\n    finally:",
        ("tests/test_atomic.py",),
    ),
    Mutation(
        "one lock holder",
        "redcaps/locks.py",
        "            fcntl.flock(fd, mode | fcntl.LOCK_NB)\n            return",
        "            return",
        ("tests/test_locks.py",),
    ),
    Mutation(
        "artefact sizes checked",
        "redcaps/integrity.py",
        'if facts is not None and facts.get("size") != size:',
        "if False:",
        ("tests/test_integrity.py",),
    ),
    Mutation(
        "damaged loose images not packed",
        "redcaps/dataset/tarify.py",
        "if outcome is None or outcome.stored_sha256 is None or sha256_file(path) == outcome.stored_sha256:",
        "if True:",
        ("tests/test_tarify.py",),
    ),
    Mutation(
        "the tars are an image store",
        "tasks/download.py",
        "        self.restore_from_shards(source)\n",
        "        pass\n",
        (
            "tests/test_integrity.py::test_a_keep_loose_rerun_after_the_hosts_delete_every_image_keeps_the_year",
        ),
    ),
    Mutation(
        "a damaged tar's lost images refetched once",
        "tasks/tarify.py",
        'refetch=self.refetch if "DownloadImages" in stage_list(self.graph) else None,',
        "refetch=None,",
        ("tests/test_integrity.py::test_a_damaged_tar_whose_images_exist_nowhere_is_refetched_and_rebuilt",),
    ),
)


def caught(mutation: Mutation) -> bool:
    """Whether the guarantee's tests fail with the mutation in place."""
    path = Path(mutation.path)
    source = path.read_text()
    if mutation.old not in source:
        sys.exit(f"error: {mutation.guarantee}: the line to break is no longer in {mutation.path}")
    path.write_text(source.replace(mutation.old, mutation.new, 1))
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutation.tests],
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(source)
    return run.returncode == 1  # tests failed (not a collection error, 2-5)


def main() -> int:
    missed = 0
    for mutation in MUTATIONS:
        ok = caught(mutation)
        missed += not ok
        print(f"{'caught' if ok else 'MISSED'}  {mutation.guarantee}  ({mutation.path})", flush=True)
    print(f"{len(MUTATIONS) - missed} of {len(MUTATIONS)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
