"""Two "machines" (client IPs 127.0.0.2 and .3) behind one luigid, against per-IP CDN capacities.

A small run of ``bench/bench_machines.py``: each worker runs ``RedCapsBatch --part i/2`` with its
own ``--downloads-source-address``; the sandbox's CDN counts each client IP separately."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from redcaps.sandbox import CdnProfile, Sandbox
from redcaps.sandbox.world import World

REPO = Path(__file__).resolve().parents[1]
CAPACITY = {"i.redd.it": 10.0, "i.imgur.com": 5.0, "*.staticflickr.com": 5.0}


def bench_machines():
    spec = importlib.util.spec_from_file_location("bench_machines", REPO / "bench" / "bench_machines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_two_client_ips_each_keep_to_their_capacity_and_no_task_runs_twice(tmp_path):
    bench = bench_machines()
    profiles = {
        host: CdnProfile(capacity=c, retry_after_share=0.5, retry_after=1) for host, c in CAPACITY.items()
    }
    batch = tmp_path / "pets.yaml"
    batch.write_text("name: pets\nsubreddits: [sandboxcats, sandboxroses]\nyears: [2020]\n")
    with Sandbox(World(seed=0), state_dir=tmp_path / "sandbox", cdn=profiles) as box:
        subreddits = ["sandboxcats", "sandboxroses"]
        result = bench.run(box, batch, 2, tmp_path / "run", subreddits, processes=1, timeout=600)
        gate = Counter(box.cdn.answers)

    # every task ran once (luigid's history), and both parts downloaded
    assert result["tasks"] > 10 and result["download_shards"] >= 2
    assert result["ran_twice"] == {}
    for stem in ("sandboxcats_2020", "sandboxroses_2020"):
        assert (tmp_path / "run" / "data" / "annotations" / f"{stem}.json").exists()

    # the CDN saw two clients, and each kept (nearly) within its own per-IP capacity on every host
    clients = {ip for _, ip, _ in gate}
    assert clients == {"127.0.0.2", "127.0.0.3"}, gate
    for ip in clients:
        for pattern in CAPACITY:
            passed, refused = gate[(pattern, ip, "passed")], gate[(pattern, ip, 429)]
            assert passed > 0, (pattern, ip, gate)
            assert refused <= max(3, 0.05 * (passed + refused)), (pattern, ip, passed, refused)
    assert result["share_429"] <= 0.03, result
    # both shards downloading at once delivered more than one alone: each IP adds its capacity
    rates = result["images_per_s_by_shards_running"]
    assert 2 in rates and rates[2] > 1.3 * rates.get(1, 0), rates
