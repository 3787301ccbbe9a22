"""What a failed sync pass means for the next try, and whether the link is flapping.

A rural 2G/3G link comes and goes every few seconds. Two kinds of failure need opposite
answers:
- the link dropped (connection refused, reset, timed out, a gRPC stream cut): nothing is wrong
  with Firebase, so probe the network cheaply and often (a TCP connect) and send the moment a
  probe gets through; every up-window the kiosk misses is capacity lost;
- the server answered with an error (5xx, quota, a refused credential): trying again at once
  helps nobody and a fleet doing it together is a storm, so back off exponentially.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.cases.firebase import CredentialsError, LinkDownError

# Probing right after a drop: most drops on a flapping link last a second or two, and each
# probe is one TCP handshake per endpoint (a few hundred bytes).
PROBE_FIRST_S = 0.3
# The longer the link has been down, the less often it is probed (up to the configured
# interval): a quarter of the time it has been down so far.
PROBE_GROWTH = 0.25
# Two drops within this window make the link "unstable" (said on the screen and in
# `kiosk status`); it is steady again after a window without a drop.
UNSTABLE_WINDOW_S = 300.0
UNSTABLE_DROPS = 2


class Failure(enum.StrEnum):
    LINK = "link"  # the network dropped: probe until it is back
    SERVER = "server"  # Firebase answered with an error, or quota: exponential backoff
    CREDENTIALS = "credentials"  # only a person can fix it


_LINK_ERROR_NAMES = frozenset(
    {
        "ConnectionError",
        "NewConnectionError",
        "MaxRetryError",
        "ReadTimeout",
        "ConnectTimeout",
        "ProtocolError",
        "ChunkedEncodingError",
        "RemoteDisconnected",
        "IncompleteRead",
    }
)


def classify(error: BaseException) -> Failure:
    """LINK when the cause chain holds a dropped or refused connection and no answer from a
    server; SERVER otherwise (an HTTP 503 came from a server that answered: that is load)."""
    from google.api_core import exceptions as gexc

    for seen in causes(error):
        if isinstance(seen, CredentialsError):
            return Failure.CREDENTIALS
        if isinstance(seen, LinkDownError):
            return Failure.LINK
        if isinstance(seen, gexc.ServiceUnavailable | gexc.DeadlineExceeded):
            # gRPC says UNAVAILABLE when its connection was cut; over HTTP a 503 is an answer.
            return Failure.SERVER if getattr(seen, "response", None) is not None else Failure.LINK
        if isinstance(seen, gexc.GoogleAPICallError) and not isinstance(seen, gexc.RetryError):
            return Failure.SERVER  # a status from the server: 4xx, 5xx, quota
        if isinstance(seen, ConnectionError | TimeoutError):
            return Failure.LINK
        if type(seen).__name__ in _LINK_ERROR_NAMES:
            return Failure.LINK
    return Failure.SERVER


def server_in_trouble(error: BaseException) -> bool:
    """A server's passing trouble (429, quota, 5xx) that outlasted the client's own retries:
    stop this pass and back off, instead of spending the retry budget on every queued case."""
    from google.api_core import exceptions as gexc

    trouble = (
        gexc.TooManyRequests,
        gexc.ResourceExhausted,
        gexc.InternalServerError,
        gexc.BadGateway,
        gexc.ServiceUnavailable,
        gexc.GatewayTimeout,
        gexc.RetryError,
    )
    return classify(error) is Failure.SERVER and any(isinstance(e, trouble) for e in causes(error))


def causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it, outermost first (at most 20: a cycle must not hang)."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 20 and seen not in chain:
        chain.append(seen)
        # A RetryError keeps the last attempt's error as .cause (not always __cause__).
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__ or seen.__context__
    return chain


def probe_delay(down_for_s: float, max_interval_s: float, rng: random.Random) -> float:
    """Seconds to the next probe while the link is down: soon after a drop, then less often,
    never more than `max_interval_s`; jittered ±25 % so a fleet behind one mast does not
    probe in step."""
    base = min(max_interval_s, max(PROBE_FIRST_S, down_for_s * PROBE_GROWTH))
    return base * rng.uniform(0.75, 1.25)


@dataclass(frozen=True)
class LinkReport:
    unstable: bool
    drops_recent: int  # drops within UNSTABLE_WINDOW_S
    cases_sent_while_unstable: int
    bytes_sent_while_unstable: int

    def as_dict(self) -> dict[str, object]:
        return {
            "unstable": self.unstable,
            "drops_recent": self.drops_recent,
            "cases_sent_while_unstable": self.cases_sent_while_unstable,
            "bytes_sent_while_unstable": self.bytes_sent_while_unstable,
        }


class LinkMonitor:
    """Counts drops (the link failing after it had worked) and what got through meanwhile."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._drops: deque[float] = deque()
        self._cases = 0
        self._bytes = 0

    def _trim(self, now: float) -> None:
        while self._drops and now - self._drops[0] > UNSTABLE_WINDOW_S:
            self._drops.popleft()
        if not self._drops:
            # Steady for a whole window: the next flapping period counts afresh.
            self._cases = self._bytes = 0

    def dropped(self) -> None:
        with self._lock:
            now = self._clock()
            self._drops.append(now)
            self._trim(now)

    def sent(self, nbytes: int, cases: int = 1) -> None:
        """`cases` went up with `nbytes` (a full picture that follows its case: cases=0)."""
        with self._lock:
            self._trim(self._clock())
            if self._drops:  # sent since the link began to drop
                self._cases += cases
                self._bytes += nbytes

    def report(self) -> LinkReport:
        with self._lock:
            self._trim(self._clock())
            unstable = len(self._drops) >= UNSTABLE_DROPS
            return LinkReport(unstable, len(self._drops), self._cases, self._bytes)
