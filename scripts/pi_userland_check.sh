#!/usr/bin/env bash
# The Raspberry Pi's userland, emulated: Debian bookworm arm64 (what Raspberry Pi OS Bookworm
# 64-bit is built from, Python 3.11) under qemu-user with a Cortex-A72 CPU (a Pi 4).
#
# It installs the kiosk there the way a Pi is set up, `./setup.sh install-service` on setup.sh's
# own Pi path (everything but python3-picamera2/python3-libcamera, which only Raspberry Pi's
# repository has), runs `kiosk classify --json` on tests/data/samples/ as the service user, and
# checks that the verdicts equal this machine's own (x86) ones.
#
#   sudo scripts/pi_userland_check.sh
#
# The root filesystem is built once with mmdebstrap and cached as a tarball (rebuilt when the
# Pi package list in setup.sh changes), as are pip's downloads:
#   ${SKINSCAN_PI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/skinscan/pi-userland}
# Emulated timings say nothing about a real Pi. Needs root, network for pip, and the host
# packages qemu-user-static binfmt-support mmdebstrap zstd (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

SUITE=bookworm
export QEMU_CPU=${QEMU_CPU:-cortex-a72}
CACHE=${SKINSCAN_PI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skinscan/pi-userland}
# Beyond setup.sh's Pi packages: what Raspberry Pi OS has anyway and install-service uses.
BASE_PACKAGES=(python3 ca-certificates passwd systemd)

