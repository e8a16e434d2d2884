#!/bin/bash
# make-golden.sh: writes the golden vectors tests/index/test_extract.c compares
# against. Deterministic float32 inputs (tests/golden/make_inputs.py) go
# through the ORIGINAL TF.js model (tests/golden/reference.js, tfjs 4.22.0 from
# npm, installed into the cache, never into the repo). Idempotent: a no-op
# when the stamp matches and every file is there.
#
# env: IMGSEARCH_GOLDEN_DIR  output dir (default $IMGSEARCH_CACHE/golden)
#      IMGSEARCH_CACHE       cache dir (default .cache in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${IMGSEARCH_CACHE:-.cache}
OUT=${IMGSEARCH_GOLDEN_DIR:-$CACHE/golden}
TFJS_VERSION=4.22.0
TFJS=$CACHE/tfjs-$TFJS_VERSION
N=4
STAMP="golden v1 nsfwjs-4.3.0 tfjs-$TFJS_VERSION inputs-v1 n=$N"

complete() {
    [ "$(cat "$OUT/STAMP" 2>/dev/null)" = "$STAMP" ] || return 1
    for i in $(seq 0 $((N - 1))); do
        [ -s "$OUT/input_$i.f32" ] && [ -s "$OUT/embed_$i.f32" ] || return 1
    done
}

if complete; then
    exit 0
fi

model_dir=$(scripts/fetch-model.sh --source)
if [ ! -f "$TFJS/.installed-$TFJS_VERSION" ]; then
    echo "make-golden: installing tfjs $TFJS_VERSION into $TFJS"
    mkdir -p "$TFJS"
    npm install --prefix "$TFJS" --no-audit --no-fund --no-save --silent \
        "@tensorflow/tfjs-core@$TFJS_VERSION" "@tensorflow/tfjs-converter@$TFJS_VERSION" \
        "@tensorflow/tfjs-backend-cpu@$TFJS_VERSION"
    touch "$TFJS/.installed-$TFJS_VERSION"
fi

mkdir -p "$OUT"
rm -f "$OUT/STAMP"
/usr/bin/python3 tests/golden/make_inputs.py "$OUT"
inputs=()
for i in $(seq 0 $((N - 1))); do inputs+=("$OUT/input_$i.f32"); done
node tests/golden/reference.js "$(realpath "$TFJS")/node_modules" "$model_dir" "$OUT" "${inputs[@]}"
echo "$STAMP" >"$OUT/STAMP"
echo "make-golden: $OUT ready"
