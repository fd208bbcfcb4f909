"""The parquet beside each shard: a failed instance's row keeps its annotation record's fields
(caption, subreddit, author, permalink), as img2dataset keeps the caption of a failed sample."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from redcaps.dataset.tarify import write_shards
from tests.helpers import annotation_file, record, write_images

RECORD_FIELDS = ("caption", "raw_caption", "subreddit", "author", "permalink", "score", "created_utc")


def test_failed_rows_keep_the_attempted_records_fields(tmp_path):
    attempted = [record(f"id{i:03d}", created_utc=1577923200 + i, author=f"user{i}") for i in range(4)]
    packed = attempted[:2]  # the download stage wrote only the instances whose image is ok
    write_images(tmp_path / "images", packed)
    lines = [{"image_id": r["image_id"], "url": r["url"], "status": "ok"} for r in packed]
    lines += [
        {"image_id": "id002", "url": attempted[2]["url"], "status": "http_404", "error": "HTTP 404"},
        {"image_id": "id003", "url": attempted[3]["url"], "status": "placeholder"},
        {"image_id": "id009", "url": "https://i.imgur.com/z.jpg", "status": "http_404"},  # no record given
    ]
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "00000000.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    result = write_shards(
        annotation_file(packed),
        tmp_path / "images",
        tmp_path / "tars",
        "roses_2020",
        manifests=manifests,
        attempted=attempted,
    )
    rows = {r["key"]: r for r in pq.read_table(result.shards[0].with_suffix(".parquet")).to_pylist()}
    assert sorted(rows) == ["id000", "id001", "id002", "id003", "id009"]
    for failed in attempted[2:]:
        row = rows[failed["image_id"]]
        assert row["status"] == "failed_to_download"
        assert {name: row[name] for name in RECORD_FIELDS} == {name: failed[name] for name in RECORD_FIELDS}
    assert rows["id003"]["reason"] == "placeholder" and rows["id002"]["error_message"] == "HTTP 404"
    assert rows["id009"]["caption"] is None and rows["id009"]["url"] == "https://i.imgur.com/z.jpg"
