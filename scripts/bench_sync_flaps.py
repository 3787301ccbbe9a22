"""Sync on a bad rural link: a real `kiosk sync` process drains queued cases into the real
emulators through a throttled, flapping relay (tests/flapping_link.py).

    python scripts/bench_sync_flaps.py --cases 20 --rate 12000 --drops 40 --seed 1
    python scripts/bench_sync_flaps.py --cases 20 --side 1024   # camera-sized pictures

Storage is throttled to --rate bytes/s (Firestore shares the drops but not the throttle); the
link goes up for 0.5-4 s and down for 0.5-3 s, --drops times, a third of the drops timed to
cut a transfer under way; then it stays up until the queue is empty.

With --side, each case is a camera-sized picture (a real lesion photo enlarged to that many
pixels, with sensor noise): it goes up as a compact copy with its document, and the full
picture follows as a resumable upload (kiosk.cases.sync); without it, the small test samples
go whole.

Prints JSON:
- capacity_used: picture bytes that reached the cloud during the flaps (the first-look part
  of every case whose document arrived, and every full picture marked stored), over what the
  link could have carried in its up time while anything was still waiting (rate x up time, up
  to the moment the last part went, if that was before the flaps ended);
- cases_sent_during_flaps: documents (with their first-look picture) that arrived;
- link_utilisation: every byte sent up through the Storage relay during the flaps (requests,
  and uploads that were cut and so carried nothing in the end, included) over rate x up time;
- drain_s after the link stays up (until the last part arrived), against the remaining
  bytes' transfer time + 20 s;
- exactly-once: one document and one full picture (plus its compact copy) per case, every
  sha256 right, every full picture marked stored.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.cases.firebase import connect
from kiosk.cases.store import CaseStore, OnDeviceResult
from kiosk.config import KioskConfig
from scripts.bench_sync import fill_store
from scripts.emulators import running_emulators
from tests.flapping_link import FlappingLink, random_schedule
from tests.servers import TcpProxy, TrafficMeter
from tests.sync_faults import (
    REPO,
    KillLoopResult,
    check_exactly_once,
    large_picture,
    sync_environment,
)

DRAIN_SLACK_S = 20.0


@dataclass
class Arrivals:
    """When each part reached the cloud (read from the emulator directly, not through the
    link), and its bytes."""

    cases: dict[str, float] = field(default_factory=dict)  # document with its first look
    first_look_bytes: dict[str, int] = field(default_factory=dict)
    full: dict[str, float] = field(default_factory=dict)  # full picture marked stored
    full_bytes: dict[str, int] = field(default_factory=dict)

    def parts(self, until: float) -> int:
        return sum(self.first_look_bytes[c] for c, t in self.cases.items() if t <= until) + sum(
            self.full_bytes[c] for c, t in self.full.items() if t <= until
        )

    def last(self) -> float | None:
        times = [*self.cases.values(), *self.full.values()]
        return max(times) if times else None


def watch_arrivals(
    clients: object,
    kiosk_id: str,
    expected: set[str],
    stop: threading.Event,
    meter: TrafficMeter,
    relayed: list[tuple[float, int]],
    arrivals: Arrivals,
) -> None:
    """Fill `arrivals` until every case and full picture is there; `relayed` gets (time,
    bytes sent up through Storage so far)."""
    from kiosk.cases.cloud_schema import first_look_image, full_image_available
    from tests.sync_faults import kiosk_cases_query

    fields = ["image", "compact_image", "full_image_stored"]
    while not stop.is_set() and len(arrivals.full) < len(expected):
        now = time.monotonic()
        relayed.append((now, meter.bytes_up))
        for snapshot in kiosk_cases_query(clients, kiosk_id).select(fields).stream():  # type: ignore[arg-type]
            if snapshot.id not in expected:
                continue
            doc = snapshot.to_dict() or {}
            if snapshot.id not in arrivals.cases:
                arrivals.cases[snapshot.id] = now
                arrivals.first_look_bytes[snapshot.id] = int(first_look_image(doc)["bytes"])
            if full_image_available(doc) and snapshot.id not in arrivals.full:
                arrivals.full[snapshot.id] = now
                # Counted once: a picture sent whole is its own first look.
                whole = "compact_image" not in doc
                arrivals.full_bytes[snapshot.id] = 0 if whole else int(doc["image"]["bytes"])
        stop.wait(0.1)


def wait_for_line(path: Path, words: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if any(word in text for word in words):
            return
        time.sleep(0.1)
    raise SystemExit(f"kiosk sync did not start within {timeout:.0f} s: {path.read_text()[-500:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--rate", type=float, default=12_000, help="Storage bytes/s while up")
    ap.add_argument("--drops", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="give up after this long")
    ap.add_argument(
        "--side",
        type=int,
        default=0,
        help="camera-sized pictures this many pixels wide (0: the small test samples)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_emulators(Path(tmp)) as servers:
        storage_relay = TcpProxy(servers.storage.port, rate_bytes_per_s=args.rate)
        firestore_relay = TcpProxy(servers.firestore.port)
        link = FlappingLink([storage_relay, firestore_relay])
        config = servers.kiosk_config(
            Path(tmp) / "kiosk",
            storage_emulator_host=f"http://127.0.0.1:{storage_relay.port}",
            firestore_emulator_host=f"127.0.0.1:{firestore_relay.port}",
            connect_timeout_s=2.0,
        )
        if args.side:
            store = fill_large(config, args.cases, args.side)
        else:
            store = fill_store(config, args.cases)
        cases = {c.case_id: c.image_bytes for c in store.pending_uploads()}
        direct = connect(servers.kiosk_config(Path(tmp) / "direct"))
        schedule = random_schedule(args.drops, random.Random(args.seed))
        stop = threading.Event()
        arrivals = Arrivals()
        relayed: list[tuple[float, int]] = []

        partial: dict[str, int] = {}

        def watch() -> None:
            watch_arrivals(
                direct, store.kiosk_id, set(cases), stop, storage_relay.meter, relayed, arrivals
            )

        def snapshot_partial() -> None:
            # Bytes Storage holds of uploads still under way when the flaps end: kept by a
            # resumable session, so not lost, though no part is complete yet.
            link.join()
            partial.update(partial_uploads(config, servers.storage.port))

        watcher = threading.Thread(target=watch, daemon=True)
        log_path = Path(tmp) / "sync.log"
        with log_path.open("wb") as sync_log:
            child = subprocess.Popen(
                [sys.executable, "-m", "kiosk", "sync"],
                env=sync_environment(config),
                cwd=REPO,
                stdout=sync_log,
                stderr=subprocess.STDOUT,
            )
            try:
                # The link starts flapping once the kiosk is running and has found it down
                # (its start-up time is not capacity it failed to use).
                wait_for_line(log_path, ("probing", "next try"), timeout=120)
                started = time.monotonic()
                watcher.start()
                link.start(schedule)
                threading.Thread(target=snapshot_partial, daemon=True).start()
                deadline = started + args.timeout
                while watcher.is_alive() and time.monotonic() < deadline:
                    watcher.join(timeout=0.5)
            finally:  # never leave a kiosk sync running behind a failed run
                stop.set()
                if watcher.is_alive():
                    watcher.join(timeout=10)
                link.close()
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(timeout=10)
        flaps_end = link.log.finished_at
        # The final check reads the kiosk's store: let it see what the child marked.
        store.close()
        store = CaseStore.open(config)
        result = KillLoopResult()
        check_exactly_once(store, direct, result)
        store.close()
        direct.close()
        report = summarise(
            args,
            cases,
            arrivals,
            link.log.up_intervals,
            flaps_end,
            started,
            relayed,
            sum(partial.values()),
        )
        report["exactly_once_problems"] = result.problems[:20]
        report["exactly_once"] = not result.problems and len(arrivals.cases) == len(cases)
        report["link_drops"] = link.log.drops
        report["link_drops_mid_transfer"] = link.log.drops_mid_transfer
        report["sync_log_tail"] = log_path.read_text(errors="replace").splitlines()[-5:]
    print(json.dumps(report, indent=2))
    return 0 if report["exactly_once"] else 1


def partial_uploads(config: KioskConfig, storage_port: int) -> dict[str, int]:
    """Object path -> bytes the emulator holds under each resumable session the kiosk keeps
    (asked directly, not through the link)."""
    import sqlite3
    from urllib.parse import urlsplit, urlunsplit

    import requests

    from kiosk.cases import resumable

    db = sqlite3.connect(f"file:{config.cases_db}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT object_path, uri, total FROM upload_sessions").fetchall()
    finally:
        db.close()
    held = {}
    for path, uri, total in rows:
        direct = urlunsplit(urlsplit(uri)._replace(netloc=f"127.0.0.1:{storage_port}"))
        try:
            progress = resumable.query(requests, direct, total, timeout=5)
        except Exception:  # a finished or forgotten session holds nothing partial
            continue
        if progress.done is None:
            held[path] = progress.stored
    return held


def fill_large(config: KioskConfig, n: int, side: int) -> CaseStore:
    store = CaseStore.open(config)
    result = OnDeviceResult("eczema", 0.8, {"eczema": 0.8}, False, "routine", "bench")
    for i in range(n):
        store.save_case(large_picture(side, seed=i), result)
    return store


def summarise(
    args: argparse.Namespace,
    cases: dict[str, int],
    arrivals: Arrivals,
    up_intervals: list[tuple[float, float]],
    flaps_end: float | None,
    started: float,
    relayed: list[tuple[float, int]],
    partial_held: int,
) -> dict[str, object]:
    end = flaps_end if flaps_end is not None else time.monotonic()
    last = arrivals.last()
    everything = len(arrivals.full) == len(cases)
    # While nothing is left to send, an up link is not capacity the kiosk failed to use.
    busy_until = last if everything and last is not None and last <= end else end
    up_s = sum(
        max(0.0, min(e, busy_until) - s) for s, e in up_intervals if s < min(end, busy_until)
    )
    sent_bytes = arrivals.parts(end)
    total_bytes = sum(arrivals.first_look_bytes.values()) + sum(arrivals.full_bytes.values())
    # Every byte pushed up through Storage while anything waited, cut uploads included.
    pushed = max((b for t, b in relayed if t <= busy_until), default=0)
    remaining = total_bytes - sent_bytes
    drain_s = None if last is None or flaps_end is None or last <= flaps_end else last - flaps_end
    bound = remaining / args.rate + DRAIN_SLACK_S
    return {
        "cases": len(cases),
        "side": args.side,
        "picture_bytes_total": total_bytes,
        "full_picture_bytes": sum(cases.values()),
        "first_look_bytes": sum(arrivals.first_look_bytes.values()),
        "rate_bytes_per_s": args.rate,
        "drops": args.drops,
        "seed": args.seed,
        "flaps_s": round(end - started, 1),
        "up_time_while_waiting_s": round(up_s, 1),
        "cases_sent_during_flaps": sum(t <= end for t in arrivals.cases.values()),
        "full_pictures_stored_during_flaps": sum(t <= end for t in arrivals.full.values()),
        "bytes_sent_during_flaps": sent_bytes,
        "capacity_used": round(sent_bytes / (args.rate * up_s), 3) if up_s else None,
        # ...and with the bytes Storage holds of resumable uploads still under way then.
        "partial_bytes_held_at_flaps_end": partial_held,
        "capacity_used_with_partial": (
            round((sent_bytes + partial_held) / (args.rate * up_s), 3) if up_s else None
        ),
        "bytes_relayed_while_waiting": pushed,
        "link_utilisation": round(pushed / (args.rate * up_s), 3) if up_s else None,
        "remaining_bytes_after_flaps": remaining,
        "drain_s": round(drain_s, 1) if drain_s is not None else 0.0,
        "drain_bound_s": round(bound, 1),
        "drain_within_bound": drain_s is None or drain_s <= bound,
        "cases_arrived": len(arrivals.cases),
        "full_pictures_arrived": len(arrivals.full),
    }


if __name__ == "__main__":
    sys.exit(main())
