#!/usr/bin/env bash
# Skinscan: set up this checkout and do one thing with it. Safe to run again: each step only
# does what is missing.
#
#   ./setup.sh test      install everything (kiosk, training, tests), then run lint + all tests
#   ./setup.sh run       install the kiosk, then start it
#   ./setup.sh install   install only (add --train for the training tools)
#   sudo ./setup.sh install-service   the kiosk as systemd services that start at boot (Pi)
#   sudo ./setup.sh uninstall         remove those services, the user and /opt/skinscan
#                                     (keeps /var/lib/skinscan and /etc/skinscan)
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

real_raspberry_pi() { grep -qs "Raspberry Pi" /proc/device-tree/model; }
# SKINSCAN_PI_USERLAND=1: take the Pi path on Debian bookworm arm64 (scripts/pi_userland_check.sh
# runs it under qemu), everything but the camera packages only Raspberry Pi's repository has.
on_raspberry_pi() { [ "${SKINSCAN_PI_USERLAND:-0}" = 1 ] || real_raspberry_pi; }

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
    local stamp
    stamp="$VENV/.installed-$(sha256sum < pyproject.toml | cut -c1-16)-${extras//,/-}"
    if [ ! -f "$stamp" ]; then
        log "pip install -e '$spec'"
        "$VENV/bin/python" -m pip install -q -e "$spec"
        touch "$stamp"
    fi
}

# Raspberry Pi OS Bookworm (64-bit): the venv, Debian's numpy (what picamera2 is built
# against), the libraries SDL loads for KMS/DRM fullscreen without a desktop (pygame-ce's wheel
# brings SDL itself) and a font with Latin and Arabic letters.
PI_PACKAGES=(python3-venv python3-pip python3-numpy libgbm1 libdrm2 libegl1 libgles2 libudev1
    fonts-dejavu-core)
# Only Raspberry Pi's own repository has these (Debian's libcamera has no Python bindings).
PI_CAMERA_PACKAGES=(python3-picamera2 python3-libcamera)

system_packages() {
    if on_raspberry_pi; then
        apt_install_missing "${PI_PACKAGES[@]}"
        if real_raspberry_pi; then
            apt_install_missing "${PI_CAMERA_PACKAGES[@]}"
        else
            log "not a Raspberry Pi: skipping ${PI_CAMERA_PACKAGES[*]} (Raspberry Pi's repository only)"
        fi
    fi
}

# ---- the kiosk as a system service (install-service / uninstall) -------------------------
# The service runs its own copy of the code under /opt (the service user cannot read a home
# directory, and a `git pull` in the checkout must not change a running kiosk until the next
# install-service), as a dedicated user that owns only the data directory.
SERVICE_USER=skinscan
APP_DIR=/opt/skinscan
STATE_DIR=/var/lib/skinscan
CONF_DIR=/etc/skinscan
UNIT_DIR=/etc/systemd/system
# One service: `kiosk run` syncs in the background itself (kiosk/cases/sync.py), so there is no
# second process that could race it for the same queue.
UNITS=(skinscan-kiosk.service)

random_pin() {
    # Six digits from the kernel's random source (the modulo bias of 2^32 % 10^6 is negligible).
    local n
    n=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    printf '%06d' $((n % 1000000))
}

need_root() { [ "$(id -u)" -eq 0 ] || die "$verb needs root: sudo ./setup.sh $verb"; }
systemd_running() { [ -d /run/systemd/system ]; }

