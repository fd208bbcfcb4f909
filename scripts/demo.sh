#!/usr/bin/env bash
# The offline demo: start the sandbox (fake Reddit/Imgur/Flickr hosts behind an HTTPS proxy),
# point the standard proxy variables at it, and run the real pipeline against it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DEMO_DATA:-$PWD/demo-data}"
STATE="$DATA/sandbox"
mkdir -p "$STATE"

python -m redcaps.sandbox serve --state-dir "$STATE" > "$STATE/sandbox.log" 2>&1 &
SANDBOX_PID=$!
trap 'kill $SANDBOX_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$STATE/env.sh" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$STATE/env.sh"   # HTTPS_PROXY, HTTP_PROXY, REQUESTS_CA_BUNDLE, SSL_CERT_FILE
ZIP_URL=$(python -c 'from redcaps.sandbox.downloads import ANNOTATIONS_ZIP_URL as u; print(u)')
ZIP_SHA=$(python -c 'from redcaps.sandbox.world import World; print(World().annotations_zip_sha256())')

echo "== RedCapsOfficial over the sandbox's annotation zip ($ZIP_URL)"
luigi --module pipeline RedCapsOfficial --annotations-zip "$ZIP_URL" --sha256 "$ZIP_SHA" \
    --redcaps-data-dir "$DATA" --local-scheduler --log-level WARNING

echo
redcaps summary --data-dir "$DATA"
echo "tar shards:"; ls -1 "$DATA"/tarfiles/*.tar
