"""Duplicates: grouping rules, the Dedup stage's files and modes, and the planted sandbox duplicates."""

from __future__ import annotations

import io
import json
from pathlib import Path

import luigi
import numpy as np
import pytest
from PIL import Image

from pipeline import RedCapsBatch
from redcaps import annotations as ann
from redcaps.dataset import dedup
from redcaps.dataset.dedup import ImageHashes, dedup_file, find_groups, read_batch_counts, read_counts
from redcaps.errors import RedCapsError
from redcaps.layout import Layout
from redcaps.sandbox import posts
from redcaps.settings import DedupSettings
from redcaps.validate import validate_file
from tests.helpers import annotation_file, record
from tests.test_pipeline_year import build, cases, restore_luigi_config, set_config  # noqa: F401 - autouse


def _h(image_id: str, created: int, sha: str, phash: int, stem: str = "") -> ImageHashes:
    return ImageHashes(image_id, "roses", created, sha, f"{phash:016x}", stem)


def _pairs(groups: list[dict]) -> set[tuple[str, str, str]]:
    return {(d["image_id"], g["kept"]["image_id"], d["kind"]) for g in groups for d in g["duplicates"]}


def test_groups_keep_the_earliest_and_tell_exact_from_near():
    base = 0x0123456789ABCDEF
    hashes = [
        _h("late_copy", 30, "s1", base),
        _h("first", 10, "s1", base),
        _h("near", 20, "s2", base ^ 0b1111),  # 4 bits differ: near
        _h("near_copy", 40, "s2", base ^ 0b1111),  # same bytes as "near": exact, in the same group
        _h("far", 5, "s3", base ^ (0b11111 << 40)),  # 5 bits: not a duplicate
        _h("other", 1, "s4", ~base & (2**64 - 1)),
    ]
    groups = find_groups(hashes, max_distance=4)
    assert len(groups) == 1 and groups[0]["kept"]["image_id"] == "first"
    assert _pairs(groups) == {
        ("late_copy", "first", "exact"),
        ("near", "first", "near"),
        ("near_copy", "first", "exact"),
    }
    assert dedup.dropped_ids(groups, "off") == set()
    assert dedup.dropped_ids(groups, "exact") == {"late_copy", "near_copy"}
    assert dedup.dropped_ids(groups, "perceptual") == {"late_copy", "near", "near_copy"}
    assert find_groups(hashes, max_distance=0) == [
        {
            "kept": {"image_id": "first", "subreddit": "roses", "sha256": "s1"},
            "duplicates": [
                {
                    "image_id": "late_copy",
                    "subreddit": "roses",
                    "sha256": "s1",
                    "kind": "exact",
                    "distance": 0,
                }
            ],
        },
        {
            "kept": {"image_id": "near", "subreddit": "roses", "sha256": "s2"},
            "duplicates": [
                {
                    "image_id": "near_copy",
                    "subreddit": "roses",
                    "sha256": "s2",
                    "kind": "exact",
                    "distance": 0,
                }
            ],
        },
    ]


def test_near_search_matches_brute_force():
    rng = np.random.default_rng(1)
    values = [int(v) for v in rng.integers(0, 2**63, 300, dtype=np.int64)]
    values += [
        v ^ (1 << int(b)) ^ (1 << int(c))
        for v, b, c in zip(values[:40], rng.integers(0, 64, 40), rng.integers(0, 64, 40), strict=True)
    ]
    hashes = [_h(f"i{n:04d}", n, f"s{n}", v) for n, v in enumerate(values)]
    found = {(d["image_id"], g["kept"]["image_id"]) for g in find_groups(hashes, 4) for d in g["duplicates"]}
    brute = {
        (b.image_id, a.image_id)
        for x, a in enumerate(hashes)
        for b in hashes[x + 1 :]
        if (int(a.phash, 16) ^ int(b.phash, 16)).bit_count() <= 4
    }
    assert brute and found == brute  # no chains among random hashes: every pair is direct


