#!/usr/bin/env bash
# Install pykv: the binary, a config (only when none exists) and a data directory; optionally a
# systemd unit. Re-running is safe: it never overwrites config or data. See `install.sh --help`.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: install.sh [OPTIONS]

Builds pykv in release mode (cargo build --release) and installs it:
  PREFIX/bin/pykv        the binary (mode 0755)
  CONFIG                 /etc/pykv/config.json, or PREFIX/etc/pykv/config.json when PREFIX is not
                         /usr/local or /usr; written only when none exists
  DATA_DIR               /var/lib/pykv, or PREFIX/var/lib/pykv likewise; mode 0700

Options:
  --prefix DIR           install under DIR (default /usr/local); a user install needs no root
  --binary PATH          install this already-built pykv instead of building one
  --static               build a statically linked binary (-C target-feature=+crt-static)
  --target aarch64|armv7 cross-build a static binary for aarch64-unknown-linux-gnu or
                         armv7-unknown-linux-gnueabihf; installs it only when that is this
                         machine's own target, else prints where it is (copy it to the Pi)
  --systemd              also create the system user pykv and install, enable and start the unit
                         /etc/systemd/system/pykv.service (needs root)
  --uninstall            stop and remove the unit (when it runs PREFIX/bin/pykv) and the binary;
                         config, data and the pykv user are kept
  -h, --help             this text

Environment: CARGO and RUSTC name the cargo and rustc to build with (default: from PATH);
CARGO_TARGET_DIR is honoured. Exit status: 0 done, 1 failed, 2 bad usage.
EOF
}

# One line per step on stdout; errors on stderr.
step() { printf '%s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}
usage_error() {
    printf 'install.sh: %s (see install.sh --help)\n' "$*" >&2
    exit 2
}

prefix=/usr/local
binary=
static=no
target=
systemd=no
uninstall=no

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix | --binary | --target)
        if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "option $1 needs a value"; fi
        case "$1" in
        --prefix) prefix=$2 ;;
        --binary) binary=$2 ;;
        --target) target=$2 ;;
        esac
        shift 2
        ;;
    --prefix=* | --binary=* | --target=*)
        value=${1#*=}
        [ -n "$value" ] || usage_error "option ${1%%=*} needs a value"
        case "$1" in
        --prefix=*) prefix=$value ;;
        --binary=*) binary=$value ;;
        --target=*) target=$value ;;
        esac
        shift
        ;;
    --static) static=yes && shift ;;
    --systemd) systemd=yes && shift ;;
    --uninstall) uninstall=yes && shift ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) usage_error "unknown option $1" ;;
    esac
done

case "$target" in
"") triple= ;;
aarch64) triple=aarch64-unknown-linux-gnu linker=aarch64-linux-gnu-gcc linker_pkg=gcc-aarch64-linux-gnu libc_pkg=libc6-dev-arm64-cross deb_arch=arm64 ;;
armv7) triple=armv7-unknown-linux-gnueabihf linker=arm-linux-gnueabihf-gcc linker_pkg=gcc-arm-linux-gnueabihf libc_pkg=libc6-dev-armhf-cross deb_arch=armhf ;;
*) usage_error "unknown target $target: use aarch64 or armv7" ;;
esac
if [ -n "$binary" ] && { [ "$static" = yes ] || [ -n "$target" ]; }; then
    usage_error "--binary installs a ready binary; it cannot be combined with --static or --target"
fi
if [ "$uninstall" = yes ] && { [ -n "$binary" ] || [ "$static" = yes ] || [ -n "$target" ]; }; then
    usage_error "--uninstall takes only --prefix"
fi

