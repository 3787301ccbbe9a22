"""Sync on a bad rural link, small scale: the real emulators behind a throttled, flapping relay
(tests/flapping_link.py; the full-size run is scripts/bench_sync_flaps.py). Cases must go up
WHILE the link flaps, not only once it is steady, exactly once; and a probe that finds the link
back starts sending within its interval, not at the next backoff timer."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.store import CaseStore, OnDeviceResult
from kiosk.cases.sync import SyncService
from kiosk.cases.sync_status import SyncStatus
from kiosk.config import KioskConfig
from tests.cases.test_sync import assert_exactly_once
from tests.firebase_fixtures import FirebaseEnv
from tests.flapping_link import Flap, FlappingLink
from tests.servers import TcpProxy
from tests.sync_faults import REPO, remote_case_ids, sync_environment

RATE = 3_000  # bytes/s through Storage while the link is up


@dataclass
class Rural:
    link: FlappingLink
    storage: TcpProxy
    config: KioskConfig
    store: CaseStore


@pytest.fixture
def rural(firebase_env: FirebaseEnv, tmp_path: Path) -> Iterator[Rural]:
    storage = TcpProxy(firebase_env.storage.port, rate_bytes_per_s=RATE)
    firestore = TcpProxy(firebase_env.firestore.port)
    link = FlappingLink([storage, firestore])
    config = firebase_env.kiosk_config(
        tmp_path / "kiosk",
        storage_emulator_host=f"http://127.0.0.1:{storage.port}",
        firestore_emulator_host=f"127.0.0.1:{firestore.port}",
        sync_interval_s=60.0,  # only the link's return may start a pass in these tests
        link_probe_interval_s=1.0,
    )
    store = CaseStore.open(config)
    yield Rural(link, storage, config, store)
    link.close()
    store.close()


def small_picture(seed: int) -> np.ndarray:
    """Smooth blocks compress like a photo: ~3 KB, so one image takes ~1 s at RATE."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))


def save(store: CaseStore, n: int) -> list[str]:
    result = OnDeviceResult("acne", 0.8, {"acne": 0.8}, False, "routine", "test")
    return [store.save_case(small_picture(i), result).case_id for i in range(n)]


def test_cases_go_up_during_the_flaps_exactly_once(rural: Rural, cloud: FirebaseClients) -> None:
    case_ids = save(rural.store, 8)
    sizes = [rural.store.get(c).image_bytes for c in case_ids]
    assert max(sizes) < 2 * RATE, f"images too big for the up-windows: {sizes}"
    # Up 4 s, down 1 s, four times, each drop timed to cut a transfer under way. An image
    # with its request takes ~1.8 s at RATE: about two fit an up-window, so the queue lasts
    # through the flaps.
    schedule = [Flap(4.0, 1.0, mid_transfer=True) for _ in range(4)]
    service = SyncService(rural.config, rural.store)
    arrivals: dict[str, float] = {}
    statuses: list[SyncStatus] = []
    rural.link.start(schedule)
    service.start()
    try:
        deadline = time.monotonic() + 120
        while len(arrivals) < len(case_ids) and time.monotonic() < deadline:
            now = time.monotonic()
            for case_id in remote_case_ids(cloud, rural.store.kiosk_id):
                arrivals.setdefault(case_id, now)
            statuses.append(service.status())
            time.sleep(0.1)
        rural.link.join(timeout=60)
    finally:
        service.close()
    log = rural.link.log
    assert log.finished_at is not None
    assert log.drops == 4 and log.drops_mid_transfer >= 3
    first_drop_end = log.up_intervals[0][1]
    during = [t for t in arrivals.values() if t <= log.finished_at]
    between_drops = [t for t in during if t > first_drop_end]
    assert len(during) >= 4, f"only {len(during)} of 8 cases went up while the link flapped"
    assert between_drops, "nothing went up after the first drop until the link was steady"
    assert sorted(arrivals) == sorted(case_ids)
    assert_exactly_once(rural.store, cloud, case_ids)
    # The screen and `kiosk status` could say so while it flapped.
    unstable = [s for s in statuses if s.link_unstable]
    assert unstable, "two drops within minutes must mark the link unstable"
    assert max(s.cases_sent_while_unstable for s in statuses) >= 1
    assert max(s.bytes_sent_this_pass for s in statuses) >= min(sizes)
    # One image at a time on this link: four at once would share 4 KB/s and miss every window.
    assert max(s.send_window for s in statuses) <= 2
    # `kiosk status` (another process) reads what the sync service stored.
    shown = subprocess.run(
        [sys.executable, "-m", "kiosk", "status"],
        env=sync_environment(rural.config),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    line = next((x for x in shown.stdout.splitlines() if x.startswith("link ")), "")
    assert "unstable" in line and "case(s)" in line, shown.stdout


def test_a_probe_that_finds_the_link_back_starts_sending_within_its_interval(
    rural: Rural, cloud: FirebaseClients
) -> None:
    case_ids = save(rural.store, 2)
    service = SyncService(rural.config, rural.store)
    service.start()  # the link is down: the first pass fails at once, then probing
    try:
        time.sleep(4.0)
        status = service.status()
        assert status.online is False and status.syncing is False
        # Probing, not backing off: the next try is due within the probe interval.
        assert status.next_attempt_in_s is not None
        assert status.next_attempt_in_s <= rural.config.link_probe_interval_s * 1.25
        rural.link.up()
        up_at = time.monotonic()
        while rural.storage.meter.bytes_up == 0 and time.monotonic() - up_at < 30:
            time.sleep(0.01)
        started_sending = time.monotonic() - up_at
        deadline = time.monotonic() + 60
        while rural.store.queue_depth() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        service.close()
    # Within one probe interval (jitter included), plus a loaded machine's connect time.
    bound = rural.config.link_probe_interval_s * 1.25 + 1.5
    assert started_sending <= bound, f"sending began {started_sending:.2f} s after the link"
    assert started_sending >= 0
    assert_exactly_once(rural.store, cloud, case_ids)


class BusyStorage:
    """A real HTTP server in Storage's place that answers every request 503: a server in
    trouble, not a dropped link."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _busy(self) -> None:
                seen.append(time.monotonic())
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b'{"error": {"code": 503, "message": "busy"}}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _busy  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_in_trouble_gets_backoff_not_probing(
    firebase_env: FirebaseEnv, tmp_path: Path
) -> None:
    from kiosk.cases.sync_status import SyncProblem

    busy = BusyStorage()
    config = firebase_env.kiosk_config(
        tmp_path / "kiosk",
        storage_emulator_host=f"http://127.0.0.1:{busy.port}",
        sync_interval_s=60.0,
        link_probe_interval_s=0.5,
    )
    store = CaseStore.open(config)
    save(store, 2)
    service = SyncService(config, store)
    service.start()
    try:
        deadline = time.monotonic() + 60
        while service.status().next_attempt_in_s is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first = service.status()
        assert store.queue_depth() == 2, "nothing is lost"
    finally:
        service.close()
        store.close()
        busy.close()
    assert first.problem is SyncProblem.SERVER_ERROR, first.last_error
    assert not first.link_unstable, "a server's error is not a drop of the link"
    assert busy.requests, "the upload reached the busy server"
    # Backoff: the next try is at least BACKOFF_FIRST_S / 2 = 1 s away; probing would say at
    # most link_probe_interval_s * 1.25 = 0.625 s.
    assert first.next_attempt_in_s is not None and first.next_attempt_in_s >= 1.0
