#!/bin/bash
# The whole suite: build (release + ASan/UBSan), fetch the model, run every
# unit-test binary in both builds, the end-to-end tests against the release
# binary and again against the ASan binary, and short fuzz runs. The storage
# unit tests run a second time on PostgreSQL, and so do the core API
# end-to-end tests (release), on a throwaway cluster started here and
# stopped on exit; the release pass's test_cluster.py uses that cluster too.
# Ends with one "N passed, N failed" line that adds
# everything up.
set -u
cd "$(dirname "$0")/.."
export LC_ALL=C.UTF-8
JOBS=${JOBS:-2}
PY=/usr/bin/python3
passed=0 failed=0
log_dir=build/test-logs
mkdir -p "$log_dir"

fail_build() { echo "build failed: $1"; echo "0 passed, 1 failed"; exit 1; }

make -j"$JOBS" all >"$log_dir/build.log" 2>&1 || { tail -40 "$log_dir/build.log"; fail_build release; }
make -j"$JOBS" asan >"$log_dir/build-asan.log" 2>&1 || { tail -40 "$log_dir/build-asan.log"; fail_build asan; }
scripts/fetch-model.sh >"$log_dir/model.log" 2>&1 || { tail -20 "$log_dir/model.log"; fail_build model; }
# Reference embeddings from the original TF.js model, for test_extract.
scripts/make-golden.sh >"$log_dir/golden.log" 2>&1 || { tail -20 "$log_dir/golden.log"; fail_build golden; }

# Adds the "N passed, N failed" line of one test's output to the totals.
count() {
    local line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then
        failed=$((failed + 1)); echo "  no result line in $1"; return
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1

# The PostgreSQL cluster for the second passes (tests/pg_cluster.sh): in a
# dir the postgres user can reach, stopped and removed however this ends.
pg_parent=$(mktemp -d /tmp/imgsearch-pg-XXXXXX)
chmod 755 "$pg_parent"
stop_pg() { tests/pg_cluster.sh stop "$pg_parent/c" >/dev/null 2>&1; rm -rf "$pg_parent"; }
trap stop_pg EXIT
if PG_DSN=$(tests/pg_cluster.sh start "$pg_parent/c" 2>"$log_dir/pg-cluster.log"); then
    echo "postgres: $PG_DSN"
else
    echo "FAILED: could not start the PostgreSQL test cluster"; tail -20 "$log_dir/pg-cluster.log"
    failed=$((failed + 1)); PG_DSN=""
fi
# The unit tests that open a database (tests/storage/testdb.h) run on both.
pg_units=$(grep -l 'tests/storage/testdb.h' tests/storage/test_*.c | xargs -n1 basename | sed 's/\.c$//')

run_unit() { # binary log-suffix
    local t=$1 out rc
    out="$log_dir/$(echo "$t" | tr / _)$2.log"
    timeout 600 "$t" >"$out" 2>&1
    rc=$?
    count "$out"
    if [ $rc -ne 0 ]; then
        echo "FAILED: $t$2 (exit $rc)"; grep -E 'FAIL|not ok|ERROR|runtime error' "$out" | head -20
        grep -qE '^[0-9]+ passed, [1-9]' "$out" || failed=$((failed + 1))
    else
        echo "ok: $t$2 ($(tail -n 1 "$out"))"
    fi
}

for build in release asan; do
    for t in $(find "build/$build/tests" -type f -name 'test_*' -perm -u+x | sort); do
        run_unit "$t" ""
        if [ -n "$PG_DSN" ] && echo "$pg_units" | grep -qx "$(basename "$t")"; then
            IMGSEARCH_TEST_PG_DSN="$PG_DSN" run_unit "$t" " (postgres)"
        fi
    done
done

# End-to-end: pytest drives the real binary; the summary line is re-counted
# from the junit report so one total covers C and Python alike.
run_pytest() { # name binary pytest-args (files, -m ...)...
    local name=$1 bin=$2; shift 2
    local xml="$log_dir/e2e-$name.xml"
    IMGSEARCHD="$bin" timeout 1500 $PY -m pytest -q -p no:cacheprovider --junitxml="$xml" \
        "$@" >"$log_dir/e2e-$name.log" 2>&1
    local rc=$?
    tail -n 15 "$log_dir/e2e-$name.log"
    if [ -f "$xml" ]; then
        local res
        res=$($PY - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f)
PYEOF
)
        passed=$((passed + ${res% *})); failed=$((failed + ${res#* }))
        if [ "$rc" -ne 0 ] && [ "${res#* }" = 0 ]; then failed=$((failed + 1)); fi
    else
        failed=$((failed + 1))
    fi
}
# test_cluster.py puts three nodes on the cluster above (a database of its own).
IMGSEARCH_TEST_PG_DSN="$PG_DSN" run_pytest release bin/imgsearchd tests/e2e
run_pytest asan bin/imgsearchd-asan tests/e2e -m "not slow"
# The core API on PostgreSQL: a database per server on the cluster above.
if [ -n "$PG_DSN" ]; then
    IMGSEARCH_TEST_BACKEND=postgres IMGSEARCH_TEST_PG_DSN="$PG_DSN" \
        run_pytest postgres bin/imgsearchd tests/e2e/test_v2_data.py tests/e2e/test_v1_images.py \
        tests/e2e/test_instances.py tests/e2e/test_imports.py tests/e2e/test_snapshot_replay.py \
        tests/e2e/test_filter_ann.py tests/e2e/test_durability.py tests/e2e/test_regions.py \
        tests/e2e/test_compact_ann.py
fi

if [ -x scripts/fuzz.sh ]; then
    scripts/fuzz.sh "${FUZZ_SECONDS:-10}" >"$log_dir/fuzz.log" 2>&1
    tail -n 5 "$log_dir/fuzz.log"
    count "$log_dir/fuzz.log"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
