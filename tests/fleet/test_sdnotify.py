"""The sd_notify protocol against a real datagram socket bound by the test ($NOTIFY_SOCKET):
READY after the first real frame, WATCHDOG only while frames flow, STOPPING at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from kiosk.config import KioskConfig
from kiosk.fleet.link import FleetLink
from kiosk.fleet.sdnotify import FrameWatchdog, Notifier
from kiosk.live.camera import ReplaySource, ResilientSource, demo_clip_path
from kiosk.live.pipeline import LivePipeline
from kiosk.live.triage import Triage
from kiosk.model.classifier import Classifier

REPO = Path(__file__).resolve().parents[2]


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket, read at once by a thread as systemd
    does (the kernel queues only ~10 datagrams per socket; unread, later sends would fail)."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:  # the abstract namespace, as "@name" in $NOTIFY_SOCKET
            name = f"skinscan-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.05)
        self._lock = threading.Lock()
        self._received: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._received.append(data.decode())

    def messages(self, wait: float = 0.0) -> list[str]:
        """Everything received so far, after waiting `wait` s for stragglers."""
        time.sleep(wait)
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=1)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def test_notifier_sends_to_a_path_and_to_the_abstract_namespace(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    assert notifier.ready("camera live")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert notify_socket.messages(0.2) == [
        "READY=1\nSTATUS=camera live",
        "WATCHDOG=1",
        "STOPPING=1",
    ]
    abstract = NotifySocket()
    try:
        assert Notifier({"NOTIFY_SOCKET": abstract.address}).watchdog()
        assert abstract.messages(0.2) == ["WATCHDOG=1"]
    finally:
        abstract.close()


def test_without_systemd_or_with_a_dead_socket_nothing_happens(tmp_path):
    assert not Notifier({}).enabled
    assert Notifier({}).ready() is False
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.enabled
    assert gone.watchdog() is False  # no exception: the kiosk must keep running


def test_watchdog_period_is_for_this_process_only():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_s == 2.0
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_s is None


def test_frame_watchdog_pings_only_when_the_count_rises(notify_socket):
    now = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "1000000"})
    dog = FrameWatchdog(notifier, clock=lambda: now[0])
    dog.frames(0, "starting")
    assert notify_socket.messages(0.1) == [], "READY before any frame"
    dog.frames(1, "live")
    assert dog.ready
    # (steps of 1/8 s: exact in binary, so "0.5 s later" is exactly 0.5)
    for i in range(2, 10):  # frames for 1 s: pings every 0.5 s (half the watchdog period)
        now[0] += 0.125
        dog.frames(i, "live")
    for _ in range(16):  # then the count stands still for 2 s: no pings
        now[0] += 0.125
        dog.frames(9, "reconnecting")
    assert notify_socket.messages(0.2) == [
        "READY=1\nSTATUS=camera live",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STATUS=camera reconnecting",
    ]


class GatedSource:
    """The demo clip, delivered only while `flowing` is set; otherwise read() hangs the way a
    stuck camera driver does."""

    name = "gated"

    def __init__(self, flowing: threading.Event) -> None:
        self.flowing = flowing
        self.replay = ReplaySource(demo_clip_path(), fps=20)
        self.closed = threading.Event()

    def open(self) -> None:
        self.replay.open()

    def read(self):
        while not self.flowing.is_set() and not self.closed.is_set():
            time.sleep(0.01)
        return self.replay.read()

    def close(self) -> None:
        self.closed.set()
        self.replay.close()


def test_live_loop_sends_ready_then_watchdog_only_while_frames_flow(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s while frames flow
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    flowing = threading.Event()
    # No stall timeout: a reconnect would bring frames back and hide the hang.
    source = ResilientSource(lambda: GatedSource(flowing), stall_timeout=None, name="gated")
    classifier = Classifier.from_metadata()
    pipeline = LivePipeline(source, classifier, Triage(classifier.thresholds), lens="off")

    def consume(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            snapshot = pipeline.snapshot()
            for observe in fleet.observers:
                observe(snapshot)
            time.sleep(0.02)

    with pipeline, FleetLink(KioskConfig(), pipeline) as fleet:
        consume(0.5)
        assert notify_socket.messages(0.1) == [], "READY before the first frame"
        flowing.set()
        consume(1.5)
        flowing_messages = notify_socket.messages(0.1)
        assert flowing_messages[0].startswith("READY=1")
        assert flowing_messages.count("WATCHDOG=1") >= 5
        flowing.clear()
        consume(0.3)  # frames already captured may still arrive
        settled = len(notify_socket.messages(0.1))
        consume(1.5)
        stalled = notify_socket.messages(0.1)[settled:]
        assert "WATCHDOG=1" not in stalled, "pinged while no frame arrived"
        flowing.set()
        consume(1.0)
        assert "WATCHDOG=1" in notify_socket.messages(0.1)[settled:], "pings did not resume"
    assert notify_socket.messages(0.2)[-1] == "STOPPING=1"


def test_kiosk_scan_process_notifies_ready_watchdog_stopping(notify_socket, tmp_path):
    env = dict(
        os.environ,
        NOTIFY_SOCKET=notify_socket.address,
        WATCHDOG_USEC="400000",
        PYTHONPATH=str(REPO),
    )
    env.pop("WATCHDOG_PID", None)
    config = tmp_path / "kiosk.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    cmd = [sys.executable, "-m", "kiosk", "scan", "--headless", "--source", "demo",
           "--frames", "60", "--config", str(config)]  # fmt: skip
    proc = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    messages = notify_socket.messages(0.3)
    assert messages[0].startswith("READY=1"), messages
    assert messages.count("WATCHDOG=1") >= 2, messages  # 60 frames at 15 fps: about 4 s
    assert messages[-1] == "STOPPING=1"