install_service() {
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        log "creating system user $SERVICE_USER"
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    # Screen (KMS/DRM), touch input and GPU: only the groups this system has.
    local group
    for group in video input render; do
        if getent group "$group" >/dev/null; then usermod -aG "$group" "$SERVICE_USER"; fi
    done
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
    # After an uninstall and reinstall the user's id may have changed: the kept cases and
    # images must stay its own.
    chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    # Readable by the service, writable by root only; the file holds the MQTT password.
    install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
    if [ ! -e "$CONF_DIR/kiosk.toml" ]; then
        install -m 0640 -o root -g "$SERVICE_USER" systemd/kiosk.toml "$CONF_DIR/kiosk.toml"
        # The template's PIN is public (it is in this repository): every kiosk gets its own.
        sed -i "s/^admin_pin = .*/admin_pin = \"$(random_pin)\"/" "$CONF_DIR/kiosk.toml"
        log "wrote $CONF_DIR/kiosk.toml: set mqtt and Firebase there; the Settings PIN"
        log "  is admin_pin in that file (random for this kiosk; sudo to read it)"
    fi
    log "copying the kiosk to $APP_DIR/src"
    install -d -m 0755 "$APP_DIR"
    rm -rf "$APP_DIR/src.new"
    mkdir -m 0755 "$APP_DIR/src.new"
    # The checkout without development leftovers (venv, training runs, caches).
    tar --exclude=./.venv --exclude=./.git --exclude=./runs --exclude=./build \
        --exclude=./.pytest_cache --exclude=./.ruff_cache --exclude='*.egg-info' \
        --exclude=__pycache__ -cf - . | tar -C "$APP_DIR/src.new" -xf -
    rm -rf "$APP_DIR/src"
    mv "$APP_DIR/src.new" "$APP_DIR/src"
    if [ ! -x "$APP_DIR/venv/bin/python" ]; then
        local flags=()
        on_raspberry_pi && flags+=(--system-site-packages)
        "$(pick_python)" -m venv "${flags[@]}" "$APP_DIR/venv"
        "$APP_DIR/venv/bin/python" -m pip install -q --upgrade pip
    fi
    log "pip install -e $APP_DIR/src"
    "$APP_DIR/venv/bin/python" -m pip install -q -e "$APP_DIR/src"
    chmod -R go+rX,go-w "$APP_DIR"
    install -m 0644 "${UNITS[@]/#/systemd/}" "$UNIT_DIR/"
    if systemd_running; then
        systemctl daemon-reload
        systemctl enable "${UNITS[@]}"
        systemctl restart "${UNITS[@]}"
        log "running; logs: journalctl -u skinscan-kiosk -f"
    else
        # A chroot or an image being built: enabled for the next boot.
        systemctl enable "${UNITS[@]}"
        log "systemd is not running here: units enabled for the next boot"
    fi
}

uninstall_service() {
    if systemd_running; then
        systemctl disable --now "${UNITS[@]}" 2>/dev/null || true
    else
        systemctl disable "${UNITS[@]}" 2>/dev/null || true
    fi
    local unit
    for unit in "${UNITS[@]}"; do rm -f "$UNIT_DIR/$unit"; done
    if systemd_running; then systemctl daemon-reload; fi
    rm -rf "$APP_DIR"
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then userdel "$SERVICE_USER"; fi
    log "removed; kept $STATE_DIR (cases not yet uploaded) and $CONF_DIR"
}

# The official Cloud Firestore emulator (a Java program) for the sync tests. It comes from
# Google's Cloud SDK apt repository; a suite that skipped the sync tests would prove nothing,
# so a missing emulator stops the test run with the reason.
firestore_emulator_jar() {
    dpkg -L google-cloud-cli-firestore-emulator 2>/dev/null | grep 'cloud-firestore-emulator.jar$'
}

ensure_firestore_emulator() {
    command -v java >/dev/null 2>&1 || apt_install_missing default-jre-headless
    if [ -z "$(firestore_emulator_jar)" ]; then
        if ! apt-cache show google-cloud-cli-firestore-emulator >/dev/null 2>&1; then
            log "adding Google's Cloud SDK apt repository (for the Firestore emulator)"
            local sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo"
            apt_install_missing curl gnupg ca-certificates
            curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg |
                $sudo gpg --dearmor --yes -o /usr/share/keyrings/cloud.google.gpg ||
                die "could not fetch Google's apt key; install google-cloud-cli-firestore-emulator by hand"
            echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" |
                $sudo tee /etc/apt/sources.list.d/google-cloud-sdk.list >/dev/null
        fi
        apt_install_missing google-cloud-cli-firestore-emulator ||
            die "the Firestore emulator (google-cloud-cli-firestore-emulator) could not be installed"
    fi
    [ -n "$(firestore_emulator_jar)" ] || die "the Firestore emulator jar is missing after install"
    java -version >/dev/null 2>&1 || die "Java does not run; the Firestore emulator needs Java 17+"
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
        # Chromium drives the review console's browser tests (Playwright uses Debian's build;
        # `playwright install` cannot download browsers here).
        apt_install_missing chromium
        # A real MQTT broker (and openssl for its TLS test), systemd-analyze for the units.
        apt_install_missing mosquitto openssl systemd
        ensure_firestore_emulator
        ensure_venv
        ensure_installed "train,cloud,test"
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
        # The touchscreen kiosk, fullscreen (add --windowed for a window on a desktop), on the
        # best camera there is (picamera2, else a webcam, else the demo clip). Exit: Settings
        # (admin PIN) → Exit, or Ctrl-C in the terminal.
        log "starting the kiosk (Ctrl-C to stop)"
        exec "$VENV/bin/kiosk" run "$@"
        ;;
    install-service)
        need_root
        system_packages
        install_service
        ;;
    uninstall)
        need_root
        uninstall_service
        ;;
    pi-packages)
        # For scripts/pi_userland_check.sh: the apt packages of the Pi path, one a line.
        printf '%s\n' "${PI_PACKAGES[@]}"
        ;;
    *)
        die "unknown verb '$verb' (use: test, run, install, install-service, uninstall)"
        ;;
esac
