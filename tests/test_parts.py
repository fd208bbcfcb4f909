"""--part i/n: disjoint, balanced shares whose union is the whole."""

from __future__ import annotations

import json
import random

import pytest

from redcaps.errors import RedCapsError
from redcaps.parts import balanced_part, count_instances, parse_part


def test_shares_are_disjoint_balanced_and_cover_everything():
    rng = random.Random(7)
    # sizes spanning two orders of magnitude, as subreddit-years do
    weights = {f"sub{i}_{2008 + i % 13}": int(rng.lognormvariate(7, 1.5)) + 1 for i in range(400)}
    for count in (1, 2, 3, 7):
        shares = [balanced_part(weights, i, count) for i in range(1, count + 1)]
        names = [n for share in shares for n in share]
        assert sorted(names) == sorted(weights) and len(names) == len(set(names))
        loads = [sum(weights[n] for n in share) for share in shares]
        assert max(loads) - min(loads) <= max(weights.values())
        every_nth = sorted(weights)
        naive = [sum(weights[n] for n in every_nth[i::count]) for i in range(count)]
        assert max(loads) - min(loads) <= max(naive) - min(naive)


def test_a_few_big_files_go_to_different_machines():
    weights = {"big_2020": 1000, "big_2019": 990, "small_a": 10, "small_b": 10, "small_c": 5}
    one, two = balanced_part(weights, 1, 2), balanced_part(weights, 2, 2)
    assert ("big_2020" in one) != ("big_2019" in one)
    assert sorted(one + two) == sorted(weights)


def test_more_parts_than_items_leaves_some_parts_empty():
    assert [balanced_part({"a": 3, "b": 1}, i, 3) for i in (1, 2, 3)] == [["a"], ["b"], []]


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2", "", "1/0"])
def test_bad_parts_are_one_line_errors(text):
    with pytest.raises(RedCapsError, match="--part must be i/n"):
        parse_part(text)


def test_instances_are_counted_from_the_bytes(tmp_path):
    path = tmp_path / "roses_2020.json"
    records = [{"image_id": f"id{i}", "title": "x" * (i % 300)} for i in range(5000)]
    path.write_text(json.dumps({"info": {}, "annotations": records}))
    assert count_instances(path) == 5000
    # one key straddling the reader's 4 MiB block boundary
    head = b'{"info": {"pad": "' + b"p" * ((1 << 22) - 5 - 39) + b'"}, "annotations": [{"image_id": "a"}]}'
    assert head.index(b'"image_id"') == (1 << 22) - 5
    path.write_bytes(head)
    assert count_instances(path) == 1
