"""Sync throughput and memory: drain N queued cases into the real emulators with the kiosk's
SyncService, against raw firebase-admin uploads of the same bytes (one Storage object and one
Firestore document per case, same concurrency), alternating the two, in one run.

    python scripts/bench_sync.py --cases 500 --rounds 2

Prints JSON: throughput of each run, the ratio ours/raw (target >= 0.8), and the process RSS
sampled while draining (flat = it does not grow with the number of cases sent).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import connect
from kiosk.cases.store import Case, CaseStore, OnDeviceResult
from kiosk.cases.sync import SyncService, case_document
from kiosk.config import KioskConfig
from kiosk.live.imaging import load_rgb
from scripts.emulators import Emulators, running_emulators

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "samples"
_PAGE = 4096


def rss_mb() -> float:
    with open("/proc/self/statm") as f:  # noqa: PTH123 - a proc file, read once
        return int(f.read().split()[1]) * _PAGE / 2**20


def fill_store(config: KioskConfig, n: int) -> CaseStore:
    pictures = [load_rgb(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    if not pictures:
        raise SystemExit(f"no sample images in {SAMPLES}")
    store = CaseStore.open(config)
    result = OnDeviceResult("eczema", 0.8, {"eczema": 0.8}, False, "routine", "bench")
    for i in range(n):
        store.save_case(pictures[i % len(pictures)], result)
    return store


def raw_upload(config: KioskConfig, store: CaseStore, concurrency: int) -> float:
    """firebase-admin with nothing of ours around it: connect, then upload, write, next.
    (Connecting is timed as it is for ours: both start from a config.)"""
    cases = store.pending_uploads()
    started = time.perf_counter()
    clients = connect(config)

    def one(case: Case) -> None:
        path = schema.case_image_path("raw-" + store.kiosk_id, case.case_id)
        data = store.image_path(case).read_bytes()
        clients.bucket.blob(path).upload_from_string(data, content_type="image/jpeg")
        clients.db.collection(schema.CASES).document(case.case_id).set(case_document(case, path))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, cases))
    rate = len(cases) / (time.perf_counter() - started)
    clients.close()
    return rate


def our_drain(config: KioskConfig, store: CaseStore) -> tuple[float, list[tuple[int, float]]]:
    service = SyncService(config, store)
    samples: list[tuple[int, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((service.status().done_this_pass, rss_mb()))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    n = len(store.pending_uploads())
    sampler.start()
    started = time.perf_counter()
    report = service.sync_once()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    # The pass can end between two samples: the last one is taken here, all cases sent.
    samples.append((service.status().done_this_pass, rss_mb()))
    service.close()
    if len(report.uploaded) != n:
        raise SystemExit(f"only {len(report.uploaded)} of {n} cases uploaded: {report.failed}")
    return n / elapsed, samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=2, help="raw/ours pairs, alternating")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    raw_rates: list[float] = []
    our_rates: list[float] = []
    memory: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, running_emulators(Path(tmp)) as servers:
        for round_no in range(args.rounds):
            for kind in ("raw", "ours"):
                servers.reset()  # the storage emulator slows as it fills: same start each run
                config = _config(servers, Path(tmp) / f"{kind}{round_no}", args.concurrency)
                store = fill_store(config, args.cases)
                if kind == "raw":
                    raw_rates.append(raw_upload(config, store, args.concurrency))
                else:
                    rate, samples = our_drain(config, store)
                    our_rates.append(rate)
                    memory.append(_memory_profile(samples, args.cases))
                store.close()
                rate = raw_rates[-1] if kind == "raw" else our_rates[-1]
                print(f"round {round_no} {kind}: {rate:.1f} cases/s", file=sys.stderr)
    ratio = statistics.median(our_rates) / statistics.median(raw_rates)
    print(
        json.dumps(
            {
                "cases": args.cases,
                "concurrency": args.concurrency,
                "raw_cases_per_s": [round(r, 1) for r in raw_rates],
                "ours_cases_per_s": [round(r, 1) for r in our_rates],
                "ratio_ours_to_raw": round(ratio, 3),
                "rss_mb_while_draining": memory,
            },
            indent=2,
        )
    )
    return 0


def _config(servers: Emulators, data_dir: Path, concurrency: int) -> KioskConfig:
    return servers.kiosk_config(data_dir, sync_concurrency=concurrency)


def _memory_profile(samples: list[tuple[int, float]], n: int) -> dict[str, float | None]:
    """RSS when 10 %, 50 % and 100 % of the cases were sent (None: no sample got there)."""
    out: dict[str, float | None] = {}
    for share in (0.1, 0.5, 1.0):
        reached = [rss for done, rss in samples if done >= share * n]
        out[f"at_{int(share * 100)}pct"] = round(reached[0], 1) if reached else None
    out["peak"] = round(max(rss for _, rss in samples), 1) if samples else None
    return out


if __name__ == "__main__":
    sys.exit(main())
