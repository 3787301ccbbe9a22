"""A rural link for tests and benchmarks: TcpProxy relays (tests/servers.py) in front of the
emulators, throttled, going down and up on a schedule.

Down means what a dropped 2G/3G link means to the kiosk: every live connection is cut at once
(mid-transfer or not) and new connections are refused until the link is back. All relays of one
link go down and up together, as Firestore and Storage share the kiosk's one uplink.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.servers import TcpProxy


@dataclass(frozen=True)
class Flap:
    up_s: float  # the link is up this long first,
    down_s: float  # then down this long
    # Cut a transfer that is under way: at the end of the up time, wait (at most
    # MID_TRANSFER_WAIT_S) for bytes to be moving before going down.
    mid_transfer: bool = False


def random_schedule(
    drops: int,
    rng: random.Random,
    up_s: tuple[float, float] = (0.5, 4.0),
    down_s: tuple[float, float] = (0.5, 3.0),
    mid_transfer_share: float = 1 / 3,
) -> list[Flap]:
    """`drops` flaps with uniform up and down times; `mid_transfer_share` of them (spread at
    random) are timed to cut a transfer."""
    cut = set(rng.sample(range(drops), round(drops * mid_transfer_share)))
    return [
        Flap(rng.uniform(*up_s), rng.uniform(*down_s), mid_transfer=i in cut) for i in range(drops)
    ]


MID_TRANSFER_WAIT_S = 2.0


@dataclass
class LinkLog:
    """What the link did, in time.monotonic() seconds."""

    up_intervals: list[tuple[float, float]] = field(default_factory=list)
    drops: int = 0
    drops_mid_transfer: int = 0  # drops that cut bytes on the move (of any flap kind)
    finished_at: float | None = None  # the schedule is over and the link stays up
    bytes_up_at_finish: int = 0  # what the first relay had carried to the server by then

    def up_time_s(self) -> float:
        """Up time while the schedule played (the stay-up time after it is not counted)."""
        end_of_flaps = self.finished_at if self.finished_at is not None else float("inf")
        return sum(
            min(end, end_of_flaps) - start
            for start, end in self.up_intervals
            if start < end_of_flaps
        )


class FlappingLink:
    """`relays` share one link. The first one's meter decides whether a transfer is under way
    (put the throttled Storage relay first)."""

    def __init__(self, relays: Sequence[TcpProxy]) -> None:
        self.relays = list(relays)
        self.log = LinkLog()
        self._lock = threading.Lock()
        self._up_since: float | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.state_changed = threading.Condition()

    @property
    def is_up(self) -> bool:
        with self._lock:
            return self._up_since is not None

    def up(self) -> None:
        for relay in self.relays:
            relay.start()
        with self._lock:
            if self._up_since is None:
                self._up_since = time.monotonic()
        with self.state_changed:
            self.state_changed.notify_all()

    def down(self) -> None:
        busy = self.relays[0].meter.busy() if self.relays else False
        for relay in self.relays:
            relay.stop()
        with self._lock:
            if self._up_since is not None:
                self.log.up_intervals.append((self._up_since, time.monotonic()))
                self.log.drops += 1
                self.log.drops_mid_transfer += int(busy)
                self._up_since = None
        with self.state_changed:
            self.state_changed.notify_all()

    def run(self, schedule: Sequence[Flap]) -> None:
        """Play the schedule (blocking), then leave the link up."""
        for flap in schedule:
            self.up()
            if self._stop.wait(flap.up_s):
                return
            if flap.mid_transfer:
                deadline = time.monotonic() + MID_TRANSFER_WAIT_S
                meter = self.relays[0].meter
                while not meter.busy() and time.monotonic() < deadline:
                    if self._stop.wait(0.02):
                        return
            self.down()
            if self._stop.wait(flap.down_s):
                return
        self.log.finished_at = time.monotonic()
        if self.relays:
            self.log.bytes_up_at_finish = self.relays[0].meter.bytes_up
        self.up()

    def start(self, schedule: Sequence[Flap]) -> FlappingLink:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(schedule,), daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        self._stop.set()
        self.join(timeout=10)
        for relay in self.relays:
            relay.stop()
        with self._lock:
            if self._up_since is not None:
                self.log.up_intervals.append((self._up_since, time.monotonic()))
                self._up_since = None
