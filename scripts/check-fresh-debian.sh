#!/bin/bash
# check-fresh-debian.sh: runs the README's commands on a fresh Debian 12
# userland, as a new user's machine would have it: a minimal bookworm made
# by debootstrap in DIR (reused when it is already there), a clean clone of
# this repository's HEAD in it, then COMMAND (default `make test`) in a
# chroot with a plain environment. Needs root and debootstrap; the mirror is
# the one this machine's apt uses. Prints the command's output and exits
# with its status.
#
# usage: sudo scripts/check-fresh-debian.sh DIR [COMMAND]
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
ROOT=$(cd "$1" 2>/dev/null && pwd || echo "$1")
CMD=${2:-make test}
REPO=$(cd "$(dirname "$0")/.." && pwd)

mirror() { # the first Debian URI of this machine's apt sources
    cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' |
        grep -m1 debian
}

if [ ! -x "$ROOT/bin/bash" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
    debootstrap --variant=minbase bookworm "$ROOT" "$(mirror)"
fi
# A network behind a TLS-inspecting proxy: its CAs, as this machine trusts them.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" sh -c 'command -v update-ca-certificates >/dev/null && update-ca-certificates >/dev/null || true'
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cleanup() { umount -R "$ROOT/dev" "$ROOT/sys" "$ROOT/proc" 2>/dev/null || true; }
trap cleanup EXIT
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/sys" || mount --rbind /sys "$ROOT/sys"
mountpoint -q "$ROOT/dev" || mount --rbind /dev "$ROOT/dev"

rm -rf "$ROOT/root/imgsearch"
git clone -q "$REPO" "$ROOT/root/imgsearch"
echo "check-fresh-debian: $(git -C "$ROOT/root/imgsearch" log --oneline -1) in $ROOT: $CMD"
# make is the one thing the README asks a user to install by hand.
chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI=true \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    /bin/bash -c "cd /root/imgsearch && { command -v make >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make; }; } &&
        $CMD"
