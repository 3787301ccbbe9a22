"""`kiosk sync --once` killed with SIGKILL at random moments (12 times here; the long run is
scripts/sync_kill_test.py): still exactly one document and one object per case."""

from __future__ import annotations

from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.store import CaseStore
from kiosk.config import KioskConfig
from tests.sync_faults import add_cases, check_exactly_once, run_kill_loop


def test_sync_killed_at_random_moments_ends_exactly_once(
    kiosk_config: KioskConfig, cloud: FirebaseClients
) -> None:
    import numpy as np

    store = CaseStore.open(kiosk_config)
    add_cases(store, np.random.default_rng(99), 20)
    result = run_kill_loop(kiosk_config, store, cloud, kills=10, seed=7, new_cases_per_round=8)
    check_exactly_once(store, cloud, result)
    store.close()
    assert result.problems == []
    assert result.kills >= 10
    assert result.kills_mid_queue >= 1, "at least one kill must land while cases were uploading"
    assert result.cases == 20 + result.rounds * 8
    assert result.messages >= 10, "messages must be in flight during the kills too"
