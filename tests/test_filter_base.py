"""The filter framework: the info block, the commit order, and the threaded batched scoring loop."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from redcaps import annotations as ann
from redcaps.filters import base, stage
from redcaps.settings import NsfwSettings
from tests.helpers import ScoresById, annotation_file, record, write_images


def _file(n: int = 5) -> ann.AnnotationFile:
    # created_utc deliberately out of order: the filtered file is re-sorted like the original
    return annotation_file([record(f"id{i}", created_utc=100 - i) for i in range(n)])


# --- apply_removals / already_applied ---------------------------------------------------------


def test_apply_removals_builds_the_filtered_file_without_mutating_the_input() -> None:
    source = _file()
    source.annotations.append(record("id1", subreddit="pics", created_utc=50))  # same image, twice
    before = copy.deepcopy(source.to_json())
    removal = base.Removal("id1", "roses", "face", 0.97)
    outcome = base.apply_removals(
        source, "faces", [removal], [("id3", "unreadable: x")], model="m", confidence_threshold=0.9
    )
    assert source.to_json() == before
    assert [r["image_id"] for r in outcome.kept.annotations] == ["id4", "id3", "id2", "id0"]
    assert outcome.kept.info["face_filter"] == {"num_removed": 2, "model": "m", "confidence_threshold": 0.9}
    assert outcome.kept.info["start_date"] == "2020-01-01"
    assert outcome.removals == [removal]
    assert outcome.skipped == [("id3", "unreadable: x")]
    assert outcome.skipped[0].image_id == "id3"


def test_info_block_without_threshold_and_already_applied() -> None:
    outcome = base.apply_removals(_file(), "words", [], model="list")
    assert outcome.kept.info["word_filter"] == {"num_removed": 0, "model": "list"}
    assert base.already_applied(outcome.kept, "words")
    assert not base.already_applied(outcome.kept, "nsfw")
    with pytest.raises(ValueError, match="unknown filter kind"):
        base.already_applied(outcome.kept, "colour")
    assert base.FILTER_KEYS == {"words": "word_filter", "nsfw": "nsfw_filter", "faces": "face_filter"}


# --- the run and its commit (filters.stage) ------------------------------------------------------


def _run_setup(tmp_path: Path) -> tuple[stage.FilterPaths, ann.AnnotationFile]:
    source = _file()
    write_images(tmp_path / "images", source.annotations)
    ann.save(tmp_path / "roses_2020.json", source)
    out = tmp_path / "out"
    paths = stage.FilterPaths(
        tmp_path / "roses_2020.json", out / "roses_2020.json", out / "r.jsonl", tmp_path / "images"
    )
    return paths, source


def _run(paths: stage.FilterPaths) -> stage.FilterResult:
    return stage.run_filter(
        "nsfw", paths, NsfwSettings(), scorer=lambda: ScoresById({"id1": 0.95, "id3": 0.99}, model_name="m")
    )


def test_run_writes_file_and_record_then_deletes_only_removed_images(tmp_path: Path) -> None:
    paths, source = _run_setup(tmp_path)
    report = _run(paths)
    assert (report.status, report.removed, report.total) == ("filtered", 2, 5)
    kept = ann.load(paths.output)
    assert [r["image_id"] for r in kept.annotations] == ["id4", "id2", "id0"]
    assert kept.info["nsfw_filter"] == {"num_removed": 2, "model": "m", "confidence_threshold": 0.9}
    lines = [json.loads(line) for line in paths.removals.read_text().splitlines()]
    assert lines == [
        {"image_id": "id1", "subreddit": "roses", "reason": "nsfw", "score": 0.95},
        {"image_id": "id3", "subreddit": "roses", "reason": "nsfw", "score": 0.99},
    ]
    assert sorted(p.stem for p in paths.images.rglob("*.jpg")) == ["id0", "id2", "id4"]
    assert not paths.pending("nsfw").exists()


def test_no_image_is_deleted_when_the_file_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, _ = _run_setup(tmp_path)

    def fail(path: Any, annotations: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stage.ann, "save", fail)
    with pytest.raises(OSError, match="No space"):
        _run(paths)
    assert len(list(paths.images.rglob("*.jpg"))) == 5
    assert not paths.output.exists() and not paths.pending("nsfw").exists()


def test_a_commit_killed_mid_append_resumes_without_the_torn_removal(tmp_path: Path) -> None:
    """A record whose last line was torn by a kill: the whole lines are committed, the torn one is
    left out (its image stays), and no model runs again."""
    paths, source = _run_setup(tmp_path)
    paths.removals.parent.mkdir(parents=True)
    paths.removals.write_text(
        '{"image_id": "id1", "subreddit": "roses", "reason": "nsfw", "score": 0.95}\n'
        '{"image_id": "id3", "subreddit": "roses", "rea'
    )
    kept = [r for r in source.annotations if r["image_id"] != "id1"]
    ann.save(paths.pending("nsfw"), ann.AnnotationFile(source.info, kept))

    def no_model() -> base.ImageScorer:
        raise AssertionError("a resumed commit loaded a model")

    report = stage.run_filter("nsfw", paths, NsfwSettings(), scorer=no_model)
    assert (report.status, report.removed) == ("resumed", 1)
    assert sorted(p.stem for p in paths.images.rglob("*.jpg")) == ["id0", "id2", "id3", "id4"]
    assert [r["image_id"] for r in ann.load(paths.output).annotations] == ["id0", "id2", "id3", "id4"]
    assert not paths.pending("nsfw").exists()


def test_an_already_filtered_input_is_a_no_op_without_a_model(tmp_path: Path) -> None:
    paths, _ = _run_setup(tmp_path)
    _run(paths)
    in_place = stage.FilterPaths(paths.output, paths.output, paths.removals, paths.images)
    before = paths.output.read_bytes()
    report = stage.run_filter("nsfw", in_place, NsfwSettings(model="never-loaded.h5"))
    assert report.status == "already_applied" and paths.output.read_bytes() == before
    fresh = stage.FilterPaths(
        paths.output, tmp_path / "next" / "copy.json", tmp_path / "next" / "r", paths.images
    )
    assert stage.run_filter("nsfw", fresh, NsfwSettings(model="never-loaded.h5")).status == "already_applied"
    assert fresh.output.read_bytes() == before and fresh.removals.read_text() == ""
    assert len(list(paths.images.rglob("*.jpg"))) == 3


# --- score_images -----------------------------------------------------------------------------


class MeanScorer(base.ImageScorer):
    """Scores an image by its mean pixel / 255; records every model call and what was in flight."""

    model_name = "mean"

    def __init__(self, block_first_batch: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.prepared = 0
        self.lock = threading.Lock()
        self.max_in_flight = 0
        self.block_first_batch = block_first_batch
        self.prepared_during_first_batch = 0

    def prepare(self, path: Path) -> np.ndarray:
        if self.block_first_batch is not None:
            time.sleep(0.02)  # decoding slower than submitting, as with real photos
        with Image.open(path) as image:
            array = np.asarray(image.convert("L"), dtype=np.float32)
        with self.lock:
            self.prepared += 1
            self.max_in_flight = max(self.max_in_flight, self.prepared - sum(self.calls))
        return array

    def score(self, batch: list[Any]) -> list[float]:
        if self.block_first_batch is not None and not self.calls:
            before = self.prepared
            self.block_first_batch.wait(timeout=5)
            self.prepared_during_first_batch = self.prepared - before
        self.calls.append(len(batch))
        return [float(x.mean() / 255) for x in batch]


def _images(tmp_path: Path, n: int) -> tuple[ann.AnnotationFile, Path]:
    source = annotation_file([record(f"im{i}", created_utc=i) for i in range(n)])
    image_dir = tmp_path / "images"
    (image_dir / "roses").mkdir(parents=True)
    for i in range(n):
        Image.new("L", (16, 12), i * 10).save(image_dir / "roses" / f"im{i}.jpg", quality=95)
    return source, image_dir


def test_one_model_call_per_batch_and_scores_by_id(tmp_path: Path) -> None:
    source, image_dir = _images(tmp_path, 10)
    scorer, seen = MeanScorer(), []
    scores, skipped = base.score_images(
        source, image_dir, scorer, batch_size=4, workers=2, progress=seen.append
    )
    assert scorer.calls == [4, 4, 2] and sum(seen) == 10 and skipped == []
    assert list(scores) == [f"im{i}" for i in range(10)]
    for i in range(10):
        assert scores[f"im{i}"] == pytest.approx(i * 10 / 255, abs=0.02)


def test_corrupt_image_inside_a_batch_is_skipped_and_missing_ones_not_judged(tmp_path: Path) -> None:
    source, image_dir = _images(tmp_path, 6)
    source.annotations.append(record("im2", created_utc=99))  # duplicate id: scored once
    (image_dir / "roses" / "im2.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (image_dir / "roses" / "im4.jpg").unlink()
    scorer, seen = MeanScorer(), []
    scores, skipped = base.score_images(
        source, image_dir, scorer, batch_size=3, workers=2, progress=seen.append
    )
    assert sorted(scores) == ["im0", "im1", "im3", "im5"]
    assert [s.image_id for s in skipped] == ["im2"]
    assert skipped[0].reason.startswith("unreadable: OSError") and "\n" not in skipped[0].reason
    assert sum(scorer.calls) == 4 and max(scorer.calls) <= 3 and sum(seen) == 5


def test_decoding_overlaps_inference_with_bounded_prefetch(tmp_path: Path) -> None:
    source, image_dir = _images(tmp_path, 40)
    release = threading.Event()
    scorer = MeanScorer(block_first_batch=release)
    timer = threading.Timer(0.5, release.set)  # the first model call lasts 0.5 s
    timer.start()
    try:
        scores, _ = base.score_images(source, image_dir, scorer, batch_size=4, workers=2)
    finally:
        timer.cancel()
    assert len(scores) == 40
    assert scorer.prepared_during_first_batch > 0  # workers kept decoding while the model ran
    assert scorer.max_in_flight <= 2 * 4 + 2  # never more than the prefetch window decoded


def test_scorer_returning_wrong_count_and_bad_sizes_fail_loudly(tmp_path: Path) -> None:
    source, image_dir = _images(tmp_path, 3)

    class Broken(MeanScorer):
        def score(self, batch: list[Any]) -> list[float]:
            return [0.0]

    with pytest.raises(base.FilterError, match="1 scores for 3 images"):
        base.score_images(source, image_dir, Broken(), batch_size=8, workers=1)
    with pytest.raises(base.FilterError, match=">= 1"):
        base.score_images(source, image_dir, MeanScorer(), batch_size=0, workers=1)
