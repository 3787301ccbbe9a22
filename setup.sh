#!/usr/bin/env bash
# Skinscan: set up this checkout and do one thing with it. Safe to run again: each step only
# does what is missing.
#
#   ./setup.sh test      install everything (kiosk, training, tests), then run lint + all tests
#   ./setup.sh run       install the kiosk, then start it
#   ./setup.sh install   install only (add --train for the training tools)
#
# Environment: PYTHON (interpreter for the venv; default python3.11, else python3 >= 3.11),
# SKINSCAN_TRAINING_DATA (training images for the pipeline smoke test; default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
verb=${1:-install}
shift || true

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

on_raspberry_pi() { grep -qs "Raspberry Pi" /proc/device-tree/model; }

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"; return
        fi
    done
    die "Python 3.11 or newer is needed (Raspberry Pi OS Bookworm ships 3.11)"
}

apt_install_missing() {
    # Debian packages, installed only when absent (needs root or sudo).
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "apt: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local py; py=$(pick_python)
        local flags=()
        # On the Pi, picamera2 and libcamera come from Raspberry Pi's apt repository and are
        # seen through the system site-packages.
        on_raspberry_pi && flags+=(--system-site-packages)
        log "creating $VENV with $py"
        "$py" -m venv "${flags[@]}" "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
}

ensure_installed() {
    # $1: the extras to install ("" for the kiosk alone). Re-installs only when pyproject.toml
    # or the extras changed since the last successful install.
    local extras=$1
    local spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    local stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/-}"
    if [ ! -f "$stamp" ]; then
        log "pip install -e '$spec'"
        "$VENV/bin/python" -m pip install -q -e "$spec"
        touch "$stamp"
    fi
}

system_packages() {
    if on_raspberry_pi; then
        apt_install_missing python3-picamera2 python3-libcamera libgbm1 libdrm2 libegl1 libgles2
    fi
}

case "$verb" in
    install)
        system_packages
        ensure_venv
        if [ "${1:-}" = "--train" ]; then ensure_installed "train,test"; else ensure_installed ""; fi
        log "installed; activate with: source $VENV/bin/activate"
        ;;
    test)
        system_packages
        ensure_venv
        ensure_installed "train,test"
        log "ruff"
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        log "pytest"
        export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy TQDM_DISABLE=1
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    run)
        system_packages
        ensure_venv
        # Not the `pi` extra: on the Pi, picamera2 from apt (system site-packages) is the one
        # that works; PyPI's would shadow it.
        ensure_installed ""
        # The best camera there is (picamera2, else a webcam, else the demo clip). Headless
        # until the touchscreen UI lands: one JSON line per verdict change.
        log "starting the kiosk (Ctrl-C to stop)"
        exec "$VENV/bin/kiosk" scan --headless --source auto "$@"
        ;;
    *)
        die "unknown verb '$verb' (use: test, run, install)"
        ;;
esac
