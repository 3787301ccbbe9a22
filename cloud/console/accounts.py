"""Staff accounts for the review console: a small JSON file (0600) of argon2id hashes.

Kept on the console server, not in Firestore: kiosks hold Firebase credentials, and password
hashes have no business anywhere a stolen kiosk could read.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud.private_files import require_private, write_private
from kiosk.errors import SkinscanError

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 12


class AccountError(SkinscanError):
    """A username or password is not acceptable, or the accounts file is damaged."""


@dataclass(frozen=True)
class StaffUser:
    username: str
    name: str  # shown with reviews and messages


class StaffAccounts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._hasher = PasswordHasher()  # argon2id with the library's current parameters
        # Verifying an unknown user costs the same as a known one: no account enumeration
        # through response times.
        self._dummy_hash = self._hasher.hash("not a real password")
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, dict]] | None = None

    def _load(self) -> dict[str, dict]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        try:
            users = json.loads(require_private(self.path, "staff accounts file"))
        except json.JSONDecodeError as e:
            raise AccountError(f"staff accounts file {self.path} is not JSON: {e}") from None
        self._cache = (mtime, users)
        return users

    def add(self, username: str, password: str, name: str) -> StaffUser:
        if not USERNAME.match(username):
            raise AccountError("username: 2-32 lower-case letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"password must be at least {MIN_PASSWORD} characters")
        with self._lock:
            users = dict(self._load())
            users[username] = {
                "hash": self._hasher.hash(password),
                "name": name.strip() or username,
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_private(self.path, json.dumps(users, indent=2).encode("utf-8"))
            self._cache = None
        return StaffUser(username, users[username]["name"])

    def get(self, username: str) -> StaffUser | None:
        entry = self._load().get(username)
        return StaffUser(username, entry["name"]) if entry else None

    def verify(self, username: str, password: str) -> StaffUser | None:
        entry = self._load().get(username)
        try:
            self._hasher.verify(entry["hash"] if entry else self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return StaffUser(username, entry["name"]) if entry else None
