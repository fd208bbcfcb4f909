#!/usr/bin/env bash
# The offline demo: start the sandbox (fake Reddit/Imgur/Flickr/Dropbox hosts behind an HTTPS
# proxy), point the standard proxy variables at it, and run the real pipeline against it.
# DEMO_SCHEDULER=luigid runs it through a luigid on 127.0.0.1:8082 with two workers.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DEMO_DATA:-$PWD/demo-data}"
STATE="$DATA/sandbox"
mkdir -p "$STATE"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

python -m redcaps.sandbox serve --state-dir "$STATE" > "$STATE/sandbox.log" 2>&1 &
PIDS+=($!)
rm -f "$STATE/env.sh"
for _ in $(seq 100); do [ -s "$STATE/env.sh" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$STATE/env.sh"   # HTTPS_PROXY, HTTP_PROXY, REQUESTS_CA_BUNDLE, SSL_CERT_FILE
ZIP_URL=$(python -c 'from redcaps.sandbox.downloads import ANNOTATIONS_ZIP_URL as u; print(u)')
ZIP_SHA=$(python -c 'from redcaps.sandbox.world import World; print(World().annotations_zip_sha256())')

SCHEDULER=(--local-scheduler)
if [ "${DEMO_SCHEDULER:-local}" = luigid ]; then
    mkdir -p "$DATA/luigid" datasets/luigid
    luigid --address 127.0.0.1 --port 8082 --state-path "$DATA/luigid/state.pickle" \
        --logdir "$DATA/luigid" > "$DATA/luigid/luigid.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do python -c 'import socket; socket.create_connection(("127.0.0.1", 8082), 1)' \
        2>/dev/null && break; sleep 0.2; done
    echo "luigid web UI: http://127.0.0.1:8082/static/visualiser/index.html"
    SCHEDULER=(--scheduler-host 127.0.0.1 --scheduler-port 8082 --workers 2)
fi

echo "== RedCapsOfficial over the sandbox's annotation zip ($ZIP_URL)"
# The sandbox has one deliberately stalled URL: a 3 s read timeout keeps the demo short.
luigi --module pipeline RedCapsOfficial --annotations-zip "$ZIP_URL" --sha256 "$ZIP_SHA" \
    --redcaps-data-dir "$DATA" --downloads-read-timeout 3 --downloads-max-attempts 3 \
    "${SCHEDULER[@]}" --log-level WARNING

echo
redcaps summary --data-dir "$DATA"
echo "tar shards:"
ls -1 "$DATA"/tarfiles/*.tar
