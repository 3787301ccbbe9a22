"""The SD card wears with every write: what every sync pass records for `kiosk status` (the
rejected model releases, the link's stability) is written only when it changed.

Real store and real files: writes are counted as SQLite counts them (the connection's
total_changes) and as the file system shows them (a rewrite is a new inode: temp + rename).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cloud.release import generate_signing_key
from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.link import UNSTABLE_WINDOW_S
from kiosk.cases.model_updates import REJECTED_FILE, ModelUpdater, rejected_releases
from kiosk.cases.store import CaseStore, utc_now
from kiosk.cases.sync import LINK_KEY, SyncService, stored_link_status
from kiosk.config import KioskConfig
from tests.cases.test_model_updates import fake_release


def unsigned_release(cloud: FirebaseClients, version: str) -> None:
    """A release document anyone with a Firestore credential could write: rejected."""
    fake_release(cloud, version, f"{version.replace('.', '-')}T00:00:00+00:00")


def written(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_rejected_releases_are_written_only_when_the_list_changes(
    kiosk_config: KioskConfig, cloud: FirebaseClients, tmp_path: Path
) -> None:
    config = replace(kiosk_config, model_public_key=generate_signing_key(tmp_path / "key.pem"))
    updater = ModelUpdater(config)
    path = config.models_dir / REJECTED_FILE
    assert updater.check(cloud).rejected_releases == ()
    assert not path.exists(), "nothing rejected, nothing written"

    unsigned_release(cloud, "2099.12.31")
    assert updater.check(cloud).rejected
    first = written(path)
    assert [r.version for r in rejected_releases(config.models_dir)] == ["2099.12.31"]
    updater.check(cloud)  # the same release, not downloaded again: the same list
    ModelUpdater(config).check(cloud)  # after a restart: checked again, the same reason
    assert written(path) == first, "rejected.json was rewritten with the same content"

    unsigned_release(cloud, "2099.12.30")
    updater.check(cloud)
    assert written(path) != first
    assert [r.version for r in rejected_releases(config.models_dir)] == [
        "2099.12.31",
        "2099.12.30",
    ]


@pytest.fixture
def service(tmp_path: Path):
    config = KioskConfig(data_dir=tmp_path, kiosk_id="k", min_free_mb=0)
    store = CaseStore.open(config)
    service = SyncService(config, store)
    yield service
    service.close()
    store.close()


def writes(store: CaseStore) -> int:
    """Rows SQLite has written through the store's connection (an upsert of the same value
    counts: it is a commit and an fsync all the same)."""
    return store._db.total_changes


def age_link_row(store: CaseStore, seconds: float) -> None:
    """As if the sync process had written the row `seconds` ago."""
    row = json.loads(store.get_value(LINK_KEY) or "{}")
    at = utc_now() - timedelta(seconds=seconds)
    store.set_value(LINK_KEY, json.dumps({**row, "at": at.isoformat()}))


def test_the_link_row_is_written_when_the_link_changes_not_on_every_pass(service) -> None:
    store = service.store
    service._publish_link()
    first = store.get_value(LINK_KEY)
    assert first is not None and json.loads(first)["unstable"] is False
    before = writes(store)
    service._publish_link()
    service._publish_link()
    assert writes(store) == before, "the same link row was written again"
    assert store.get_value(LINK_KEY) == first

    service._link.dropped()
    service._link.dropped()  # two drops within minutes: unstable, the row changes
    service._publish_link()
    assert writes(store) == before + 1
    assert stored_link_status(store)["unstable"] is True
    service._publish_link()
    assert writes(store) == before + 1


def test_an_unchanged_unstable_row_is_refreshed_before_kiosk_status_would_call_it_steady(
    service,
) -> None:
    store = service.store
    service._link.dropped()
    service._link.dropped()
    service._publish_link()

    age_link_row(store, UNSTABLE_WINDOW_S * 0.4)  # fresh enough: left alone
    before = writes(store)
    service._publish_link()
    assert writes(store) == before

    age_link_row(store, UNSTABLE_WINDOW_S * 0.6)  # would soon read as steady: rewritten
    before = writes(store)
    service._publish_link()
    assert writes(store) == before + 1
    row = json.loads(store.get_value(LINK_KEY) or "{}")
    assert utc_now() - datetime.fromisoformat(row["at"]) < timedelta(seconds=60)
    assert stored_link_status(store)["unstable"] is True


def test_an_unchanged_steady_row_is_not_refreshed_for_its_age(service) -> None:
    """An old steady row reads as steady, which is what it says: no need to write it."""
    store = service.store
    service._publish_link()
    age_link_row(store, UNSTABLE_WINDOW_S * 2)
    before = writes(store)
    service._publish_link()
    assert writes(store) == before
    assert stored_link_status(store)["unstable"] is False
