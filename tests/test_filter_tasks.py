"""Filter stages under Luigi: outputs and removal records, chaining, crash recovery, no-op reruns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest

import tasks.filters
from redcaps import annotations as ann
from redcaps.errors import AnnotationFormatError
from redcaps.filters import base, models
from redcaps.settings import NsfwSettings
from tasks.filters import FilterFaces, FilterNsfw, FilterWords, cached_scorer
from tests.helpers import ScoresById, annotation_file, record, write_images
from tests.models_fixture import FACES, NO_FACES, SOURCES, copy_photos


@pytest.fixture()
def filter_config(luigi_config: Path) -> Iterator[Any]:
    """Set ``[section] key = value`` for one test; removes the filter sections afterwards."""
    config = luigi.configuration.get_config()
    touched: set[str] = set()

    def set_option(section: str, key: str, value: str) -> None:
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, key, value)
        touched.add(section)
        luigi.task_register.Register.clear_instance_cache()

    yield set_option
    for section in touched:
        config.remove_section(section)
    luigi.task_register.Register.clear_instance_cache()


def build(*tasks: luigi.Task) -> luigi.execution_summary.LuigiRunResult:
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, log_level="CRITICAL")


def _words_input(tmp_path: Path, data_dir: Path) -> str:
    records = [
        record("aaa1", caption="a rose", created_utc=1),
        record("bbb2", caption="my porn collection", created_utc=2),
        record("ccc3", caption="porn, wow", created_utc=3),
    ]
    write_images(data_dir / "images", records)
    path = tmp_path / "roses_2020.json"
    ann.save(path, annotation_file(records))
    return str(path)


def _images(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in (data_dir / "images").rglob("*.jpg"))


def test_filter_words_task_writes_file_and_record_and_deletes_images(
    luigi_config: Path, tmp_path: Path
) -> None:
    task = FilterWords(annotations=_words_input(tmp_path, luigi_config))
    assert build(task).status == luigi.LuigiStatusCode.SUCCESS
    output = luigi_config / "stages" / "filter_words" / "roses_2020.json"
    assert task.output().path == str(output)
    filtered = ann.load(output)
    assert [r["image_id"] for r in filtered.annotations] == ["aaa1", "ccc3"]
    assert filtered.info["word_filter"]["num_removed"] == 1
    removal = json.loads(output.with_suffix(".removals.jsonl").read_text())
    assert removal == {"image_id": "bbb2", "subreddit": "roses", "reason": "word:porn", "score": None}
    assert _images(luigi_config) == ["aaa1", "ccc3"]
    assert not task.pending_path.exists()


def test_filter_words_mode_comes_from_config(filter_config: Any, luigi_config: Path, tmp_path: Path) -> None:
    filter_config("filter_words", "mode", "punctuation")
    task = FilterWords(annotations=_words_input(tmp_path, luigi_config))
    assert build(task).status == luigi.LuigiStatusCode.SUCCESS
    assert [r["image_id"] for r in ann.load(task.output().path).annotations] == ["aaa1"]
    assert _images(luigi_config) == ["aaa1"]


def test_crash_after_writing_before_deleting_is_finished_by_the_rerun(
    luigi_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = FilterWords(annotations=_words_input(tmp_path, luigi_config))

    def crash(*args: Any) -> int:
        raise KeyboardInterrupt("killed")  # the worker dies right after the durable write

    monkeypatch.setattr(base, "delete_images", crash)
    with pytest.raises(KeyboardInterrupt):
        task.run()
    assert task.pending_path.exists() and not task.complete()
    assert _images(luigi_config) == ["aaa1", "bbb2", "ccc3"]
    monkeypatch.undo()

    # the input changed meanwhile: the rerun must finish the recorded commit, not re-filter
    ann.save(task.input_path, annotation_file([record("aaa1", caption="a rose", created_utc=1)]))
    assert build(FilterWords(annotations=str(task.input_path))).status == luigi.LuigiStatusCode.SUCCESS
    assert _images(luigi_config) == ["aaa1", "ccc3"]
    assert [r["image_id"] for r in ann.load(task.output().path).annotations] == ["aaa1", "ccc3"]
    assert not task.pending_path.exists()


def test_already_filtered_input_passes_through_unchanged(luigi_config: Path, tmp_path: Path) -> None:
    source = _words_input(tmp_path, luigi_config)
    filtered = annotation_file(ann.load(source).annotations)
    filtered.info["word_filter"] = {"num_removed": 7, "model": "earlier run"}
    ann.save(source, filtered)
    task = FilterWords(annotations=source)
    assert build(task).status == luigi.LuigiStatusCode.SUCCESS
    assert ann.load(task.output().path).to_json() == filtered.to_json()
    assert task.paths.removals.read_text() == ""
    assert _images(luigi_config) == ["aaa1", "bbb2", "ccc3"]  # nothing deleted


def test_bad_input_fails_the_task_and_leaves_images(luigi_config: Path, tmp_path: Path) -> None:
    source = Path(_words_input(tmp_path, luigi_config))
    source.write_text('{"info": {}, "annotations": [{"image_id": "../x"}]}')
    task = FilterWords(annotations=str(source))
    with pytest.raises(AnnotationFormatError, match="image_id"):
        task.run()  # (under luigi.build this is a FAILED task; run directly to skip its retries)
    assert not Path(task.output().path).exists() and len(_images(luigi_config)) == 3


def test_words_then_faces_chain_with_the_default_model(
    filter_config: Any,
    luigi_config: Path,
    tmp_path: Path,
    face_model_dir: Path,
    photo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(face_model_dir))
    filter_config("filter_faces", "batch_size", "2")
    filter_config("filter_faces", "workers", "2")
    filter_config("filter_faces", "device", "cpu")
    filter_config("filter_faces", "pad", "true")  # mixed sizes in one call: same verdicts here
    copy_photos(photo_dir, luigi_config / "images")
    records = [
        record(i, subreddit="pics", created_utc=n, caption=f"a photo {n}") for n, i in enumerate(SOURCES)
    ]
    records[2]["caption"] = "coffee porn"  # the word filter takes coffee first
    source = tmp_path / "pics_2020.json"
    ann.save(source, annotation_file(records))
    words = FilterWords(annotations=source)
    assert build(words).status == luigi.LuigiStatusCode.SUCCESS
    faces = FilterFaces(annotations=words.output().path)  # chained as on the command line
    result = build(faces)
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    final = ann.load(faces.output().path)
    assert [r["image_id"] for r in final.annotations] == [i for i in NO_FACES if i != "coffee"]
    assert final.info["word_filter"]["num_removed"] == 1
    assert final.info["face_filter"] == {
        "num_removed": 2,
        "model": models.FACES_MODEL_NAME,
        "confidence_threshold": 0.9,
    }
    lines = [json.loads(line) for line in faces.paths.removals.read_text().splitlines()]
    assert sorted(x["image_id"] for x in lines) == sorted(FACES)
    assert all(x["reason"] == "face" and x["score"] > 0.9 for x in lines)
    assert _images(luigi_config) == ["chelsea", "rocket"]
    assert build(faces).scheduling_succeeded  # complete: nothing reruns


def test_filter_faces_threshold_from_config(
    filter_config: Any,
    luigi_config: Path,
    tmp_path: Path,
    face_model_dir: Path,
    photo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(face_model_dir))
    filter_config("filter_faces", "confidence_threshold", "0.99999")  # above both fixture faces' scores
    filter_config("filter_faces", "model", str(face_model_dir / models.FACES_FILENAME))
    copy_photos(photo_dir, luigi_config / "images")
    source = tmp_path / "pics_2020.json"
    ann.save(source, annotation_file([record("camera", subreddit="pics")]))
    task = FilterFaces(annotations=str(source))
    assert build(task).status == luigi.LuigiStatusCode.SUCCESS
    info = ann.load(task.output().path).info["face_filter"]
    assert info == {
        "num_removed": 0,
        "model": f"retinaface ({models.FACES_FILENAME})",
        "confidence_threshold": 0.99999,
    }


def test_filter_nsfw_task_passes_its_config_to_the_scorer(
    filter_config: Any, luigi_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's plumbing only (the NSFW model itself is tested in the NSFW filter's tests)."""
    asked: list[tuple[str, Any]] = []

    def fake_new_scorer(kind: str, settings: Any) -> base.ImageScorer:
        asked.append((kind, settings))
        return ScoresById({"bbb2": 0.97}, default=0.2)

    cached_scorer.cache_clear()
    monkeypatch.setattr(tasks.filters, "new_scorer", fake_new_scorer)
    filter_config("filter_nsfw", "confidence_threshold", "0.5")
    filter_config("filter_nsfw", "batch_size", "7")
    task = FilterNsfw(annotations=_words_input(tmp_path, luigi_config))
    assert build(task).status == luigi.LuigiStatusCode.SUCCESS
    cached_scorer.cache_clear()
    assert asked == [("nsfw", NsfwSettings(confidence_threshold=0.5, batch_size=7))]
    assert ann.load(task.output().path).info["nsfw_filter"] == {
        "num_removed": 1,
        "model": "fake",
        "confidence_threshold": 0.5,
    }
    assert _images(luigi_config) == ["aaa1", "ccc3"]
    assert task.output().path.endswith("stages/filter_nsfw/roses_2020.json")


