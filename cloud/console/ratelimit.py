"""Login rate limiting: failed attempts counted per account and per client address, each in a
sliding window with its own limit.

Past a limit every attempt on that account, or from that address, is refused until old failures
age out, even with the right password, so guessing costs the attacker the window each time.
An account nobody guesses at, signing in from an address nobody guesses from, is never
refused: nothing is counted globally. That only holds when the address is the real client's:
behind a reverse proxy the console must be told the proxy's address (`trusted_proxies`, see
security.client_address), or every client would share the proxy's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# Keys are chosen by whoever sends the form (any username, any address through a proxy): keep
# at most this many, dropping the least recently failed, so memory stays bounded.
MAX_KEYS = 10_000


class LoginLimiter:
    def __init__(
        self,
        account_attempts: int,
        address_attempts: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_attempts = account_attempts
        self.address_attempts = address_attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"user:{username}", f"addr:{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until an attempt for this account from this address is allowed; 0: now."""
        now = self.clock()
        account, addr = self._keys(username, address)
        with self._lock:
            waits = [
                failures[0] + self.window_s - now
                for key, limit in ((account, self.account_attempts), (addr, self.address_attempts))
                if len(failures := self._recent(key, now)) >= limit
            ]
        return max(waits, default=0.0)

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(username, address):
                failures = self._failures.setdefault(key, deque())
                failures.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """The account's own failures are forgotten; the address's are not (a sprayer who
        guesses one password right must not get a fresh allowance for the others)."""
        with self._lock:
            self._failures.pop(self._keys(username, "")[0], None)
