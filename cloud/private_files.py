"""Files that hold secrets (signing key, session key, staff password hashes, credentials):
written 0600 and refused when anyone but the owner can read them."""

from __future__ import annotations

import stat
from pathlib import Path

from kiosk.errors import SkinscanError
from kiosk.files import atomic_write_bytes

PRIVATE_MODE = 0o600


class PrivateFileError(SkinscanError):
    """A secret file is missing or readable by others."""


def require_private(path: Path, what: str) -> bytes:
    """The file's bytes, if only its owner may read or write it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise PrivateFileError(f"{what} not found: {path}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise PrivateFileError(
            f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    return path.read_bytes()


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(path, data, mode=PRIVATE_MODE)
