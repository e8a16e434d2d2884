#!/bin/bash
# fuzz-long.sh TARGET...: the documented long fuzz run. Builds the targets
# through fuzz.sh (1 s smoke run each), then runs every TARGET in parallel at
# nice 19 for FUZZ_LONG_SECONDS (default 1800) on a growing corpus kept in
# build/fuzz-long/<target>/corpus/, restarting after a crash until the time is
# used up (crash inputs land in build/fuzz-long/<target>/crashes/). Afterwards
# the grown corpus is merged (-merge=1, so only inputs adding coverage are
# kept) into the committed seeds tests/fuzz/corpus/<target>/.
#
# One line per target is appended to build/fuzz-long/report.tsv:
#   target seconds execs execs/s cpu_s files_before bytes_before
#   files_grown bytes_grown files_after bytes_after crashes
#
# Environment: FUZZ_LONG_SECONDS, FUZZ_LONG_MAX_LEN (default 65536: keeps
# the decoder's committed corpus small), FUZZ_LONG_NOMERGE=1 skips the merge.
# FUZZ_LONG_BUDGET=cpu makes FUZZ_LONG_SECONDS a budget of CPU seconds per
# target instead of wall seconds: on a shared machine a fuzzer at idle
# priority gets only what the others leave, so the wall clock says little
# about how long it really fuzzed. The fuzzer then runs under SCHED_IDLE
# (chrt --idle), so it never slows the machine's other work, and is stopped
# with SIGINT (libFuzzer prints its final stats) once its CPU time is spent.
set -u
cd "$(dirname "$0")/.."
export LC_ALL=C

secs=${FUZZ_LONG_SECONDS:-1800}
maxlen=${FUZZ_LONG_MAX_LEN:-65536}
out=build/fuzz-long
[ $# -gt 0 ] || { echo "usage: $0 TARGET..." >&2; exit 2; }
mkdir -p "$out"

# Build through fuzz.sh so flags and the library archive stay in one place.
FUZZ_TARGETS="$*" nice -n 19 scripts/fuzz.sh 1 || { echo "fuzz-long: build/smoke failed" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

budget=${FUZZ_LONG_BUDGET:-wall}
tick=$(getconf CLK_TCK)

remaining() { # end cpu_used -> seconds left of the budget
    if [ "$budget" = cpu ]; then echo $((secs - $2)); else echo $(($1 - $(date +%s))); fi
}

# run_cpu_budget DIR RUN SECONDS: one fuzzer run at SCHED_IDLE, interrupted
# once it has used SECONDS of CPU; writes "user system" seconds to DIR/timeRUN.
run_cpu_budget() {
    local dir=$1 i=$2 left=$3 pid used=0 ut st
    # At idle priority a unit can wait seconds for a core: only 60 s makes a
    # "slow unit" worth an artifact (run it alone to see its real time).
    chrt --idle 0 "$dir/bin" -timeout=25 -report_slow_units=60 -rss_limit_mb=2048 -max_len="$maxlen" \
        -print_final_stats=1 -artifact_prefix="$dir/crashes/" "$dir/corpus" \
        >"$dir/run$i.log" 2>&1 &
    pid=$!
    ut=0 st=0
    while kill -0 "$pid" 2>/dev/null; do
        # Fields 14 and 15 of /proc/PID/stat: user and system time in ticks.
        read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo "$ut $st")
        used=$(((ut + st) / tick))
        if [ "$used" -ge "$left" ]; then
            kill -INT "$pid" 2>/dev/null
            break
        fi
        sleep 5
    done
    wait "$pid"
    local rc=$?
    echo "$((ut / tick)) $((st / tick))" >"$dir/time$i"
    return $rc
}

size_of() { # dir -> "files bytes"
    echo "$(find "$1" -type f | wc -l) $(find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
}

run_one() {
    local t=$1 dir=$out/$1 start end left rc execs=0 n cpu=0 u s
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/crashes"
    # A private copy of the binary: fuzz.sh may relink build/fuzz/bin meanwhile.
    cp "build/fuzz/bin/$t" "$dir/bin"
    [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$dir/corpus/"
    read -r fb bb < <(size_of "tests/fuzz/corpus/$t")
    start=$(date +%s)
    end=$((start + secs))
    local i=0
    while left=$(remaining "$end" "$cpu") && [ "$left" -gt 5 ]; do
        i=$((i + 1))
        if [ "$budget" = cpu ]; then
            run_cpu_budget "$dir" "$i" "$left"
            rc=$?
            read -r u s <"$dir/time$i"
        else
            # bash's time keyword: user+system CPU of the fuzzer process.
            { TIMEFORMAT='%U %S'; time nice -n 19 "$dir/bin" -max_total_time="$left" -timeout=25 \
                -rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1 \
                -artifact_prefix="$dir/crashes/" "$dir/corpus" >"$dir/run$i.log" 2>&1; } 2>"$dir/time$i"
            rc=$?
            read -r u s <"$dir/time$i"
        fi
        cpu=$(awk -v a="$cpu" -v b="$u" -v c="$s" 'BEGIN {printf "%.0f", a + b + c}')
        n=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$dir/run$i.log" | tail -n 1 | grep -oE '[0-9]+$')
        execs=$((execs + ${n:-0}))
        [ $rc -eq 0 ] && break
        # 72 is libFuzzer's exit code after SIGINT: the CPU budget was spent.
        [ "$budget" = cpu ] && [ $rc -eq 72 ] && break
        echo "fuzz-long: $t crashed (run $i, exit $rc), see $dir/run$i.log" >&2
        [ "$i" -ge 20 ] && break # a crash on every start: stop, it needs fixing
    done
    local wall=$(($(date +%s) - start))
    read -r fg bg < <(size_of "$dir/corpus")
    if [ "${FUZZ_LONG_NOMERGE:-0}" != 1 ]; then
        mkdir -p "tests/fuzz/corpus/$t"
        nice -n 19 "$dir/bin" -merge=1 -max_len="$maxlen" -rss_limit_mb=2048 -timeout=25 \
            "tests/fuzz/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1 ||
            echo "fuzz-long: $t merge failed, see $dir/merge.log" >&2
    fi
    read -r fa ba < <(size_of "tests/fuzz/corpus/$t")
    local crashes
    # slow-unit-* files are not failures (see run_cpu_budget).
    crashes=$(find "$dir/crashes" -type f ! -name 'slow-unit-*' | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$wall" "$execs" \
        "$((execs / (wall > 0 ? wall : 1)))" "$cpu" "$fb" "$bb" "$fg" "$bg" "$fa" "$ba" "$crashes" |
        tee -a "$out/report.tsv"
}

echo "fuzz-long: $* for ${secs}s ($budget) each, started $(date -u '+%F %T') UTC" | tee -a "$out/runs.log"
for t in "$@"; do
    run_one "$t" &
done
wait
echo "fuzz-long: done $(date -u '+%F %T') UTC" | tee -a "$out/runs.log"
