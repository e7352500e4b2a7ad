#!/usr/bin/env bash
# The Raspberry Pi check: cross-build static pykv binaries for aarch64 and armv7 with Debian's
# Rust (through install.sh --target), check that `file` calls them static ARM executables, run
# each under qemu-user on 127.0.0.1 and do a round trip with curl: create a project, PUT a value,
# GET it, SIGTERM, start again on the same data directory, GET the same bytes.
#
# Debian's rustc-web, cargo-web and every architecture's libstd-rust-web-dev must be one and the
# same version (libstd-rust-web-dev is Multi-Arch: same, and rustc-web depends on its exact
# version). The script takes the newest version that apt offers for all of them at once and
# installs exactly that one (downgrading if need be): when a mirror serves a broken index for one
# architecture (bookworm-security's armhf, say), that is bookworm's own (1.85) for every target.
# The crate builds with Rust 1.85 and later.
#
# Not part of `cargo test`: it installs Debian packages (root, network to Debian's archive and
# crates.io), so CI runs it only when PYKV_ARM=1.
#   PYKV_ARM_TARGETS       which targets, default "aarch64 armv7"
#   PYKV_ARM_TARGET_DIR    cargo's target dir for these builds, default target/arm (kept between
#                          runs like target/ itself; apart from the main one, which rustup's
#                          toolchain owns)
#   PYKV_ARM_RUST_VERSION  take only this Debian Rust version, or versions starting with it
#                          (e.g. 1.85 or 1.85.0+dfsg3-1~deb12u3); default: the newest that fits
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets=${PYKV_ARM_TARGETS:-aarch64 armv7}
target_dir=${PYKV_ARM_TARGET_DIR:-$root/target/arm}
admin=arm-test-admin-token-0123456789

# Every wait is bounded. qemu runs the server some ten times slower than a native CPU, still far
# inside these.
apt_timeout=1200
build_timeout=2400
start_timeout=30
stop_timeout=30
curl_opts=(-sS --max-time 20)

say() { printf 'arm.sh: %s\n' "$*"; }
fail() {
    printf 'arm.sh: FAIL: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root: it installs packages with apt-get"

tmp=$(mktemp -d)
pid= # the one server this script may have running; only it is ever killed
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Packages: Debian's rustc-web and cargo-web with the ARM standard libraries, cross linkers, qemu
# ---------------------------------------------------------------------------------------------
host_arch=$(dpkg --print-architecture)
# apt looks only at the architectures tested, so a broken index of another one cannot stop it.
apt_arch=(-o "APT::Architectures::=$host_arch")
std_arches=("$host_arch") # every architecture whose libstd-rust-web-dev must match rustc-web
tools=(qemu-user-static file curl)
for t in $targets; do
    case "$t" in
    aarch64) tools+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) arch=arm64 ;;
    armv7) tools+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) arch=armhf ;;
    *) fail "unknown target '$t' in PYKV_ARM_TARGETS (use aarch64, armv7)" ;;
    esac
    case " ${std_arches[*]} " in
    *" $arch "*) ;;
    *) std_arches+=("$arch") ;;
    esac
    # Not `dpkg ... | grep -q` under pipefail: grep's early exit would make dpkg's status SIGPIPE.
    if [ "$arch" != "$host_arch" ] && ! grep -qxF -- "$arch" <<<"$(dpkg --print-foreign-architectures)"; then
        say "dpkg --add-architecture $arch"
        dpkg --add-architecture "$arch"
    fi
    apt_arch+=(-o "APT::Architectures::=$arch")
done

updated=no
for try in 1 2 3; do
    say "apt-get update (try $try of 3)"
    if timeout "$apt_timeout" apt-get "${apt_arch[@]}" update; then
        updated=yes
        break
    fi
    [ "$try" -eq 3 ] || sleep 10
done
# Some index could not be fetched (a mirror mid-sync, or one that serves a broken file for one
# architecture): apt keeps the indexes it did fetch. That is safe, since the version taken below
# must be offered for every package at once; a stale index can still name a file that is gone,
# and then the install fails and says so.
[ "$updated" = yes ] ||
    say "apt-get update failed three times (see above): going on with the indexes apt has; only a Rust version that all of them offer will do"

