#!/bin/bash
# fetch-model.sh: makes sure the extractor's weight file exists. Downloads the
# pinned nsfwjs npm tarball into the cache (never into git), checks it against
# the recorded sha512, extracts the MobileNetV2-1.4 graph model and converts it
# with scripts/convert-model.js. A fast no-op when the output already verifies.
#
# usage: scripts/fetch-model.sh            ensure the weight file
#        scripts/fetch-model.sh --source   ensure the verified TF.js model is
#                                          extracted in the cache; print its dir
# env: IMGSEARCH_MODEL  output path (default models/mnv2_140.bin)
#      IMGSEARCH_CACHE  cache dir (default .cache in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=nsfwjs@4.3.0
TARBALL=nsfwjs-4.3.0.tgz
# dist.integrity as `npm view nsfwjs@4.3.0 dist.integrity` reports it.
INTEGRITY='sha512-WTKDte0vp1X97N1h34P79G/hG+sVT3+TnDz9di1WseIJR93v11E4viNX7Vg9WsO6HYoR772Nzq2iM8jo3XBZ+g=='
MODEL_SUBDIR=package/dist/models/mobilenet_v2_mid
# What a good conversion looks like (it is deterministic): its sha256.
MODEL_SHA256=eafc6ff8e91f21f2ad77c23f7ca0d9e0936ccc38371c59708d50364965e054b7

OUT=${IMGSEARCH_MODEL:-models/mnv2_140.bin}
CACHE=${IMGSEARCH_CACHE:-.cache}
WORK=$CACHE/nsfwjs-4.3.0

model_ok() {
    [ -f "$1" ] && [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$MODEL_SHA256" ]
}

integrity_of() {
    echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
}

# Downloads (if needed) and verifies the tarball, then extracts the model.
fetch_source() {
    mkdir -p "$WORK"
    if [ ! -f "$WORK/$TARBALL" ] || [ "$(integrity_of "$WORK/$TARBALL")" != "$INTEGRITY" ]; then
        echo "fetch-model: downloading $PKG" >&2
        rm -f "$WORK/$TARBALL"
        (cd "$WORK" && npm pack --silent "$PKG" >/dev/null)
    fi
    local got
    got=$(integrity_of "$WORK/$TARBALL")
    if [ "$got" != "$INTEGRITY" ]; then
        echo "fetch-model: $TARBALL integrity mismatch: got $got" >&2
        rm -f "$WORK/$TARBALL"
        exit 1
    fi
    rm -rf "$WORK/package"
    tar -xzf "$WORK/$TARBALL" -C "$WORK" "$MODEL_SUBDIR" package/LICENSE
}

if [ "${1:-}" = "--source" ]; then
    fetch_source
    echo "$WORK/$MODEL_SUBDIR"
    exit 0
fi

if model_ok "$OUT"; then
    exit 0
fi
fetch_source
node scripts/convert-model.js "$WORK/$MODEL_SUBDIR" "$OUT"
if ! model_ok "$OUT"; then
    echo "fetch-model: $OUT does not verify after conversion" >&2
    exit 1
fi
echo "fetch-model: $OUT ready"
