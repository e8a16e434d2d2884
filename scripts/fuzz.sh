#!/bin/bash
# fuzz.sh SECONDS: builds every tests/fuzz/fuzz_*.c as a libFuzzer target
# (clang, ASan + UBSan) and runs each for SECONDS against a scratch copy of
# its seed corpus tests/fuzz/corpus/<target>/, so the committed corpus never
# grows during suite runs. Crash inputs land in build/fuzz/crashes/<target>/.
# Ends with "N passed, N failed": one per target, failed if it crashed (or
# did not build).
#
# New targets need nothing here: add tests/fuzz/fuzz_NAME.c defining
# LLVMFuzzerTestOneInput, and optionally tests/fuzz/corpus/fuzz_NAME/.
# The library is every config/ server/ storage/ index/ source except
# server/main.c, compiled once into build/fuzz/libimgsearch-fuzz.a (objects are
# rebuilt when their source or any header changes).
#
# Environment: FUZZ_JOBS (parallel compiles, default 2), FUZZ_ARGS (extra
# libFuzzer flags), FUZZ_TARGETS (names to run, default all).
set -u
cd "$(dirname "$0")/.."
export LC_ALL=C

secs=${1:-60}
jobs=${FUZZ_JOBS:-2}
out=build/fuzz
CC=${FUZZ_CC:-clang}
CXX=${FUZZ_CXX:-clang++}
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# clang 14 names a target_clones function's ifunc "f.ifunc", which callers
# in other files (declared without the attribute) do not find: fuzz builds
# drop the cloning (index/kernels_*.c), speed there does not matter.
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $SAN -I. -I/usr/include/jansson \
-I/usr/include/postgresql \
-Dtarget_clones(...)=unused"
CXXFLAGS="-std=c++17 -g -O1 -fno-omit-frame-pointer $SAN -fopenmp -I. -I/usr/include/jansson"
LIBS="-lmicrohttpd -ljansson -lsqlite3 -lpq -lcurl -lssl -lcrypto -lturbojpeg -ljpeg -lpng -lwebp \
-linih -lfaiss -lopenblas -llapack -fopenmp -lstdc++ -lm -lpthread"

mkdir -p "$out/obj" "$out/bin" "$out/logs"
passed=0 failed=0

# ---- library archive -------------------------------------------------------
newest_header=$(find config server storage index -name '*.h' -printf '%T@\n' 2>/dev/null |
    sort -n | tail -n 1)
build_obj() { # src obj
    local src=$1 obj=$2 stamp
    if [ -f "$obj" ]; then
        stamp=$(stat -c %Y "$obj")
        if [ ! "$src" -nt "$obj" ] && [ "${newest_header%.*}" -le "$stamp" ]; then
            return 0
        fi
    fi
    mkdir -p "$(dirname "$obj")"
    case "$src" in
    *.cpp) $CXX $CXXFLAGS -c -o "$obj" "$src" ;;
    *) $CC $CFLAGS -c -o "$obj" "$src" ;;
    esac
}
export -f build_obj
export CC CXX CFLAGS CXXFLAGS newest_header

srcs=$(ls config/*.c server/*.c storage/*.c index/*.c index/*.cpp 2>/dev/null | grep -v '^server/main\.c$')
# A source that does not compile (someone mid-edit) is left out of the
# archive with a warning; targets that need it then fail to link.
objs=""
for s in $srcs; do
    echo "$s $out/obj/${s%.*}.o"
done | xargs -P "$jobs" -n 2 bash -c 'build_obj "$0" "$1" >"'"$out"'/logs/$(echo "$0" | tr / _).log" 2>&1 ||
    { echo "fuzz.sh: warning: $0 does not compile (left out)"; rm -f "$1"; }'
for s in $srcs; do
    o="$out/obj/${s%.*}.o"
    [ -f "$o" ] && objs="$objs $o"
done
rm -f "$out/libimgsearch-fuzz.a"
ar rcs "$out/libimgsearch-fuzz.a" $objs

# ---- targets ---------------------------------------------------------------
targets=${FUZZ_TARGETS:-$(ls tests/fuzz/fuzz_*.c 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.c$//')}
for t in $targets; do
    bin="$out/bin/$t"
    log="$out/logs/$t.run.log"
    # Linked by the C++ driver: targets that reach the route table pull in
    # index/faiss_c.cpp, whose UBSan vptr checks need the C++ runtime.
    if ! { $CC $CFLAGS -c -o "$out/obj/$t.o" "tests/fuzz/$t.c" &&
        $CXX $CXXFLAGS -o "$bin" "$out/obj/$t.o" "$out/libimgsearch-fuzz.a" $LIBS; } \
        >"$out/logs/$t.build.log" 2>&1; then
        echo "FAILED: $t (build)"
        tail -n 20 "$out/logs/$t.build.log"
        failed=$((failed + 1))
        continue
    fi
    work="$out/corpus/$t"
    rm -rf "$work"
    mkdir -p "$work" "$out/crashes/$t"
    [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$work/"
    # -rss_limit_mb: decoders may legitimately allocate a 4095x4095 image.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=3072 -max_len=1048576 \
        -print_final_stats=1 -artifact_prefix="$out/crashes/$t/" ${FUZZ_ARGS:-} \
        "$work" >"$log" 2>&1
    rc=$?
    runs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$')
    if [ $rc -eq 0 ]; then
        echo "ok: $t (${runs:-?} runs in ${secs}s)"
        passed=$((passed + 1))
    else
        echo "FAILED: $t (exit $rc); log $log, inputs in $out/crashes/$t/"
        grep -aE 'ERROR|SUMMARY|runtime error|deadly signal' "$log" | head -n 10
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
