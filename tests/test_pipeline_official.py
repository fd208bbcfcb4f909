"""RedCapsOfficial end to end against the sandbox's annotation zip (Luigi, local scheduler)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pytest
import webdataset as wds

from pipeline import RedCapsOfficial
from redcaps.download.manifest import read_outcomes
from redcaps.errors import RedCapsError
from redcaps.sandbox.downloads import ANNOTATIONS_ZIP_URL
from tests.conftest import TEST_CONFIG
from tests.helpers import kill_process_group

REPO = Path(__file__).resolve().parents[1]


def build(*tasks: luigi.Task) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, log_level="WARNING")


def tar_digests(data_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((data_dir / "tarfiles").glob("*.tar"))
    }


def test_official_zip_end_to_end(sandbox_env, luigi_config):
    world = sandbox_env.world
    task = RedCapsOfficial(annotations_zip=ANNOTATIONS_ZIP_URL, sha256=world.annotations_zip_sha256())
    result = build(task)
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text

    data = luigi_config
    official = world.official_files()
    for stem, content in official.items():
        outcomes = {}
        for manifest in (data / "images" / ".manifests" / stem).glob("*.jsonl"):
            outcomes.update(read_outcomes(manifest))
        assert {o.url: o.status for o in outcomes.values()} == {
            r["url"]: world.expected_status(r["url"]) for r in content["annotations"]
        }
        ok_ids = sorted(i for i, o in outcomes.items() if o.ok)
        downloaded = json.loads((data / "stages" / "downloaded" / f"{stem}.json").read_text())
        assert sorted(r["image_id"] for r in downloaded["annotations"]) == ok_ids
        assert (data / "stages" / "validate" / f"{stem}.json").exists()
        shards = sorted(str(p) for p in (data / "tarfiles").glob(f"{stem}_*.tar"))
        keys = [
            k
            for k, _img, _meta in wds.WebDataset(shards, shardshuffle=False)
            .decode("pil")
            .to_tuple("__key__", "jpg", "json")
        ]
        assert sorted(keys) == ok_ids

    # politeness: the configured concurrency caps held on every host
    assert sandbox_env.log.max_concurrency("i.imgur.com") <= 2
    # burst 4, then 20/s; the proxy stamps arrivals, which trail the client's token by up to
    # ~0.1 s on a busy machine (exact per-request accounting: test_http)
    assert sandbox_env.log.max_rate("i.imgur.com", 1.0) <= 4 + 20 * 1.1
    assert sandbox_env.log.max_concurrency("i.redd.it") <= 8

    # a second run is a no-op: nothing is requested again
    sandbox_env.reset_log()
    luigi.task_register.Register.clear_instance_cache()
    assert build(task).status == luigi.LuigiStatusCode.SUCCESS
    assert sandbox_env.log.for_host("i.redd.it") == []


def test_annotations_dir_with_malformed_file_fails_cleanly(sandbox_env, luigi_config, tmp_path):
    src = tmp_path / "anns"
    src.mkdir()
    (src / "roses_2020.json").write_text('{"info": {}, "annotations": [{"image_id": "../etc"}]}')
    result = build(RedCapsOfficial(annotations_dir=str(src)))
    assert result.status != luigi.LuigiStatusCode.SUCCESS
    assert not (luigi_config / "images").exists() or not any((luigi_config / "images").rglob("*.jpg"))
    assert (src / "roses_2020.json").read_text().startswith('{"info"')  # input untouched


def test_failure_exits_non_zero_even_without_a_luigi_cfg(tmp_path):
    bad = tmp_path / "anns"
    bad.mkdir()
    (bad / "roses_2020.json").write_text("{broken")
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    cmd = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "pipeline",
        "RedCapsOfficial",
        "--annotations-dir",
        str(bad),
        "--local-scheduler",
        "--redcaps-data-dir",
        str(tmp_path / "data"),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 30, proc.stderr[-2000:]
    assert "roses_2020.json: invalid JSON" in proc.stderr


def _write_cfg(path: Path, data_dir: Path) -> Path:
    lines = ["[core]", "autoload_range = false", "[redcaps]", f"data_dir = {data_dir}"]
    for section, values in {
        **TEST_CONFIG,
        "downloads": {**TEST_CONFIG["downloads"], "workers": "2"},
        "host_limits": {**TEST_CONFIG["host_limits"], "redd.it": "rate=8 burst=1 concurrency=2"},
    }.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_official(sandbox, data_dir: Path, cfg: Path, annotations_dir: Path) -> subprocess.Popen:
    env = {**os.environ, **sandbox.env(), "LUIGI_CONFIG_PATH": str(cfg)}
    cmd = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "pipeline",
        "RedCapsOfficial",
        "--annotations-dir",
        str(annotations_dir),
        "--local-scheduler",
        "--log-level",
        "WARNING",
    ]
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


@pytest.mark.slow
def test_sigkill_mid_shard_then_resume_gives_identical_tars(sandbox, tmp_path):
    anns = tmp_path / "official" / "annotations"
    anns.mkdir(parents=True)
    for stem, content in sandbox.world.official_files().items():
        (anns / f"{stem}.json").write_text(json.dumps(content))

    clean = tmp_path / "clean"
    proc = _run_official(sandbox, clean, _write_cfg(tmp_path / "clean.cfg", clean), anns)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]

    killed = tmp_path / "killed"
    cfg = _write_cfg(tmp_path / "killed.cfg", killed)
    proc = _run_official(sandbox, killed, cfg, anns)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once a shard is half-way through
        journals = list((killed / "images" / ".manifests").rglob("*.partial"))
        if any(len(j.read_text().splitlines()) >= 5 for j in journals):
            break
        time.sleep(0.05)
    else:
        pytest.fail("no shard journal appeared")
    kill_process_group(proc)
    assert not (killed / "tarfiles").exists() or len(tar_digests(killed)) < len(tar_digests(clean))

    proc = _run_official(sandbox, killed, cfg, anns)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    assert tar_digests(killed) == tar_digests(clean) and tar_digests(clean)


def test_parts_split_the_official_files_disjoint_balanced_and_whole(tmp_path):
    anns = tmp_path / "anns"
    anns.mkdir()
    sizes = {"pics_2017": 400, "roses_2020": 120, "cats_2019": 90, "dogs_2018": 60, "tea_2020": 30}
    sizes |= {f"tiny{i}_2020": 3 for i in range(6)}
    for stem, count in sizes.items():
        records = [{"image_id": f"{stem}{n}", "url": "https://i.redd.it/x.jpg"} for n in range(count)]
        (anns / f"{stem}.json").write_text(json.dumps({"info": {}, "annotations": records}))

    shares = [
        {p.stem for p in RedCapsOfficial(annotations_dir=str(anns), part=f"{i}/3").annotation_files()}
        for i in (1, 2, 3)
    ]
    assert set().union(*shares) == set(sizes)
    assert sum(len(s) for s in shares) == len(sizes)  # disjoint
    loads = sorted(sum(sizes[s] for s in share) for share in shares)
    assert loads[0] > 0 and loads[-1] - loads[0] <= max(sizes.values())
    assert shares[0] == {"pics_2017"}  # the largest file alone outweighs the rest: a share of its own
    whole = RedCapsOfficial(annotations_dir=str(anns))
    assert {p.stem for p in whole.annotation_files()} == set(sizes)
    assert "part" not in whole.summary_name()  # the whole run keeps its summary's old name
    assert RedCapsOfficial(annotations_dir=str(anns), part="2/3").summary_name() != whole.summary_name()


def test_part_out_of_range_is_one_line():
    with pytest.raises(RedCapsError, match="--part must be i/n"):
        RedCapsOfficial(annotations_dir="/nonexistent", part="4/3")
