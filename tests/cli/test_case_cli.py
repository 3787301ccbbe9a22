"""`kiosk case add`, `cases`, `sync --once`, `status` as real processes against the emulators."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from kiosk.cases.firebase import FirebaseClients
from kiosk.config import KioskConfig
from tests.kiosk_cli import run_kiosk
from tests.sync_faults import sync_environment

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def kiosk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kiosk(*args, env=env)


def test_case_add_list_sync_status(kiosk_config: KioskConfig, cloud: FirebaseClients) -> None:
    env = sync_environment(kiosk_config)
    sample = sorted(SAMPLES.glob("*.jpg"))[0]
    added = kiosk(
        env, "case", "add", str(sample), "--patient", "CARD 12", "--site", "arm", "--json"
    )
    assert added.returncode == 0, added.stderr
    case = json.loads(added.stdout)
    assert case["status"] == "saved"
    assert "CARD" not in added.stdout, "patient references stay out of CLI output"

    noted = kiosk(env, "case", "note", case["case_id"], "Bleeds sometimes")
    assert noted.returncode == 0, noted.stderr

    bad = Path(kiosk_config.data_dir).parent / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    failed = kiosk(env, "case", "add", str(bad))
    assert failed.returncode == 1
    assert "broken.jpg" in failed.stderr

    listed = kiosk(env, "cases", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["case_id"] for r in rows] == [case["case_id"]], "the broken file saved nothing"

    status = json.loads(kiosk(env, "status", "--json").stdout)
    assert status["online"] is True
    assert status["queue_depth"] == 2  # the case and its note
    assert status["last_sync"] is None

    synced = kiosk(env, "sync", "--once", "--json")
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert report["uploaded"] == 1
    assert report["messages_sent"] == 1
    assert "CARD" not in synced.stderr, "no patient data in logs"
    assert cloud.db.collection("cases").document(case["case_id"]).get().exists

    status = json.loads(kiosk(env, "status", "--json").stdout)
    assert status["queue_depth"] == 0
    assert status["last_sync"] is not None
    assert status["cases"]["uploaded"] == 1
    assert status["model_version"]
    assert case["model_version"] == status["model_version"], "case add ran the running model"
    assert status["unverified_items"] == 0

    # Nothing reviewed yet: the inbox says so, and its JSON form has no lines.
    inbox = kiosk(env, "inbox")
    assert inbox.returncode == 0 and inbox.stdout.strip() == "no reviews or messages"
    assert kiosk(env, "inbox", "--json").stdout == ""


def test_sync_offline_keeps_the_queue_and_says_so(tmp_path: Path) -> None:
    from tests.servers import free_port

    port = free_port()
    config = KioskConfig(
        data_dir=tmp_path / "k",
        kiosk_id="k-offline",
        firestore_emulator_host=f"127.0.0.1:{port}",
        storage_emulator_host=f"http://127.0.0.1:{port}",
    )
    env = sync_environment(config)
    sample = sorted(SAMPLES.glob("*.jpg"))[0]
    assert kiosk(env, "case", "add", str(sample)).returncode == 0
    synced = kiosk(env, "sync", "--once")
    assert synced.returncode == 1
    assert "offline" in synced.stderr
    assert "1 item(s) stay queued" in synced.stderr
    status = json.loads(kiosk(env, "status", "--json").stdout)
    assert status["online"] is False
    assert status["queue_depth"] == 1


def test_sync_refuses_a_credentials_file_others_can_read(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text("{}")
    key.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if "EMULATOR_HOST" not in k}
    env.update(
        {
            "SKINSCAN_DATA_DIR": str(tmp_path / "k"),
            "SKINSCAN_CREDENTIALS": str(key),
            "PYTHONPATH": str(Path.cwd()),
        }
    )
    synced = kiosk(env, "sync", "--once")
    assert synced.returncode == 2
    assert "readable by group or others" in synced.stderr
    assert "chmod 600" in synced.stderr
