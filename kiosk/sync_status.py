"""What the sync worker tells the rest of the kiosk (UI queue screen, `kiosk status`, MQTT)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SyncStatus:
    online: bool  # the last attempt to reach Firebase succeeded
    syncing: bool  # a pass is running now
    pending: int  # cases and messages waiting to go up
    last_sync: datetime | None  # end of the last pass that reached Firebase (UTC)
    done_this_pass: int = 0  # items sent in the running pass (progress bar)
    total_this_pass: int = 0
    last_error: str | None = None  # one line, no patient data
    next_attempt_in_s: float | None = None  # while offline: when the next try is due

    @classmethod
    def offline(cls, pending: int = 0) -> SyncStatus:
        return cls(online=False, syncing=False, pending=pending, last_sync=None)
