"""Firestore transactions that say plainly when they lost to other writers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

T = TypeVar("T")

# Two workers that see the same new case both try to claim it in the same instant; Firestore
# aborts one transaction and the client library retries it. More attempts than its default 5,
# because under load a retry can collide again.
TRANSACTION_ATTEMPTS = 10


class ContendedError(gexc.Aborted):
    """The transaction kept colliding with other workers' writes and gave up. A Google API
    error, so the worker's loop logs it and goes on; the lease rules make a repeat harmless."""


def run_transaction(db: Any, attempt: Callable[[Any], T]) -> T:
    """Run a `@firestore.transactional` function; a collision it could not get past becomes
    ContendedError. Collisions surface two ways: the library retries an aborted commit and then
    gives up with a bare ValueError, and a read that waited too long on another transaction's
    lock fails with Aborted at once, without a retry. Other Google API errors pass through."""
    try:
        return attempt(db.transaction(max_attempts=TRANSACTION_ATTEMPTS))
    except gexc.Aborted as e:
        raise ContendedError(str(e)) from e
    except ValueError as e:
        if isinstance(e.__cause__, gexc.Aborted):
            raise ContendedError(str(e)) from e
        # When beginning the transaction failed (server unreachable), the library's rollback
        # raises "no transaction ID" over the real error: report the real one.
        if isinstance(e.__context__, gexc.GoogleAPIError):
            raise e.__context__ from None
        raise
