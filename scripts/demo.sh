#!/usr/bin/env bash
# The offline demo: start the sandbox (simulated Arctic Shift, Reddit, Imgur and image hosts
# behind an HTTPS proxy), point the standard proxy variables at it, and run the real pipeline:
# RedCapsYear for one subreddit-year, then a two-subreddit batch (configs/demo.yaml), each ending
# with its summary; then the HTML report of the whole data directory and its path.
# DEMO_SCHEDULER=luigid runs both through a luigid on 127.0.0.1:8082 with two workers, and on a
# terminal keeps luigid (and its web UI) up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="$PWD/demo-data"
STATE="$DATA/sandbox"
mkdir -p "$STATE" "$DATA/luigid"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# a web that has decayed like the real one: some originals gone (most previews alive), Flickr's farm
# hosts retired, a few images opted out of AI use and a few posts deleted after archiving
python -m redcaps.sandbox serve --state-dir "$STATE" --decay 0.2 --flickr-farms-gone --opt-outs 0.02 \
    --deletions 0.02 > "$STATE/sandbox.log" 2>&1 &
PIDS+=($!)
rm -f "$STATE/env.sh"
for _ in $(seq 100); do [ -s "$STATE/env.sh" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$STATE/env.sh"   # HTTPS_PROXY, HTTP_PROXY, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, NO_PROXY
export LUIGI_CONFIG_PATH="$PWD/scripts/demo.cfg"   # read after ./luigi.cfg

SCHEDULER=(--local-scheduler)
if [ "${DEMO_SCHEDULER:-local}" = luigid ]; then
    luigid --address 127.0.0.1 --port 8082 --logdir "$DATA/luigid" > "$DATA/luigid/luigid.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do python -c 'import socket; socket.create_connection(("127.0.0.1", 8082), 1)' \
        2>/dev/null && break; sleep 0.2; done
    echo "luigid web UI: http://127.0.0.1:8082/static/visualiser/index.html"
    SCHEDULER=(--scheduler-host 127.0.0.1 --scheduler-port 8082 --workers 2)
fi
run() { luigi --module pipeline "$@" --redcaps-data-dir "$DATA" "${SCHEDULER[@]}"; }

echo "== RedCapsYear: r/sandboxcats, 2020"
run RedCapsYear --subreddit sandboxcats --year 2020
echo "== RedCapsBatch: configs/demo.yaml (sandboxcats is already done, sandboxroses is new)"
run RedCapsBatch --config configs/demo.yaml

echo
echo "final annotation files (redcaps validate):"
for file in "$DATA"/annotations/*_????.json; do redcaps validate -a "$file"; done
echo "tar shards:"
ls -1 "$DATA"/tarfiles/*.tar
echo "HTML report (open it in a browser; it needs no server or network):"
redcaps report --data-dir "$DATA"
if [ "${DEMO_SCHEDULER:-local}" = luigid ]; then
    if [ -t 0 ]; then
        echo "luigid keeps the runs' task history: http://127.0.0.1:8082/static/visualiser/index.html"
        echo "(Ctrl-C stops luigid and the sandbox)"
        wait "${PIDS[1]}"
    else
        echo "luigid stops now (not a terminal); rerun on a terminal to keep its web UI open"
    fi
fi
