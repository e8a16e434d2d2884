#!/bin/sh
# Installs every Debian package imgsearch needs to build, run and test.
# Idempotent: when everything is present it only checks and returns.
set -eu

PKGS="make gcc g++ pkg-config git ca-certificates curl openssl
libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3 libpq-dev libcurl4-openssl-dev libssl-dev
libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev libwebp-dev
libfaiss-dev libopenblas-dev liblapack-dev libinih-dev
clang libclang-rt-14-dev libomp-14-dev
python3 python3-pil python3-numpy python3-pytest
chromium
postgresql-15 postgresql-client-15"

# libpq-dev builds the PostgreSQL back end ([storage] backend = postgres);
# postgresql-15 (initdb, pg_ctl) and its client (psql) are for the tests
# only, which start a throwaway cluster of their own (tests/pg_cluster.sh).

# Node.js and npm fetch the model weights and run the S3 test server; many
# machines already have a newer Node than Debian's, so only add it when absent.
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
[ -n "${IMGSEARCH_EXTRA_PKGS:-}" ] && PKGS="$PKGS $IMGSEARCH_EXTRA_PKGS"

missing=""
for p in $PKGS; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *"ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
