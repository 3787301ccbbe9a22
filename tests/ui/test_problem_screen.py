"""The touchscreen when the case records need repair (issue 12): it says so in the user's
language, fits, and the kiosk stays on that screen (alive for systemd) instead of exiting into
a restart loop or starting a new, empty store over the saved pictures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pygame
import pytest

from kiosk.cases.store import CaseStore, OnDeviceResult
from kiosk.ui.i18n import Strings, ui_languages
from kiosk.ui.problem_screen import REPAIR_COMMAND, draw_store_problem
from kiosk.ui.text import TextPainter


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the notices are saved for a person to look at: $SKINSCAN_SHOTS, else pytest's
    temporary folder (its path is in the test output)."""
    chosen = os.environ.get("SKINSCAN_SHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("store-problem")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("language", ui_languages())
@pytest.mark.parametrize("size", [(800, 480), (1280, 800)])
def test_the_repair_notice_fits_in_every_language(
    language: str, size: tuple[int, int], shots: Path
) -> None:
    pygame.display.init()
    pygame.font.init()
    surface = pygame.Surface(size)
    strings = Strings.for_language(language)
    records = draw_store_problem(surface, strings, TextPainter())
    screen = surface.get_rect()
    assert [r.text for r in records][-1] == REPAIR_COMMAND
    for record in records:
        assert record.ink is not None, record.text
        assert record.box.contains(record.ink) and screen.contains(record.ink), record.text
        assert not record.truncated, f"{language}: {record.text!r} was cut"
    pygame.image.save(surface, str(shots / f"store_problem_{language}_{size[0]}.png"))


def test_kiosk_run_over_a_lost_database_shows_the_notice_and_stays_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = CaseStore(data / "cases.sqlite3", data / "images", "k1", 0)
    result = OnDeviceResult("melanoma", 0.7, {"melanoma": 0.7}, False, "urgent", "v1")
    saved = store.save_case(np.full((64, 64, 3), 150, np.uint8), result)
    store.close()
    (data / "cases.sqlite3").unlink()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    env = dict(
        os.environ,
        SKINSCAN_DATA_DIR=str(data),
        SKINSCAN_KIOSK_ID="k1",
        SKINSCAN_FULLSCREEN="false",
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
        NOTIFY_SOCKET=str(tmp_path / "notify"),
        WATCHDOG_USEC="2000000",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "run", "--source", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = notify.recv(4096).decode()
        assert "READY=1" in ready and "kiosk cases recover" in ready
        assert notify.recv(4096).decode() == "WATCHDOG=1"
        time.sleep(1)
        assert proc.poll() is None, "it stays on the notice instead of exiting"
        assert not (data / "cases.sqlite3").exists(), "no new empty database was made"
        assert (data / "images" / f"{saved.case_id}.jpg").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        notify.close()
    assert "Traceback" not in err, err
    assert "kiosk cases recover" in err
    shutil.rmtree(data, ignore_errors=True)