def _noise(seed: int, size: tuple[int, int]) -> Image.Image:
    small = (np.random.default_rng(seed).random((12, 16, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


@pytest.fixture()
def year(tmp_path: Path) -> tuple[Layout, ann.AnnotationFile]:
    layout = Layout.at(tmp_path / "data")
    images = {
        "aorig": _jpeg(_noise(1, (640, 480))),
        "bother": _jpeg(_noise(2, (640, 480))),
        "cresized": _jpeg(_noise(1, (320, 240))),
    }
    images["dcopy"] = images["aorig"]
    records = [record(image_id, created_utc=1577923200 + n) for n, image_id in enumerate(sorted(images))]
    for image_id, data in images.items():
        path = layout.image("roses", image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return layout, annotation_file(records)


@pytest.mark.parametrize(
    ("mode", "kept"),
    [
        ("off", ["aorig", "bother", "cresized", "dcopy"]),
        ("exact", ["aorig", "bother", "cresized"]),
        ("perceptual", ["aorig", "bother"]),
    ],
)
def test_stage_files_modes_and_a_valid_result(year, mode, kept):
    layout, source = year
    result = dedup_file(source, layout, "roses_2020", DedupSettings(mode=mode))
    assert [r["image_id"] for r in result.annotations] == kept
    assert read_counts(layout, "roses_2020") == {
        "exact": 1,
        "near": 1,
        "dropped": 4 - len(kept),
        "mode": mode,
    }
    groups = [json.loads(line) for line in layout.duplicates("roses_2020").read_text().splitlines()]
    assert _pairs(groups) == {("cresized", "aorig", "near"), ("dcopy", "aorig", "exact")}
    assert {d["image_id"]: d["dropped"] for d in groups[0]["duplicates"]} == {
        "cresized": mode == "perceptual",
        "dcopy": mode != "off",
    }
    output = layout.stage_file("dedup", "roses_2020")
    assert ann.load(output).annotations == result.annotations
    assert [p for p in validate_file(output) if p.severity == "error"] == []


def test_images_are_hashed_once(year, monkeypatch):
    layout, source = year
    dedup_file(source, layout, "roses_2020", DedupSettings())
    lines = layout.image_hashes("roses_2020").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["stem"] == "roses_2020"

    def no_hashing(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(dedup, "hash_image", no_hashing)
    assert read_counts(layout, "roses_2020")["exact"] == 1
    dedup_file(source, layout, "roses_2020", DedupSettings(mode="exact"))
    assert read_counts(layout, "roses_2020") == {"exact": 1, "near": 1, "dropped": 1, "mode": "exact"}


def test_a_torn_last_hashes_line_is_dropped_and_that_image_hashed_again(year, monkeypatch):
    """A hashes file torn by a kill: its whole lines are reused, the torn image is hashed anew."""
    layout, source = year
    dedup_file(source, layout, "roses_2020", DedupSettings())
    path = layout.image_hashes("roses_2020")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:30])
    hashed = []
    real_hash = dedup.hash_image
    monkeypatch.setattr(dedup, "hash_image", lambda p: hashed.append(p.stem) or real_hash(p))
    dedup_file(source, layout, "roses_2020", DedupSettings())
    assert hashed == [json.loads(lines[3])["image_id"]]
    assert path.read_text().splitlines() == lines


def test_bad_distance_is_one_line(year):
    layout, source = year
    with pytest.raises(RedCapsError, match=r"max_distance must be 0\.\.63, got 64"):
        dedup_file(source, layout, "roses_2020", DedupSettings(max_distance=64))


def test_batch_pass_records_only_groups_across_stems(tmp_path):
    layout = Layout.at(tmp_path)
    lines = {
        "cats_2020": [
            _h("c1", 10, "s1", 0x0123456789ABCDEF),
            _h("c2", 20, "s2", 0xFEDCBA9876543210),
            _h("c3", 30, "s2", 0xFEDCBA9876543210),
        ],
        "roses_2020": [_h("r1", 15, "s1", 0x0123456789ABCDEF), _h("r2", 25, "s9", 0x0F0F0F0F0F0F0F0F)],
    }
    for stem, hashes in lines.items():
        path = layout.image_hashes(stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({**h.__dict__, "stem": stem}) + "\n" for h in hashes))
    assert read_batch_counts(layout, "pets-abc") is None
    counts = dedup.batch_duplicates(layout, list(lines), "pets-abc")
    assert counts == {"groups": 1, "exact": 1, "near": 0} == read_batch_counts(layout, "pets-abc")
    (group,) = [json.loads(x) for x in layout.batch_duplicates("pets-abc").read_text().splitlines()]
    assert group["kept"]["stem"] == "cats_2020" and group["duplicates"][0]["image_id"] == "r1"


def _expected_pairs(subreddits: set[str], by_case: dict[str, list[str]]) -> set[tuple[str, str, str]]:
    """Planted copies whose post and source are both in ``subreddits``, and the face photos."""
    population = {p["id"]: p for p in posts.population()}
    faces = sorted(by_case["face"], key=lambda i: (population[i]["created_utc"], i))
    pairs = {(f, faces[0], "exact") for f in faces[1:]}
    for copy, source, how in posts.planted_duplicates():
        if {population[copy]["subreddit"].lower(), population[source]["subreddit"].lower()} <= subreddits:
            pairs.add((copy, source, "exact" if how == "exact" else "near"))
    return pairs


@pytest.mark.slow
def test_the_sandbox_duplicates_are_found_and_nothing_else(sandbox_env, luigi_config, tmp_path):
    set_config("filters", enabled="words")
    set_config("downloads", read_timeout="10")  # the population has no slow images; a loaded machine
    set_config("dedup", mode="exact")
    config = tmp_path / "demo.yaml"
    config.write_text("name: demo\nsubreddits: [sandboxcats, sandboxroses]\nyears: [2020]\n")
    task = RedCapsBatch(config=str(config))
    result = build(task)
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    layout = Layout.at(luigi_config)

    all_cases: dict[str, list[str]] = {}
    for name in ("sandboxcats", "sandboxroses"):
        by_case = cases(name, 2020)
        for case, ids in by_case.items():
            all_cases.setdefault(case, []).extend(ids)
        stem = f"{name}_2020"
        groups = [json.loads(x) for x in layout.duplicates(stem).read_text().splitlines()]
        expected = _expected_pairs({name}, by_case)
        assert _pairs(groups) == expected
        published = {r["image_id"] for r in ann.load(layout.final_file(stem)).annotations}
        exact = {dup for dup, _, kind in expected if kind == "exact"}
        assert not exact & published and {dup for dup, _, kind in expected if kind == "near"} <= published
        counts = read_counts(layout, stem)
        assert counts == {
            "exact": len(exact),
            "near": len(expected) - len(exact),
            "dropped": len(exact),
            "mode": "exact",
        }
        year = json.loads(layout.stage_file("year", stem).read_text())
        assert year["duplicates"] == counts

    name = Path(task.output().path).name.removesuffix(".json")
    groups = [json.loads(x) for x in layout.batch_duplicates(name).read_text().splitlines()]
    both = _expected_pairs({"sandboxcats", "sandboxroses"}, all_cases)
    within = set().union(*(_expected_pairs({n}, cases(n, 2020)) for n in ("sandboxcats", "sandboxroses")))
    across = _pairs(groups)
    assert across - within == both - within and (both - within)  # the cross-subreddit copy, faces
    summary = json.loads(Path(task.output().path).read_text())
    assert summary["duplicates"] == read_batch_counts(layout, name)
    assert summary["duplicates"]["exact"] >= 1
