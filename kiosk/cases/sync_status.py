"""What the sync worker tells the rest of the kiosk (UI queue screen, `kiosk status`, MQTT)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class SyncProblem(enum.StrEnum):
    """What went wrong, as a code the touchscreen can say in the user's language (last_error
    keeps the technical line for logs, `kiosk status` and the fleet)."""

    NO_CONNECTION = "no_connection"  # no network, or Firebase unreachable: retried by itself
    CREDENTIALS = "credentials"  # the key file is missing, unreadable or too open: an admin's job
    SERVER_ERROR = "server_error"  # Firebase failed mid-pass: retried by itself
    SOME_FAILED = "some_failed"  # online, but some cases did not go: retried next pass
    MODEL_REJECTED = "model_rejected"  # a model update failed its checks; the old model runs


@dataclass(frozen=True)
class SyncStatus:
    online: bool  # the last attempt to reach Firebase succeeded
    syncing: bool  # a pass is running now
    pending: int  # cases and messages waiting to go up
    last_sync: datetime | None  # end of the last pass that reached Firebase (UTC)
    done_this_pass: int = 0  # items sent in the running pass (progress bar)
    total_this_pass: int = 0
    last_error: str | None = None  # one line, no patient data
    problem: SyncProblem | None = None  # last_error as a code; None when all went well
    next_attempt_in_s: float | None = None  # while offline: when the next try is due
    # Reviews and specialist messages kept aside because their signature did not verify.
    unverified_items: int = 0
    model_rejected: str | None = None  # releases the last check skipped ("version: reason")
    # A flapping link (kiosk.cases.link): it dropped repeatedly within minutes; what got
    # through since it began to drop; what the running pass has sent.
    link_unstable: bool = False
    link_drops_recent: int = 0
    cases_sent_while_unstable: int = 0
    bytes_sent_while_unstable: int = 0
    bytes_sent_this_pass: int = 0
    send_window: int = 1  # images on the wire at once now (adaptive, up to sync_concurrency)
    link_rate_bytes_per_s: float | None = None  # measured per-upload throughput

    @classmethod
    def offline(cls, pending: int = 0) -> SyncStatus:
        return cls(online=False, syncing=False, pending=pending, last_sync=None)