log() { printf '\033[1m==> [pi-userland] %s\033[0m\n' "$*" >&2; }
die() { printf 'pi_userland_check.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root, chroot, mounts): sudo $0"

host_tools() {
    local missing=() pkg
    for pkg in qemu-user-static binfmt-support mmdebstrap zstd; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    # Containers often lack binfmt_misc; without it the kernel cannot run arm64 binaries.
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
        die "qemu-aarch64 is not registered with binfmt_misc"
}

# The Cortex-A72 /proc/cpuinfo a Pi 4 shows. LiteRT reads it when it creates an interpreter
# and crashes on the x86 one that qemu-user passes through.
write_cpuinfo() {
    local core
    for core in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$core"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
        printf 'CPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
}

build_rootfs() {
    # $1: the tarball to make. Packages baked in so that each run needs no emulated apt.
    local packages
    packages=$(IFS=,; echo "${BASE_PACKAGES[*]},${PI_PACKAGES[*]}")
    log "building the $SUITE arm64 root filesystem (once; a few minutes)"
    local tmp="$1.partial.tar.zst"
    rm -f "$tmp"
    mmdebstrap --mode=root --arch=arm64 --variant=apt --include="$packages" \
        "$SUITE" "$tmp" >&2
    mv "$tmp" "$1"
}

copy_checkout() {
    # $1: destination. The working tree as git sees it (tracked and new files, not ignored
    # ones such as .venv); plain tar when this is not a git checkout.
    mkdir -p "$1"
    if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$REPO" ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
            tar --null -T - -cf - | tar -C "$1" -xf -
    else
        tar --exclude=./.venv --exclude=./.git --exclude=./runs -cf - . | tar -C "$1" -xf -
    fi
}

# What runs inside the emulated Pi, as root, from the copied checkout.
# shellcheck disable=SC2016  # expanded inside the chroot
INSIDE='
set -euo pipefail
cd "$HOME/skinscan"  # where copy_checkout put the checkout (HOME: the chroot root user home)
time_install=$SECONDS
./setup.sh install-service
echo "install-service: $((SECONDS - time_install)) s" >&2
# Idempotent: a second run changes nothing that matters and succeeds.
time_again=$SECONDS
./setup.sh install-service
echo "install-service again: $((SECONDS - time_again)) s" >&2
stat -c "%n %a %U:%G" /etc/skinscan /etc/skinscan/kiosk.toml /var/lib/skinscan >&2
[ "$(stat -c %a:%U:%G /etc/skinscan/kiosk.toml)" = "640:root:skinscan" ]
[ "$(stat -c %a:%U:%G /var/lib/skinscan)" = "750:skinscan:skinscan" ]
# Its own six-digit Settings PIN, not the public four-digit one of the template.
grep -Eq "^admin_pin = \"[0-9]{6}\"$" /etc/skinscan/kiosk.toml
systemctl is-enabled skinscan-kiosk.service >&2
cd /opt/skinscan/src/tests/data/samples
runuser -u skinscan -- env HOME=/var/lib/skinscan /opt/skinscan/venv/bin/kiosk classify --json -- *.jpg
# Uninstall removes the services, the user and the code, and keeps the data.
cd "$HOME/skinscan"  # where copy_checkout put the checkout (HOME: the chroot root user home)
./setup.sh uninstall >&2
# (tests as plain commands: set -e ignores a failing "!" command or "a && b" list)
if id skinscan >/dev/null 2>&1; then echo "user skinscan left behind" >&2; exit 1; fi
test ! -e /opt/skinscan
test ! -e /etc/systemd/system/skinscan-kiosk.service
test -d /var/lib/skinscan
test -f /etc/skinscan/kiosk.toml
echo "uninstall: removed the services, the user and /opt/skinscan; kept the data" >&2
'

run_inside() {
    # $1: the extracted root. A private mount namespace: every mount below disappears with
    # it, even if this script is killed, so the root can never be deleted with /dev inside.
    local root=$1
    # shellcheck disable=SC2016  # the inner script expands its own arguments
    unshare --mount --propagation private -- bash -euc '
        root=$1 cpuinfo=$2 pipcache=$3 script=$4
        mount -t proc proc "$root/proc"
        mount --bind "$cpuinfo" "$root/proc/cpuinfo"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mkdir -p "$root/root/.cache/pip"
        mount --bind "$pipcache" "$root/root/.cache/pip"
        # The host'"'"'s trust store: a network that inspects TLS has added its CA there.
        mount --bind /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
        proxies=()
        for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
            if [ -n "${!var:-}" ]; then proxies+=("$var=${!var}"); fi
        done
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            SKINSCAN_PI_USERLAND=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            PIP_CERT=/etc/ssl/certs/ca-certificates.crt "${proxies[@]}" \
            bash -c "$script"
    ' _ "$root" "$WORK/cpuinfo" "$CACHE/pip" "$INSIDE"
}

compare() {
    # $1, $2: JSON lines from x86 and from the emulated Pi. Same files, same verdicts, same
    # probabilities; only the timing differs.
    python3 - "$1" "$2" <<'PY'
import json, os, sys

def rows(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        row.pop("latency_ms", None)
        out[os.path.basename(row.pop("file"))] = row
    return out

x86, pi = rows(sys.argv[1]), rows(sys.argv[2])
if not x86 or sorted(x86) != sorted(pi):
    sys.exit(f"different images: x86 {sorted(x86)}, pi {sorted(pi)}")
bad = [name for name in x86 if x86[name] != pi[name]]
for name in sorted(x86):
    r = pi[name]
    print(f"{name:45s} {r['label']:22s} {r['confidence']:.4f} {r['urgency']}"
          f"{'  MISMATCH' if name in bad else ''}", file=sys.stderr)
if bad:
    for name in bad:
        print(f"{name}:\n  x86 {x86[name]}\n  pi  {pi[name]}", file=sys.stderr)
    sys.exit(f"{len(bad)} verdict(s) differ between x86 and the emulated Pi")
print(f"pi-userland: {len(x86)} verdicts equal on x86 and emulated {os.environ['QEMU_CPU']}",
      file=sys.stderr)
PY
}

main() {
    local started=$SECONDS
    host_tools
    # The Pi path's package list comes from setup.sh itself, so the two cannot drift apart.
    mapfile -t PI_PACKAGES < <(./setup.sh pi-packages)
    local key
    key=$(printf '%s\n' "$SUITE" "${BASE_PACKAGES[@]}" "${PI_PACKAGES[@]}" | sha256sum | cut -c1-16)
    mkdir -p "$CACHE/pip"
    local rootfs="$CACHE/$SUITE-arm64-$key.tar.zst"
    [ -f "$rootfs" ] || build_rootfs "$rootfs"
    log "root filesystem ready after $((SECONDS - started)) s: $rootfs"

    WORK=$(mktemp -d "$CACHE/run.XXXXXX")
    # --one-file-system: belt and braces; the mounts live only in run_inside's namespace.
    trap 'rm -rf --one-file-system "$WORK"' EXIT
    mkdir "$WORK/root"
    tar -C "$WORK/root" --zstd -xf "$rootfs"
    write_cpuinfo > "$WORK/cpuinfo"
    cp /etc/resolv.conf "$WORK/root/etc/resolv.conf"
    # Without binfmt's F flag the kernel looks for the interpreter inside the chroot.
    local interp
    interp=$(sed -n 's/^interpreter //p' /proc/sys/fs/binfmt_misc/qemu-aarch64)
    mkdir -p "$WORK/root$(dirname "$interp")"
    cp "$(readlink -f "$interp")" "$WORK/root$interp"
    copy_checkout "$WORK/root/root/skinscan"

    log "x86 verdicts"
    local x86_python=python3
    [ -x "$REPO/.venv/bin/python" ] && x86_python=$REPO/.venv/bin/python
    (cd "$REPO/tests/data/samples" && "$x86_python" -m kiosk classify --json -- *.jpg) \
        > "$WORK/x86.jsonl" 2>"$WORK/x86.err" || { cat "$WORK/x86.err" >&2; die "x86 classify failed"; }

    log "emulated Pi ($QEMU_CPU): setup.sh install-service, then kiosk classify"
    local emulated=$SECONDS
    run_inside "$WORK/root" > "$WORK/pi.jsonl"
    log "emulated part took $((SECONDS - emulated)) s"
    compare "$WORK/x86.jsonl" "$WORK/pi.jsonl"
    log "done in $((SECONDS - started)) s"
}

main "$@"