# The toolchain's packages, each with the versions apt can install (not only the candidate).
rust_pkgs=(rustc-web cargo-web)
for a in "${std_arches[@]}"; do rust_pkgs+=("libstd-rust-web-dev:$a"); done
declare -A offered=()
for p in "${rust_pkgs[@]}"; do
    offered[$p]=$(apt-cache "${apt_arch[@]}" madison "$p" |
        awk -F'|' '$3 ~ /Packages[[:space:]]*$/ { gsub(/[[:space:]]/, "", $2); print $2 }' | sort -u)
    say "apt offers $p: $(printf '%s' "${offered[$p]:-nothing}" | tr '\n' ' ')"
done
want=${PYKV_ARM_RUST_VERSION:-}
rust_version=
for v in ${offered[rustc-web]}; do
    if [ -n "$want" ]; then
        case "$v" in
        "$want" | "$want".* | "$want"+* | "$want"-* | "$want"~*) ;;
        *) continue ;;
        esac
    fi
    missing=
    for p in "${rust_pkgs[@]}"; do
        grep -qxF -- "$v" <<<"${offered[$p]}" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "not Debian's Rust $v: apt has no$missing at that version"
        continue
    fi
    if [ -z "$rust_version" ] || dpkg --compare-versions "$v" gt "$rust_version"; then
        rust_version=$v
    fi
done
[ -n "$rust_version" ] ||
    fail "no version${want:+ matching PYKV_ARM_RUST_VERSION=$want} is offered for all of ${rust_pkgs[*]} (see above); to test one target alone: PYKV_ARM_TARGETS=aarch64"
say "Debian's Rust $rust_version for ${std_arches[*]}"

packages=()
for p in "${rust_pkgs[@]}"; do packages+=("$p=$rust_version"); done
packages+=("${tools[@]}")
say "apt-get install ${packages[*]}"
DEBIAN_FRONTEND=noninteractive timeout "$apt_timeout" \
    apt-get "${apt_arch[@]}" install -y --no-install-recommends --allow-downgrades "${packages[@]}" ||
    fail "apt-get install failed (see above)"
for p in "${rust_pkgs[@]}"; do
    got=$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null) || got=none
    [ "$got" = "$rust_version" ] || fail "$p is at $got after the install, not $rust_version"
done

cargo=/usr/bin/cargo
rustc=/usr/bin/rustc
say "Debian's toolchain: $("$rustc" --version), $("$cargo" --version)"
case "$("$rustc" --version)" in
"rustc ${rust_version%%[+~-]*} "*) ;;
*) fail "$rustc is $("$rustc" --version), not Debian's $rust_version" ;;
esac

# ---------------------------------------------------------------------------------------------
# One server under qemu
# ---------------------------------------------------------------------------------------------
addr=

# start QEMU BIN CONFIG LOG: sets pid and addr once the server logs its address.
start() {
    local qemu=$1 bin=$2 config=$3 log=$4
    "$qemu" "$bin" --config "$config" </dev/null >/dev/null 2>"$log" &
    pid=$!
    addr=
    local waited=0
    while [ -z "$addr" ]; do
        addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" | head -1)
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || fail "the server exited before listening; its log:
$(cat "$log")"
        [ "$waited" -lt $((start_timeout * 10)) ] || fail "no 'listening on' within ${start_timeout}s; log:
$(cat "$log")"
        sleep 0.1
        waited=$((waited + 1))
    done
    case "$addr" in
    127.0.0.1:[0-9]*) ;;
    *) fail "listening on '$addr', not on 127.0.0.1" ;;
    esac
}

# stop LOG: SIGTERM our server and insist on a clean exit 0 in time.
stop() {
    local log=$1 waited=0 status=0
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        [ "$waited" -lt $((stop_timeout * 10)) ] || fail "still running ${stop_timeout}s after SIGTERM"
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" || status=$?
    pid=
    [ "$status" -eq 0 ] || fail "exit status $status after SIGTERM; log:
$(cat "$log")"
}

