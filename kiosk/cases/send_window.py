"""How many images are on the wire at once: one on a slow link, up to `sync_concurrency` on a
fast one.

On a 12 KB/s link four parallel uploads each get 3 KB/s, none finishes inside a 2 s up-window,
and every cut loses all four. One at a time, the same window carries a whole image. On a fast
link overlapping uploads hides each request's round trips. So: additive increase while uploads
finish quickly, back to one on a cut or a slow upload (AIMD, as TCP does for the same reason).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# An upload this quick leaves room for one more at once.
QUICK_UPLOAD_S = 1.0
# An upload this slow would likely be cut on a flapping link (up-windows of a few seconds):
# back to one image at a time.
SLOW_UPLOAD_S = 2.0
# Weight of the newest sample in the throughput average.
RATE_WEIGHT = 0.3


@dataclass(frozen=True)
class WindowState:
    size: int  # uploads allowed at once now
    rate_bytes_per_s: float | None  # measured per-upload throughput (None: nothing yet)


class SendWindow:
    def __init__(self, maximum: int, size: int = 1) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be at least 1, not {maximum}")
        self.maximum = maximum
        self._size = max(1, min(size, maximum))
        self._rate: float | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        with self._lock:
            return self._size

    def state(self) -> WindowState:
        with self._lock:
            return WindowState(self._size, self._rate)

    def finished(self, seconds: float, nbytes: int) -> None:
        """One upload (image and document) went through in `seconds`."""
        with self._lock:
            if seconds > 0:
                sample = nbytes / seconds
                self._rate = (
                    sample
                    if self._rate is None
                    else (1 - RATE_WEIGHT) * self._rate + RATE_WEIGHT * sample
                )
            if seconds <= QUICK_UPLOAD_S:
                self._size = min(self.maximum, self._size + 1)
            elif seconds > SLOW_UPLOAD_S:
                self._size = 1

    def cut(self) -> None:
        """The link dropped under an upload: start again from one."""
        with self._lock:
            self._size = 1
