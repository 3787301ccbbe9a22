"""systemd's notify protocol, without libsystemd: READY, WATCHDOG, STATUS, STOPPING.

The unit is `Type=notify` with `WatchdogSec=` (systemd/skinscan-kiosk.service). systemd passes
the socket in $NOTIFY_SOCKET and the watchdog period in $WATCHDOG_USEC; outside systemd both are
absent and every call here does nothing. Sending never blocks and never raises: a kiosk must not
stop because its supervisor is gone.

`FrameWatchdog` turns "frames are flowing" into the protocol: READY after the first real frame,
then WATCHDOG only while the frame count keeps rising. A hung camera or a frozen loop stops the
pings, and systemd restarts the service after WatchdogSec.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """One datagram per message to $NOTIFY_SOCKET (a path, or '@name' for the abstract
    namespace)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        self._sock: socket.socket | None = None
        self._warned = False
        self.watchdog_s = _watchdog_period(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one message; True if it left."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(assignments).encode(), self._address)
            return True
        except OSError as e:
            if not self._warned:  # once: the loop calls this many times a minute
                log.warning("sd_notify to %r failed: %s", self._address, e)
                self._warned = True
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_period(env: Mapping[str, str]) -> float | None:
    """$WATCHDOG_USEC in seconds, if it is meant for this process ($WATCHDOG_PID, when set,
    names the process the watchdog watches)."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class FrameWatchdog:
    """Call `frames(count, camera_state)` from the consumer loop (cheap: a comparison and a
    clock read). READY once the count first rises; WATCHDOG at half the watchdog period, but
    only if the count rose since the last ping; STATUS when the camera state changes."""

    def __init__(
        self, notifier: Notifier | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.notifier = notifier or Notifier()
        self._clock = clock
        # systemd asks for a ping at least every WatchdogSec; half leaves room for a slow frame.
        period = self.notifier.watchdog_s
        self._interval = period / 2 if period else None
        self._count = 0
        self._pinged_count = 0
        self._pinged_at = 0.0
        self._ready = False
        self._camera: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    def frames(self, count: int, camera_state: str | None = None) -> None:
        if not self.notifier.enabled:
            return
        if camera_state is not None and camera_state != self._camera:
            self._camera = camera_state
            if self._ready:
                self.notifier.status(f"camera {camera_state}")
        if count <= self._count:
            return
        self._count = count
        now = self._clock()
        if not self._ready:
            self._ready = True
            self._pinged_count, self._pinged_at = count, now
            self.notifier.ready(f"camera {self._camera or 'live'}")
            return
        if self._interval is not None and now - self._pinged_at >= self._interval:
            self._pinged_count, self._pinged_at = count, now
            self.notifier.watchdog()

    def stopping(self) -> None:
        self.notifier.stopping()
