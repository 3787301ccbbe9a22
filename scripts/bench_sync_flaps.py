"""Sync on a bad rural link: a real `kiosk sync` process drains queued cases into the real
emulators through a throttled, flapping relay (tests/flapping_link.py).

    python scripts/bench_sync_flaps.py --cases 20 --rate 12000 --drops 40 --seed 1

Storage is throttled to --rate bytes/s (Firestore shares the drops but not the throttle); the
link goes up for 0.5-4 s and down for 0.5-3 s, --drops times, a third of the drops timed to
cut a transfer under way; then it stays up until the queue is empty.

Prints JSON:
- capacity_used: image bytes of the cases that reached Firestore during the flaps, over what
  the link could have carried in its up time while cases were still waiting (rate x up time,
  up to the moment the last case went, if that was before the flaps ended);
- link_utilisation: every byte sent up through the Storage relay during the flaps (requests,
  and uploads that were cut and so carried nothing in the end, included) over rate x up time;
- drain_s after the link stays up, against the remaining bytes' transfer time + 20 s;
- exactly-once: one document and one object per case, every sha256 right.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.cases.firebase import connect
from kiosk.cases.store import CaseStore
from scripts.bench_sync import fill_store
from scripts.emulators import running_emulators
from tests.flapping_link import FlappingLink, random_schedule
from tests.servers import TcpProxy, TrafficMeter
from tests.sync_faults import REPO, KillLoopResult, check_exactly_once, sync_environment

DRAIN_SLACK_S = 20.0


def watch_arrivals(
    clients: object,
    kiosk_id: str,
    expected: set[str],
    stop: threading.Event,
    meter: TrafficMeter,
    relayed: list[tuple[float, int]],
) -> dict[str, float]:
    """Case id -> when its document was first seen (read from the emulator directly, not
    through the link); `relayed` gets (time, bytes sent up through Storage so far)."""
    from tests.sync_faults import remote_case_ids

    seen: dict[str, float] = {}
    while not stop.is_set() and len(seen) < len(expected):
        now = time.monotonic()
        relayed.append((now, meter.bytes_up))
        for case_id in remote_case_ids(clients, kiosk_id) & expected:  # type: ignore[arg-type]
            seen.setdefault(case_id, now)
        stop.wait(0.1)
    return seen


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
        store = fill_store(config, args.cases)
        cases = {c.case_id: c.image_bytes for c in store.pending_uploads()}
        direct = connect(servers.kiosk_config(Path(tmp) / "direct"))
        schedule = random_schedule(args.drops, random.Random(args.seed))
        stop = threading.Event()
        arrivals: dict[str, float] = {}

        relayed: list[tuple[float, int]] = []

        def watch() -> None:
            arrivals.update(
                watch_arrivals(
                    direct, store.kiosk_id, set(cases), stop, storage_relay.meter, relayed
                )
            )

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
            # The link starts flapping once the kiosk is running and has found it down (its
            # start-up time is not capacity it failed to use).
            wait_for_line(log_path, ("probing", "next try"), timeout=120)
            started = time.monotonic()
            watcher.start()
            link.start(schedule)
            deadline = started + args.timeout
            while watcher.is_alive() and time.monotonic() < deadline:
                watcher.join(timeout=0.5)
            stop.set()
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
            args, cases, arrivals, link.log.up_intervals, flaps_end, started, relayed
        )
        report["exactly_once_problems"] = result.problems[:20]
        report["exactly_once"] = not result.problems and len(arrivals) == len(cases)
        report["link_drops"] = link.log.drops
        report["link_drops_mid_transfer"] = link.log.drops_mid_transfer
        report["sync_log_tail"] = log_path.read_text(errors="replace").splitlines()[-5:]
    print(json.dumps(report, indent=2))
    return 0 if report["exactly_once"] else 1


def summarise(
    args: argparse.Namespace,
    cases: dict[str, int],
    arrivals: dict[str, float],
    up_intervals: list[tuple[float, float]],
    flaps_end: float | None,
    started: float,
    relayed: list[tuple[float, int]],
) -> dict[str, object]:
    end = flaps_end if flaps_end is not None else time.monotonic()
    during = {c: t for c, t in arrivals.items() if t <= end}
    # While nothing is left to send, an up link is not capacity the kiosk failed to use.
    busy_until = max(during.values()) if len(during) == len(cases) else end
    up_s = sum(
        max(0.0, min(e, busy_until) - s) for s, e in up_intervals if s < min(end, busy_until)
    )
    sent_bytes = sum(cases[c] for c in during)
    # Every byte pushed up through Storage while cases waited, cut uploads included.
    pushed = max((b for t, b in relayed if t <= busy_until), default=0)
    remaining = sum(b for c, b in cases.items() if c not in during)
    last = max(arrivals.values()) if arrivals else None
    drain_s = None if last is None or flaps_end is None or remaining == 0 else last - flaps_end
    bound = remaining / args.rate + DRAIN_SLACK_S
    return {
        "cases": len(cases),
        "image_bytes_total": sum(cases.values()),
        "rate_bytes_per_s": args.rate,
        "drops": args.drops,
        "seed": args.seed,
        "flaps_s": round(end - started, 1),
        "up_time_while_waiting_s": round(up_s, 1),
        "cases_sent_during_flaps": len(during),
        "bytes_sent_during_flaps": sent_bytes,
        "capacity_used": round(sent_bytes / (args.rate * up_s), 3) if up_s else None,
        "bytes_relayed_while_waiting": pushed,
        "link_utilisation": round(pushed / (args.rate * up_s), 3) if up_s else None,
        "remaining_bytes_after_flaps": remaining,
        "drain_s": round(drain_s, 1) if drain_s is not None else 0.0,
        "drain_bound_s": round(bound, 1),
        "drain_within_bound": drain_s is None or drain_s <= bound,
        "cases_arrived": len(arrivals),
    }


if __name__ == "__main__":
    sys.exit(main())