# request EXPECTED_STATUS OUT_FILE CURL_ARGS...: one request whose status must be exactly this.
request() {
    local want=$1 out=$2 got
    shift 2
    got=$(curl "${curl_opts[@]}" -o "$out" -w '%{http_code}' "$@") || fail "curl $* failed"
    [ "$got" = "$want" ] || fail "curl $*: status $got, expected $want; body: $(cat "$out")"
}

round_trip() {
    local t=$1 qemu=$2 bin=$3
    local dir=$tmp/$t
    mkdir -p "$dir"
    printf '{"listen": "127.0.0.1:0", "data_dir": "%s", "persistence": "sync", "admin_token": "%s"}\n' \
        "$dir/data" "$admin" >"$dir/config.json"
    # Bytes a text-only path would mangle: a NUL, a 0xff and a trailing newline.
    printf 'hello from %s\n\000\001\377 end\n' "$t" >"$dir/value"

    start "$qemu" "$bin" "$dir/config.json" "$dir/log1"
    local url=http://$addr
    request 201 "$dir/project.json" -X POST -H "Authorization: Bearer $admin" \
        --data-binary '{"name":"pi"}' "$url/v1/projects"
    # The first secret is the write token (as in the README's quick start).
    local token
    token=$(grep -o '"secret":"pykv_[0-9a-f]*"' "$dir/project.json" | head -1 | cut -d'"' -f4)
    [ -n "$token" ] || fail "no token in $(cat "$dir/project.json")"
    request 201 "$dir/put.json" -X PUT -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/octet-stream' --data-binary "@$dir/value" \
        "$url/v1/kv/pi/sensors/kitchen"
    request 200 "$dir/got1" -H "Authorization: Bearer $token" "$url/v1/kv/pi/sensors/kitchen"
    cmp "$dir/value" "$dir/got1" || fail "$t: GET returned other bytes than were PUT"
    stop "$dir/log1"
    [ -f "$dir/data/pi.json" ] || fail "$t: no snapshot $dir/data/pi.json after SIGTERM"

    start "$qemu" "$bin" "$dir/config.json" "$dir/log2"
    url=http://$addr
    request 200 "$dir/got2" -H "Authorization: Bearer $token" "$url/v1/kv/pi/sensors/kitchen"
    cmp "$dir/value" "$dir/got2" || fail "$t: GET after restart returned other bytes"
    stop "$dir/log2"
    say "$t: round trip under $qemu OK: project created, $(wc -c <"$dir/value") bytes PUT, the same bytes read back before and after a SIGTERM restart"
}

# ---------------------------------------------------------------------------------------------
# Build, inspect, run
# ---------------------------------------------------------------------------------------------
for t in $targets; do
    case "$t" in
    aarch64) triple=aarch64-unknown-linux-gnu qemu=qemu-aarch64-static elf='ELF 64-bit LSB' machine='ARM aarch64' ;;
    armv7) triple=armv7-unknown-linux-gnueabihf qemu=qemu-arm-static elf='ELF 32-bit LSB' machine='ARM, EABI5' ;;
    esac
    say "$t: building with install.sh --target $t (CARGO_TARGET_DIR=$target_dir)"
    CARGO=$cargo RUSTC=$rustc CARGO_TARGET_DIR=$target_dir \
        timeout "$build_timeout" bash "$root/install.sh" --target "$t" ||
        fail "$t: install.sh --target $t failed"
    bin=$target_dir/$triple/release/pykv
    desc=$(file -b "$bin")
    case "$desc" in
    *"$elf"*"$machine"*) ;;
    *) fail "$t: $bin is not an $elf $machine executable: $desc" ;;
    esac
    case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) fail "$t: $bin is not statically linked: $desc" ;;
    esac
    say "$t: $bin: $(stat -c %s "$bin") bytes: $desc"
    round_trip "$t" "$qemu" "$bin"
done
say "all passed: $targets"
