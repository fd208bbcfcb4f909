"""``redcaps filter-*``: in place and safe, already-applied is a no-op, bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from redcaps import annotations as ann
from redcaps.cli.main import main
from redcaps.filters import base, models, stage
from redcaps.layout import removals_beside
from redcaps.settings import NsfwSettings
from tests.helpers import ScoresById, annotation_file, record, write_images
from tests.models_fixture import FACES, NO_FACES, SOURCES, copy_photos


def removals_path(path: Path, kind: str) -> Path:
    return removals_beside(path, base.FILTER_KEYS[kind])


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _words_setup(tmp_path: Path) -> tuple[Path, Path]:
    records = [
        record("aaa1", caption="a rose", created_utc=1),
        record("bbb2", caption="my porn collection", created_utc=2),
        record("ccc3", caption="porn, wow", created_utc=3),
    ]
    images = tmp_path / "images"
    write_images(images, records)
    path = tmp_path / "roses_2020.json"
    ann.save(path, annotation_file(records))
    return path, images


def _images(images: Path) -> list[str]:
    return sorted(p.stem for p in images.rglob("*.jpg"))


def test_filter_words_in_place_then_already_applied(tmp_path: Path) -> None:
    path, images = _words_setup(tmp_path)
    result = run("filter-words", "-a", str(path), "-i", str(images))
    assert result.exit_code == 0, result.output
    assert "removed 1 of 3 instances" in result.output
    filtered = ann.load(path)
    assert [r["image_id"] for r in filtered.annotations] == ["aaa1", "ccc3"]
    assert filtered.info["word_filter"]["num_removed"] == 1
    assert _images(images) == ["aaa1", "ccc3"]
    record_file = removals_path(path, "words")
    assert record_file.name == "roses_2020.word_filter.removals.jsonl"
    assert json.loads(record_file.read_text())["reason"] == "word:porn"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]

    before = path.read_bytes()
    again = run("filter-words", "-a", str(path), "-i", str(images), "--mode", "punctuation")
    assert again.exit_code == 0 and "word_filter already applied" in again.output
    assert path.read_bytes() == before and _images(images) == ["aaa1", "ccc3"]


def test_filter_words_punctuation_mode(tmp_path: Path) -> None:
    path, images = _words_setup(tmp_path)
    assert run("filter-words", "-a", str(path), "-i", str(images), "--mode", "punctuation").exit_code == 0
    assert [r["image_id"] for r in ann.load(path).annotations] == ["aaa1"]
    assert _images(images) == ["aaa1"]


def test_rerun_finishes_a_commit_an_interrupted_run_recorded(tmp_path: Path) -> None:
    path, images = _words_setup(tmp_path)
    outcome = __import__("redcaps.filters.words", fromlist=["x"]).filter_words(ann.load(path))
    base.write_removals(removals_path(path, "words"), outcome.removals)
    pending = path.with_name(path.name + ".words.pending")
    ann.save(pending, outcome.kept)  # the new file was written, then the run died before deleting
    assert _images(images) == ["aaa1", "bbb2", "ccc3"] and "word_filter" not in ann.load(path).info
    result = run("filter-words", "-a", str(path), "-i", str(images))
    assert result.exit_code == 0 and "finished an interrupted run: removed 1 instances" in result.output
    assert _images(images) == ["aaa1", "ccc3"] and not pending.exists()
    assert ann.load(path) == outcome.kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"info": {}, "annotations": [{"image_id": "../../etc"}]}', "image_id"),
    ],
)
def test_bad_annotation_file_is_one_line_and_touches_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    _, images = _words_setup(tmp_path)
    bad = tmp_path / "bad_2020.json"
    bad.write_text(content)
    for command in ("filter-words", "filter-faces", "filter-nsfw"):
        result = run(command, "-a", str(bad), "-i", str(images))
        assert result.exit_code == 1
        assert (
            result.stderr.count("\n") == 1
            and result.stderr.startswith("error: ")
            and message in result.stderr
        )
        assert bad.read_text() == content and len(_images(images)) == 3


def test_missing_images_dir_and_missing_file(tmp_path: Path) -> None:
    path, _ = _words_setup(tmp_path)
    result = run("filter-words", "-a", str(path), "-i", str(tmp_path / "nowhere"))
    assert (
        result.exit_code == 1
        and result.stderr == f"error: images directory not found: {tmp_path / 'nowhere'}\n"
    )
    result = run("filter-words", "-a", str(tmp_path / "absent.json"), "-i", str(tmp_path))
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "cannot read" in result.stderr
    assert "word_filter" not in ann.load(path).info


def _photos_file(tmp_path: Path, photo_dir: Path) -> tuple[Path, Path]:
    images = copy_photos(photo_dir, tmp_path / "images")
    path = tmp_path / "pics_2020.json"
    ann.save(
        path, annotation_file([record(i, subreddit="pics", created_utc=n) for n, i in enumerate(SOURCES)])
    )
    return path, images


@pytest.mark.parametrize("pad", [[], ["--pad"]], ids=["exact", "padded"])
def test_filter_faces_default_model_verdicts_and_a_corrupt_image(
    tmp_path: Path, photo_dir: Path, default_model: Path, pad: list[str]
) -> None:
    path, images = _photos_file(tmp_path, photo_dir)
    (images / "pics" / "rocket.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run("filter-faces", "-a", str(path), "-i", str(images), "-b", "3", "--device", "cpu", *pad)
    assert result.exit_code == 0, result.output
    assert "warning: rocket: unreadable:" in result.stderr
    assert "removed 2 of 5 instances, 1 unreadable images kept" in result.stdout
    filtered = ann.load(path)
    assert [r["image_id"] for r in filtered.annotations] == list(NO_FACES)
    assert filtered.info["face_filter"] == {
        "num_removed": 2,
        "model": models.FACES_MODEL_NAME,
        "confidence_threshold": 0.9,
    }
    assert _images(images) == sorted(NO_FACES)
    lines = [json.loads(x) for x in removals_path(path, "faces").read_text().splitlines()]
    assert sorted(x["image_id"] for x in lines) == sorted(FACES) and all(x["score"] > 0.9 for x in lines)
    again = run("filter-faces", "-a", str(path), "-i", str(images), "-m", str(tmp_path / "never-loaded.pth"))
    assert again.exit_code == 0 and "face_filter already applied" in again.output


def test_filter_faces_model_and_threshold_options(
    tmp_path: Path, photo_dir: Path, face_model_dir: Path
) -> None:
    path, images = _photos_file(tmp_path, photo_dir)
    onnx = face_model_dir / models.FACES_FILENAME
    result = run("filter-faces", "-a", str(path), "-i", str(images), "-m", str(onnx), "-t", "0.99999")
    assert result.exit_code == 0, result.output
    info = ann.load(path).info["face_filter"]
    assert info == {"num_removed": 0, "model": f"retinaface ({onnx.name})", "confidence_threshold": 0.99999}
    assert len(_images(images)) == 5


def test_filter_faces_bad_model_is_one_line(tmp_path: Path, photo_dir: Path) -> None:
    path, images = _photos_file(tmp_path, photo_dir)
    junk = tmp_path / "retinaface_resnet50.pth"
    junk.write_bytes(b"not a checkpoint")
    result = run("filter-faces", "-a", str(path), "-i", str(images), "-m", str(junk), "--device", "cpu")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "face_filter" not in ann.load(path).info and len(_images(images)) == 5


def test_filter_nsfw_passes_its_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's plumbing only (the NSFW model is tested in the NSFW filter's own tests)."""
    asked: list[tuple[str, Any]] = []

    def fake_new_scorer(kind: str, settings: Any) -> base.ImageScorer:
        asked.append((kind, settings))
        return ScoresById({"ccc3": 0.93})

    monkeypatch.setattr(stage, "new_scorer", fake_new_scorer)
    path, images = _words_setup(tmp_path)
    result = run(
        "filter-nsfw", "-a", str(path), "-i", str(images), "-t", "0.8", "-m", "x.h5", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    settings = NsfwSettings(model="x.h5", confidence_threshold=0.8, batch_size=32, workers=4, device="cpu")
    assert asked == [("nsfw", settings)]
    assert _images(images) == ["aaa1", "bbb2"]
    assert ann.load(path).info["nsfw_filter"] == {
        "num_removed": 1,
        "model": "fake",
        "confidence_threshold": 0.8,
    }


def test_filter_nsfw_with_the_default_model_keeps_the_photos(
    tmp_path: Path, photo_dir: Path, nsfw_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.ENV_VAR, str(nsfw_model_dir))
    path, images = _photos_file(tmp_path, photo_dir)
    result = run("filter-nsfw", "-a", str(path), "-i", str(images), "--device", "cpu")
    assert result.exit_code == 0, result.output
    filtered = ann.load(path)
    assert [r["image_id"] for r in filtered.annotations] == list(SOURCES)
    assert filtered.info["nsfw_filter"] == {
        "num_removed": 0,
        "model": models.NSFW_MODEL_NAME,
        "confidence_threshold": 0.9,
    }
    assert removals_path(path, "nsfw").read_text() == "" and len(_images(images)) == 5
    again = run("filter-nsfw", "-a", str(path), "-i", str(images))
    assert again.exit_code == 0 and "nsfw_filter already applied" in again.output


def test_filter_faces_cuda_without_a_gpu_is_one_line(
    tmp_path: Path, photo_dir: Path, default_model: Path
) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: nothing to refuse")
    path, images = _photos_file(tmp_path, photo_dir)
    result = run("filter-faces", "-a", str(path), "-i", str(images), "--device", "cuda")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "cuda requested" in result.stderr  # never a silent CPU run
    assert "face_filter" not in ann.load(path).info and len(_images(images)) == 5
