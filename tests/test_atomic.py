"""Atomic writers: a full disk is one line naming the path and free space, and leaves no temp file;
temp files of a killed writer are swept on the next run, a live writer's never."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redcaps import atomic
from redcaps.atomic import atomic_open, atomic_path, reporting_disk_full, sweep_temp_files, write_bytes
from redcaps.errors import DiskFullError, RedCapsError


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_full_tmpfs_is_one_line_and_keeps_the_old_file(tiny_disk):
    target = tiny_disk / "images" / "cats" / "abc.jpg"
    write_bytes(target, b"old")
    with pytest.raises(DiskFullError) as err:
        write_bytes(target, os.urandom(200_000))
    message = _one_line(err.value)
    assert message.startswith(f"no space left writing {target} (")
    assert message.endswith(f" free on {tiny_disk})")
    assert isinstance(err.value, RedCapsError) and not isinstance(err.value, OSError)
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["abc.jpg"]  # no .tmp-* left behind


def test_full_tmpfs_through_a_named_writer(tiny_disk):
    target = tiny_disk / "shard.tar"
    with pytest.raises(DiskFullError, match=f"no space left writing {target} "), atomic_path(target) as tmp:
        tmp.write_bytes(os.urandom(200_000))
    assert os.listdir(tiny_disk) == []


FULL = [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "disk quota exceeded")]


@pytest.mark.parametrize(("code", "words"), FULL)
def test_enospc_and_edquot_from_any_step(tmp_path, monkeypatch, code, words):
    target = tmp_path / "out" / "manifest.jsonl"

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(DiskFullError) as err, atomic_open(target, "w") as fh:
        fh.write("x\n")
    message = _one_line(err.value)
    assert message.startswith(f"{words} writing {target} (") and " free on /" in message
    assert os.listdir(target.parent) == []


def test_enospc_from_the_callers_write(tmp_path):
    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "a.json"
    with pytest.raises(DiskFullError, match="no space left writing .*a.json"), atomic_open(target, "w"):
        Full().write("x")
    assert os.listdir(tmp_path) == []


def test_other_os_errors_are_unchanged(tmp_path):
    with pytest.raises(PermissionError), atomic_open(tmp_path / "a.txt", "w"):
        raise PermissionError(errno.EACCES, "denied")
    assert os.listdir(tmp_path) == []


def test_reporting_disk_full_for_appending_writers(tiny_disk):
    journal = tiny_disk / "shard.journal"
    full = pytest.raises(DiskFullError, match=f"no space left writing {journal} ")
    with full, reporting_disk_full(journal), open(journal, "ab") as fh:
        fh.write(os.urandom(200_000))


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_removes_only_old_temp_files_of_the_writer(tmp_path):
    old_tmp = tmp_path / ".tmp-abc.jpg.x1y2"
    young_tmp = tmp_path / ".tmp-def.jpg.z3w4"
    old_other = tmp_path / ".cache-abc"
    old_image = tmp_path / "abc.jpg"
    tmp_dir = tmp_path / ".tmp-dir"
    for path in (old_tmp, young_tmp, old_other, old_image):
        path.write_bytes(b"x")
    tmp_dir.mkdir()
    for path in (old_tmp, old_other, old_image, tmp_dir):
        _age(path, 7200)
    assert sweep_temp_files(tmp_path, older_than=3600) == [old_tmp]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (young_tmp, old_other, old_image, tmp_dir)
    )
    assert sweep_temp_files(tmp_path / "missing") == []


def test_a_killed_writers_temp_file_is_swept_on_the_next_run(tmp_path):
    """A worker killed inside ``atomic_open`` leaves its temp file; the next run removes it."""
    script = (
        "import sys, time\n"
        "from redcaps.atomic import atomic_open\n"
        "with atomic_open(sys.argv[1], 'wb') as fh:\n"
        "    fh.write(b'partial')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    target = tmp_path / "cats" / "abc.jpg"
    writer = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        [live] = list(target.parent.iterdir())
        assert live.name.startswith(".tmp-abc.jpg.")
        assert sweep_temp_files(target.parent) == []  # a live writer's file is young: kept
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert live.exists() and not target.exists()
    _age(live, atomic.SWEEP_GRACE_SECONDS + 60)
    assert sweep_temp_files(target.parent) == [live]
    assert list(target.parent.iterdir()) == []


def test_read_jsonl_drops_only_a_torn_last_line(tmp_path):
    from redcaps.atomic import read_jsonl
    from redcaps.errors import RedCapsError

    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n{"a": 3, "b"')
    assert [r["a"] for r in read_jsonl(path)] == [1, 2]
    path.write_bytes(b'{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(RedCapsError, match=r"x.jsonl:2: not a JSON line"):
        list(read_jsonl(path))
    path.write_bytes(b'{"a": 1}\n[1, 2]\n')
    with pytest.raises(RedCapsError, match=r"x.jsonl:2: not a JSON object"):
        list(read_jsonl(path))
    path.write_bytes(b'{"a": 1}\n{"a": 2}')  # whole JSON but no newline: a complete last record
    assert [r["a"] for r in read_jsonl(path)] == [1, 2]
    assert list(read_jsonl(tmp_path / "missing.jsonl")) == []


def test_importing_leaves_the_umask_alone_and_files_follow_it(tmp_path):
    """Nothing changes process state at import; a written file gets the mode a plain open() would
    (0640 under umask 027), read when the first file is written."""
    script = f"""
import os
calls = []
real_umask = os.umask
os.umask = lambda mask: calls.append(mask) or real_umask(mask)
real_umask(0o027)
import redcaps.atomic
assert calls == [], calls
os.umask = real_umask
redcaps.atomic.write_text({str(tmp_path / "out.txt")!r}, "x")
print(oct(os.stat({str(tmp_path / "out.txt")!r}).st_mode & 0o777))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0o640"


@pytest.mark.parametrize("writer", ["atomic_open", "atomic_path"])
def test_an_atomic_write_fsyncs_its_directory_after_the_rename(tmp_path, monkeypatch, writer):
    """A power loss cannot undo a rename a completed stage relies on: the directory is fsynced
    after ``os.replace``, not only the file before it."""
    events: list[str] = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])

    def fsync(fd: int) -> None:
        events.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "out.json"
    if writer == "atomic_open":
        with atomic_open(target, "w") as fh:
            fh.write("{}")
    else:
        with atomic_path(target) as tmp:
            tmp.write_text("{}")
    assert events == ["fsync file", "replace", "fsync dir"]