# Paths. The config's data_dir must be absolute, so the prefix is made absolute first.
case "$prefix" in
/*) ;;
*) prefix=$PWD/$prefix ;;
esac
while [ "${#prefix}" -gt 1 ] && [ "${prefix%/}" != "$prefix" ]; do prefix=${prefix%/}; done
case "$prefix" in
*[\"\\]* | *$'\n'*) die "the prefix must not contain quotes, backslashes or newlines: $prefix" ;;
esac
if [ "$prefix" = /usr/local ] || [ "$prefix" = /usr ]; then
    config_dir=/etc/pykv
    data_dir=/var/lib/pykv
else
    config_dir=$prefix/etc/pykv
    data_dir=$prefix/var/lib/pykv
fi
bin_dir=$prefix/bin
dest=$bin_dir/pykv
config=$config_dir/config.json
unit=/etc/systemd/system/pykv.service
user=pykv

# The nearest existing ancestor of $1 must be a directory we may write to.
check_writable() {
    local path=$1 dir=$1
    while [ ! -e "$dir" ] && [ ! -L "$dir" ]; do dir=$(dirname "$dir"); done
    if [ ! -d "$dir" ]; then
        die "cannot create $path: $dir is not a directory"
    fi
    if [ ! -w "$dir" ]; then
        die "no permission to write $path ($dir is not writable): run as root (sudo), or install for yourself with --prefix \$HOME/.local"
    fi
}

systemd_running() {
    command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]
}

# ---------------------------------------------------------------------------------------------
# Uninstall
# ---------------------------------------------------------------------------------------------
if [ "$uninstall" = yes ]; then
    [ -e "$dest" ] && check_writable "$bin_dir"
    unit_is_ours=no
    if [ -f "$unit" ] && grep -qxF "ExecStart=$dest --config $config" "$unit"; then
        unit_is_ours=yes
        [ "$(id -u)" -eq 0 ] || die "removing $unit needs root: run with sudo"
    fi
    if [ "$unit_is_ours" = yes ]; then
        if systemd_running; then
            step "stopping and disabling pykv.service"
            systemctl disable --now pykv.service
        else
            step "systemd is not running: not stopping pykv.service"
        fi
        step "removing $unit"
        rm -f "$unit"
        if systemd_running; then
            step "reloading systemd (systemctl daemon-reload)"
            systemctl daemon-reload
        fi
    elif [ -f "$unit" ]; then
        step "keeping $unit: it does not run $dest"
    fi
    if [ -e "$dest" ]; then
        step "removing $dest"
        rm -f "$dest"
    else
        step "$dest is not installed: nothing to remove"
    fi
    step "kept the config $config and the data directory $data_dir (snapshots, admin.token)"
    if id -u "$user" >/dev/null 2>&1 && [ "$unit_is_ours" = yes ]; then
        step "kept the system user $user (remove it with: userdel $user)"
    fi
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Checks before anything changes
# ---------------------------------------------------------------------------------------------
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host_triple=
install_it=yes
if [ -z "$binary" ]; then
    cargo=${CARGO:-cargo}
    rustc=${RUSTC:-rustc}
    command -v "$cargo" >/dev/null 2>&1 ||
        die "cargo not found: install Rust (https://rustup.rs, or apt-get install cargo), or copy a built binary here and use --binary PATH"
    command -v "$rustc" >/dev/null 2>&1 || die "rustc not found (it comes with cargo): install Rust"
    [ -f "$here/Cargo.toml" ] ||
        die "no Cargo.toml beside install.sh ($here): run it from the pykv source tree, or use --binary PATH"
    host_triple=$("$rustc" -vV | sed -n 's/^host: //p')
    [ -n "$host_triple" ] || die "cannot tell the host target from '$rustc -vV'"
    if [ -n "$triple" ] && [ "$triple" != "$host_triple" ]; then
        install_it=no
        command -v "$linker" >/dev/null 2>&1 ||
            die "linker $linker for $triple not found: install it (Debian: apt-get install $linker_pkg $libc_pkg)"
        # A static link needs the target's libc.a; gcc prints the bare name when it has none.
        case "$("$linker" -print-file-name=libc.a)" in
        /*) ;;
        *) die "$linker has no static C library for $triple: install it (Debian: apt-get install $libc_pkg)" ;;
        esac
        std_dir=$("$rustc" --print target-libdir --target "$triple" 2>/dev/null) || std_dir=
        if [ -z "$std_dir" ] || ! compgen -G "$std_dir/libstd-*.rlib" >/dev/null; then
            die "$rustc has no standard library for $triple: rustup target add $triple, or on Debian apt-get install libstd-rust-web-dev:$deb_arch (the same version as rustc-web) and build with CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc"
        fi
    fi
else
    [ -f "$binary" ] || die "--binary $binary: no such file"
fi
if [ "$install_it" = yes ]; then
    check_writable "$bin_dir"
    check_writable "$config_dir"
    check_writable "$data_dir"
    if [ "$systemd" = yes ]; then
        [ "$(id -u)" -eq 0 ] || die "--systemd needs root (it adds a system user and a unit): run with sudo"
        command -v useradd >/dev/null 2>&1 || die "--systemd needs useradd (Debian: apt-get install passwd)"
        case "$prefix/" in
        /home/* | /root/* | /run/user/* | /tmp/* | /var/tmp/*)
            die "--systemd cannot serve from $prefix: the unit hides /home, /root and /tmp from the service (ProtectHome, PrivateTmp); use a prefix such as /usr/local or /opt/pykv"
            ;;
        esac
    fi
fi

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
if [ -z "$binary" ]; then
    cd "$here"
    target_dir=${CARGO_TARGET_DIR:-$here/target}
    case "$target_dir" in
    /*) ;;
    *) target_dir=$here/$target_dir ;;
    esac
    if [ -n "$triple" ] || [ "$static" = yes ]; then
        # With --target, RUSTFLAGS reach only the target's code, not build scripts or
        # proc-macros (which must stay dynamic host binaries).
        build_triple=${triple:-$host_triple}
        rustflags="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
        linker_env=()
        if [ "$build_triple" != "$host_triple" ]; then
            linker_var=CARGO_TARGET_$(printf '%s' "$build_triple" | tr 'a-z-' 'A-Z_')_LINKER
            linker_env=("$linker_var=$linker")
        fi
        step "building a static pykv for $build_triple: ${linker_env[*]:+${linker_env[*]} }RUSTFLAGS=\"$rustflags\" $cargo build --release --bin pykv --target $build_triple"
        env ${linker_env[@]+"${linker_env[@]}"} RUSTFLAGS="$rustflags" "$cargo" build --release --bin pykv --target "$build_triple" ||
            die "cargo build failed (see above)"
        binary=$target_dir/$build_triple/release/pykv
    else
        step "building pykv: $cargo build --release --bin pykv"
        "$cargo" build --release --bin pykv || die "cargo build failed (see above)"
        binary=$target_dir/release/pykv
    fi
    [ -f "$binary" ] || die "the build did not produce $binary"
    if [ "$install_it" = no ]; then
        step "built $binary ($(wc -c <"$binary") bytes) for $triple; not installing it on this $host_triple machine"
        step "next: copy it and install.sh to the Pi and run there: sudo ./install.sh --binary pykv --systemd"
        exit 0
    fi
fi

# The binary must run here, or nothing below makes sense (a wrong-architecture copy, say).
version=$("$binary" --version 2>/dev/null) ||
    die "$binary does not run on this machine (wrong architecture, or not pykv?)"
step "using $binary ($version)"

# ---------------------------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------------------------
make_dir() { # DIR MODE
    if [ ! -d "$1" ]; then
        step "creating $1"
        mkdir -p "$1"
        chmod "$2" "$1"
    fi
}

binary_changed=no
make_dir "$bin_dir" 0755
if [ -f "$dest" ] && cmp -s "$binary" "$dest" && [ "$(stat -c %a "$dest")" = 755 ]; then
    step "$dest is already up to date"
else
    step "installing $dest"
    # A new file renamed over the old one: a running pykv keeps its old copy.
    cp "$binary" "$dest.new.$$"
    chmod 0755 "$dest.new.$$"
    mv -f "$dest.new.$$" "$dest"
    binary_changed=yes
fi

if [ "$systemd" = yes ]; then
    if id -u "$user" >/dev/null 2>&1; then
        step "system user $user already exists"
    else
        step "creating the system user $user"
        useradd --system --no-create-home --home-dir "$data_dir" --shell /usr/sbin/nologin "$user"
    fi
fi

make_dir "$config_dir" 0755
if [ -e "$config" ]; then
    step "keeping the existing config $config"
else
    step "writing $config (listen 127.0.0.1:8080, data_dir $data_dir, persistence sync)"
    tmp=$config.new.$$
    printf '{\n  "listen": "127.0.0.1:8080",\n  "data_dir": "%s",\n  "persistence": "sync"\n}\n' \
        "$data_dir" >"$tmp"
    if [ "$systemd" = yes ]; then
        # Readable by the service, not by everyone: tokens may be added to it later.
        chgrp "$user" "$tmp"
        chmod 0640 "$tmp"
    else
        chmod 0644 "$tmp"
    fi
    mv -f "$tmp" "$config"
fi
check=$("$dest" --check-config "$config" 2>&1) || die "$config is not valid: $check"
step "checked the config: $check"

if [ -d "$data_dir" ]; then
    if [ "$(stat -c %a "$data_dir")" != 700 ]; then
        step "setting $data_dir to mode 0700"
        chmod 0700 "$data_dir"
    else
        step "keeping the existing data directory $data_dir"
    fi
else
    make_dir "$(dirname "$data_dir")" 0755
    step "creating the data directory $data_dir (mode 0700)"
    mkdir -m 0700 "$data_dir"
fi
if [ "$systemd" = yes ] && [ -n "$(find "$data_dir" \( ! -user "$user" -o ! -group "$user" \) -print -quit)" ]; then
    step "giving $data_dir to $user (chown -R $user:$user)"
    chown -R "$user:$user" "$data_dir"
fi

if [ "$systemd" = yes ]; then
    unit_text="[Unit]
Description=Simple PyKV key-value server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
ExecStart=$dest --config $config
Restart=on-failure
RestartSec=2s
KillSignal=SIGTERM
TimeoutStopSec=30s
UMask=0077
LimitNOFILE=8192
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$data_dir
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target"
    unit_changed=no
    if [ -f "$unit" ] && [ "$(cat "$unit")" = "$unit_text" ]; then
        step "$unit is already up to date"
    else
        step "writing $unit"
        printf '%s\n' "$unit_text" >"$unit.new.$$"
        chmod 0644 "$unit.new.$$"
        mv -f "$unit.new.$$" "$unit"
        unit_changed=yes
    fi
    if systemd_running; then
        if [ "$unit_changed" = yes ]; then
            step "reloading systemd (systemctl daemon-reload)"
            systemctl daemon-reload
        fi
        if systemctl is-active --quiet pykv.service && [ "$binary_changed$unit_changed" != nono ]; then
            step "restarting pykv.service (new binary or unit)"
            systemctl restart pykv.service
        fi
        step "enabling and starting pykv.service (systemctl enable --now pykv)"
        systemctl enable --now pykv.service
        step "status: systemctl status pykv; logs: journalctl -u pykv"
    else
        step "systemd is not running here: skipped daemon-reload and enable; later run: systemctl daemon-reload && systemctl enable --now pykv"
    fi
fi

step "done: $dest serves with: $dest --config $config"
step "admin token: $data_dir/admin.token (created on the server's first start, mode 0600), unless the config sets admin_token"
