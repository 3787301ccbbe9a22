"""The last line of defence of every `kiosk` command: no traceback ever reaches a user.

An error the kiosk raised on purpose (SkinscanError) is already one sentence: it is printed as
one line. Anything else is a bug: its traceback goes to a private log file (and to the journal
when systemd runs the command), and the user gets one line saying where it is. Saved cases are
never touched by this path: the store commits or refuses before anything can escape.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

LOG_NAME = "kiosk-errors.log"


def crash_log_path() -> Path:
    """Under the data directory when it can be written, else a per-user temp file."""
    from kiosk.config import _default_data_dir

    candidates = [Path(p) for p in (os.environ.get("SKINSCAN_DATA_DIR", "").strip(),) if p]
    candidates += [_default_data_dir(), Path(tempfile.gettempdir()) / f"skinscan-{os.getuid()}"]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / LOG_NAME
            os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))
            return path
        except OSError:
            continue
    return Path(os.devnull)


def record_crash(error: BaseException, command: str) -> Path:
    """Append the traceback to the crash log (0600); returns where it went."""
    text = "".join(traceback.format_exception(error))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    path = crash_log_path()
    try:
        with path.open("a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"--- {stamp} kiosk {command}\n{text}")
    except OSError:
        pass
    if os.environ.get("JOURNAL_STREAM"):  # under systemd: stderr is the journal, not a person
        import sys

        print(text, file=sys.stderr, flush=True)
    return path
