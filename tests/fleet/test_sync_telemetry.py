"""A real `kiosk sync` process with MQTT configured: its state carries the queue, the
connection and the count of reviews kept aside as unverified, `sync_now` starts a pass at once,
and nothing in the payloads names a patient."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np

from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.store import CaseStore
from kiosk.config import KioskConfig
from tests.fleet.test_mqtt import assert_no_patient_data
from tests.mqtt_broker import Broker, Recorder, publish
from tests.sync_faults import REPO, add_cases, sync_environment


def test_sync_process_publishes_its_state_and_obeys_sync_now(
    kiosk_config: KioskConfig, mqtt_broker: Broker, cloud: FirebaseClients
) -> None:
    from google.cloud.firestore import SERVER_TIMESTAMP

    store = CaseStore.open(kiosk_config)
    env = sync_environment(kiosk_config)
    # Passes every 10 minutes: only sync_now can make the second one happen in time.
    env.update(
        {
            "SKINSCAN_MQTT_HOST": "127.0.0.1",
            "SKINSCAN_MQTT_PORT": str(mqtt_broker.port),
            "SKINSCAN_SYNC_INTERVAL_S": "600",
        }
    )
    base = f"skinscan/{kiosk_config.kiosk_id}/sync"
    recorder = Recorder(mqtt_broker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "sync"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        first = recorder.wait_for(
            lambda m: m.topic == f"{base}/state" and m.json().get("online") is True,
            timeout=60,
        ).json()
        assert first["queue_depth"] == 0
        assert first["unverified_items"] == 0
        case_ids = add_cases(store, np.random.default_rng(3), 2)
        seen = len(recorder.messages)
        publish(mqtt_broker, f"{base}/cmd/sync_now", json.dumps({"id": "now-1"}))
        answer = recorder.wait_for(
            lambda m: m.topic == f"{base}/cmd_result" and m.json()["id"] == "now-1", timeout=30
        ).json()
        assert answer["ok"] is True, answer
        after_sync = recorder.wait_for(
            lambda m: (
                m.topic == f"{base}/state"
                and m.json().get("queue_depth") == 0
                and m.json().get("last_sync") != first["last_sync"]
            ),
            timeout=60,
            after=seen,
        ).json()
        assert after_sync["online"] is True
        assert store.counts()["uploaded"] == 2

        # An unsigned "review" (what any Firestore credential can write) is counted, not shown.
        # The running listener may bring it in before the write call returns: count from here.
        seen = len(recorder.messages)
        cloud.db.collection(schema.CASES).document(case_ids[0]).update(
            {
                "status": schema.STATUS_REVIEWED,
                "review": {"label": "other", "recommendation": "Benign.", "reviewer": "X"},
                "updated_at": SERVER_TIMESTAMP,
            }
        )
        # And a release document nobody signed: reported in the state, not installed.
        cloud.db.collection(schema.MODEL_RELEASES).document("2099.12.31").set(
            {"version": "2099.12.31", "published_at": "2099-12-31T00:00:00+00:00"}
        )
        publish(mqtt_broker, f"{base}/cmd/sync_now", json.dumps({"id": "now-2"}))
        flagged = recorder.wait_for(
            lambda m: (
                m.topic == f"{base}/state"
                and m.json().get("unverified_items") == 1
                and (m.json().get("model_rejected") or "").startswith("2099.12.31: ")
            ),
            timeout=60,
            after=seen,
        ).json()
        assert flagged["online"] is True
        assert store.get(case_ids[0]).review is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        store.close()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    assert_no_patient_data(recorder.messages)
    recorder.close()
