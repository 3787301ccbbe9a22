"""Staff accounts for the review console: a small JSON file (0600) of argon2id hashes.

Each account has a session generation: every session cookie carries the generation it was
issued under, and the console checks it on each request. Signing out and setting a new password
raise the generation, so every cookie issued before stops working at once (a copied cookie
included) — a server-side revocation without a session table.

Kept on the console server, not in Firestore: kiosks hold Firebase credentials, and password
hashes have no business anywhere a stolen kiosk could read.

Several processes write the file: the console (its workers sign people out) and
`skinscan-cloud add-user`. Every read-modify-write holds an exclusive `flock` on a lock file beside
it (`<name>.lock`, never removed) from the read to the rename, so no process writes back a copy
that misses another's change. The lock is not on the accounts file itself: each write replaces
that file (a new inode), and a lock on the old inode would not stop the next writer. Reads need no
lock: the rename is atomic, so a reader sees the old file or the new one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    generation: int = 0  # sessions issued under an older generation are void


class StaffAccounts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._hasher = PasswordHasher()  # argon2id with the library's current parameters
        # Verifying an unknown user costs the same as a known one: no account enumeration
        # through response times.
        self._dummy_hash = self._hasher.hash("not a real password")
        # Threads of one process take this before the file lock (see _exclusive); it also guards
        # the cache they share.
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, dict]] | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold this process's thread lock and the exclusive file lock shared with every other
        process writing the accounts file."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed, also on a crash
                yield
            finally:
                os.close(fd)

    def _load(self, *, fresh: bool = False) -> dict[str, dict]:
        """The accounts; `fresh` reads the file even when the cached copy looks current (a
        read-modify-write does: an inode number can be reused, and a write in the same clock
        tick with the same size would look unchanged)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        # Every write replaces the file (new inode), also when `skinscan-cloud add-user` runs in
        # another process: a revocation is seen on the next request.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if not fresh and self._cache and self._cache[0] == stamp:
            return self._cache[1]
        try:
            users = json.loads(require_private(self.path, "staff accounts file"))
        except json.JSONDecodeError as e:
            raise AccountError(f"staff accounts file {self.path} is not JSON: {e}") from None
        self._cache = (stamp, users)
        return users

    def _save(self, users: dict[str, dict]) -> None:
        write_private(self.path, json.dumps(users, indent=2).encode("utf-8"))
        self._cache = None

    def add(self, username: str, password: str, name: str) -> StaffUser:
        if not USERNAME.match(username):
            raise AccountError("username: 2-32 lower-case letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"password must be at least {MIN_PASSWORD} characters")
        hashed = self._hasher.hash(password)  # slow: done before taking the lock
        with self._exclusive():
            users = dict(self._load(fresh=True))
            previous = users.get(username) or {}
            users[username] = {
                "hash": hashed,
                "name": name.strip() or username,
                "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                # A new password ends every session made with the old one.
                "generation": int(previous.get("generation", 0)) + (1 if previous else 0),
            }
            self._save(users)
        return _user(username, users[username])

    def revoke_sessions(self, username: str) -> None:
        """End every session of `username` (signing out does this)."""
        with self._exclusive():
            users = dict(self._load(fresh=True))
            if username not in users:
                return
            entry = dict(users[username])
            entry["generation"] = int(entry.get("generation", 0)) + 1
            users[username] = entry
            self._save(users)

    def get(self, username: str) -> StaffUser | None:
        entry = self._load().get(username)
        return _user(username, entry) if entry else None

    def verify(self, username: str, password: str) -> StaffUser | None:
        entry = self._load().get(username)
        try:
            self._hasher.verify(entry["hash"] if entry else self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return _user(username, entry) if entry else None


def _user(username: str, entry: dict) -> StaffUser:
    return StaffUser(username, entry["name"], int(entry.get("generation", 0)))
