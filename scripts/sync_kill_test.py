"""The long SIGKILL run: `kiosk sync --once` killed at random moments many times against the
real emulators, then one full pass; prints whether every case ended as exactly one document and
one object (bytes identical) and every message exactly once.

    python scripts/sync_kill_test.py --kills 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.cases.firebase import connect
from kiosk.cases.store import CaseStore
from scripts.emulators import running_emulators
from tests.sync_faults import add_cases, check_exactly_once, run_kill_loop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=200, help="processes to kill")
    ap.add_argument("--initial-cases", type=int, default=50)
    ap.add_argument("--new-cases-per-round", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, running_emulators(Path(tmp)) as servers:
        config = servers.kiosk_config(Path(tmp) / "kiosk")
        store = CaseStore.open(config)
        add_cases(store, np.random.default_rng(args.seed), args.initial_cases)
        clients = connect(config)
        result = run_kill_loop(
            config,
            store,
            clients,
            kills=args.kills,
            seed=args.seed,
            new_cases_per_round=args.new_cases_per_round,
        )
        check_exactly_once(store, clients, result)
        clients.close()
        store.close()
    summary = {
        "rounds": result.rounds,
        "kills": result.kills,
        "kills_mid_queue": result.kills_mid_queue,
        "kills_between_send_and_mark": result.kills_between_send_and_mark,
        "cases": result.cases,
        "messages": result.messages,
        "problems": result.problems[:20],
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    print(json.dumps(summary, indent=2))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