@pytest.fixture()
def all_default_models(
    face_model_dir: Path, nsfw_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """One ``$REDCAPS_MODELS_DIR`` holding both installed default models (as `make models` leaves it)."""
    combined = tmp_path / "models"
    combined.mkdir()
    for name, source in (("faces", face_model_dir), ("nsfw", nsfw_model_dir)):
        filename = models.MODELS[name].filename
        (combined / filename).symlink_to(source / filename)
    monkeypatch.setenv(models.ENV_VAR, str(combined))
    return combined


def test_all_three_filters_with_the_default_models(
    all_default_models: Path, filter_config: Any, luigi_config: Path, tmp_path: Path, photo_dir: Path
) -> None:
    """The chain RedCapsYear runs, offline, with the installed defaults: expected verdicts."""
    filter_config("filter_nsfw", "device", "cpu")
    filter_config("filter_faces", "device", "cpu")
    copy_photos(photo_dir, luigi_config / "images")
    records = [
        record(i, subreddit="pics", created_utc=n, caption=f"photo {n}") for n, i in enumerate(SOURCES)
    ]
    source = tmp_path / "pics_2020.json"
    ann.save(source, annotation_file(records))
    last: luigi.Task = FilterWords(annotations=source)
    for stage in (FilterNsfw, FilterFaces):  # chained as on the command line, in the year's order
        assert build(last).status == luigi.LuigiStatusCode.SUCCESS
        last = stage(annotations=last.output().path)
    result = build(last)
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    final = ann.load(last.output().path)
    assert [r["image_id"] for r in final.annotations] == list(NO_FACES)
    assert final.info["word_filter"]["num_removed"] == 0
    assert final.info["nsfw_filter"]["num_removed"] == 0  # no photo here is NSFW
    assert final.info["nsfw_filter"]["model"] == models.NSFW_MODEL_NAME
    assert final.info["face_filter"]["num_removed"] == 2
    assert _images(luigi_config) == sorted(NO_FACES)
