"""What the Cases screen says about sending: one honest state out of the config, the sync
worker's status and the case store.

The waiting count is read from the case store, never from the sync worker's last pass: a case
saved a second ago is waiting now, whatever the worker last counted. A kiosk with nowhere to
send to (no credentials and no emulators) is "not set up", which is the administrator's job and
not something the health worker can fix by finding a network, so it is never called offline.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.cases.sync_status import SyncProblem

if TYPE_CHECKING:
    from kiosk.cases.sync_status import SyncStatus
    from kiosk.config import KioskConfig


class Link(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    NOT_SET_UP = "not_set_up"


@dataclass(frozen=True)
class SyncView:
    link: Link
    waiting: int  # cases and messages not yet sent, from the case store
    syncing: bool
    problem_key: str | None  # a strings key with the problem in the user's words, or None
    # The link keeps dropping: how many cases got through meanwhile (None: it is steady).
    unstable_sent: int | None = None
    # Sent cases whose full picture still follows (from the case store, like `waiting`).
    full_waiting: int = 0

    @property
    def can_sync(self) -> bool:
        return self.link is not Link.NOT_SET_UP and not self.syncing


def sync_configured(config: KioskConfig) -> bool:
    """Whether sending has somewhere to go: a service-account key, or emulators (tests, demo)."""
    return config.credentials is not None or config.uses_emulators


def sync_view(
    config: KioskConfig, status: SyncStatus, waiting: int, full_waiting: int = 0
) -> SyncView:
    if not sync_configured(config):
        return SyncView(Link.NOT_SET_UP, waiting, False, "queue.not_set_up_text")
    problem = status.problem
    # A rejected model update is the fleet's business only.
    key = None if problem in (None, SyncProblem.MODEL_REJECTED) else f"sync_problem.{problem}"
    link = Link.ONLINE if status.online else Link.OFFLINE
    unstable = status.cases_sent_while_unstable if status.link_unstable else None
    return SyncView(link, waiting, status.syncing, key, unstable, full_waiting)
