"""Which model runs, as real `kiosk` processes: classify, case add, scan and status use the
installed release and say so; status reports a model that cannot load and what runs instead;
`kiosk model rollback` pins and `unpin` lifts it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from cloud.release import generate_signing_key, publish_release
from kiosk.cases.firebase import FirebaseClients
from kiosk.config import KioskConfig
from kiosk.model.classifier import default_metadata_path, load_metadata
from tests.kiosk_cli import run_kiosk
from tests.sync_faults import sync_environment

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SHIPPED = default_metadata_path()


def kiosk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kiosk(*args, env=env)


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_commands_run_the_installed_release_and_status_says_which(
    kiosk_config: KioskConfig, cloud: FirebaseClients, tmp_path: Path
) -> None:
    public = generate_signing_key(tmp_path / "release.pem")
    env = sync_environment(kiosk_config) | {"SKINSCAN_MODEL_PUBLIC_KEY": public}
    shipped = load_metadata(SHIPPED).version
    sample = str(sorted(SAMPLES.glob("*.jpg"))[0])
    publish_release(cloud.db, cloud.bucket, SHIPPED, tmp_path / "release.pem", version="2099.05.01")
    assert json_out(kiosk(env, "sync", "--once", "--json"))["model_installed"] == "2099.05.01"

    row = json_out(kiosk(env, "classify", "--json", sample))
    assert row["model_version"] == "2099.05.01"
    assert {"file", "label", "confidence", "urgency"} <= row.keys()
    assert json_out(kiosk(env, "case", "add", sample, "--json"))["model_version"] == "2099.05.01"
    scan = json_out(kiosk(env, "scan", "--headless", "--source", "demo", "--frames", "3"))
    assert scan["summary"]["model_version"] == "2099.05.01"
    status = json_out(kiosk(env, "status", "--json"))
    assert status["model_version"] == "2099.05.01"
    assert status["model"]["running"]["source"] == "release"
    assert status["model"]["problems"] == [] and status["model"]["rejected"] == []

    # Rollback to the shipped model, pinned; status says so; unpin lifts it.
    rolled = kiosk(env, "model", "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "pinned" in rolled.stdout
    text = kiosk(env, "status")
    assert f"model          {shipped} (shipped)" in text.stdout
    assert "rolled back from 2099.05.01" in text.stdout
    assert json_out(kiosk(env, "sync", "--once", "--json"))["model_installed"] is None
    assert json_out(kiosk(env, "classify", "--json", sample))["model_version"] == shipped
    unpinned = kiosk(env, "model", "unpin")
    assert unpinned.returncode == 0 and "2099.05.01" in unpinned.stdout
    assert json_out(kiosk(env, "status", "--json"))["model"]["pinned"] is None
    assert json_out(kiosk(env, "sync", "--once", "--json"))["model_installed"] == "2099.05.01"

    # The installed model file damaged on disk: it cannot load, the shipped model runs, and
    # status says both (not the installed version it would have read from the metadata).
    model_file = next((kiosk_config.models_dir / "2099.05.01").glob("*.tflite"))
    model_file.write_bytes(b"\0" * model_file.stat().st_size)
    status = json_out(kiosk(env, "status", "--json"))
    assert status["model_version"] == shipped
    assert status["model"]["running"]["source"] == "shipped"
    [problem] = status["model"]["problems"]
    assert problem.startswith("installed release 2099.05.01 does not load")
    assert "sha256" in problem
    assert json_out(kiosk(env, "classify", "--json", sample))["model_version"] == shipped
    assert "does not load" in kiosk(env, "status").stdout

    # A model named in the config is used as it is or not at all: status says it cannot load.
    configured = env | {"SKINSCAN_MODEL": str(model_file.with_name("skinscan.json"))}
    status = json_out(kiosk(configured, "status", "--json"))
    assert status["model"]["running"] is None
    assert status["model_version"].startswith("unusable: the configured model cannot load")
    broken = kiosk(configured, "classify", "--json", sample)
    assert broken.returncode == 2 and broken.stderr.startswith("kiosk: error: ")


def test_status_says_a_float_model_in_the_int8_slot_cannot_load(tmp_path: Path) -> None:
    """Issue 12: the float model under the int8 entry, its sha256 and size matching, was
    accepted and its version reported; now status says it cannot load and nothing runs."""
    import shutil

    wrong = tmp_path / "model"
    wrong.mkdir()
    shutil.copy(SHIPPED.with_name("skinscan_float.tflite"), wrong / "skinscan_float.tflite")
    metadata = json.loads(SHIPPED.read_text(encoding="utf-8"))
    float_file = metadata["files"]["float"]
    metadata["files"] = {
        "int8": {
            **metadata["files"]["int8"],  # says full integer, uint8 input and output
            **{k: float_file[k] for k in ("path", "sha256", "bytes")},
        }
    }
    (wrong / "skinscan.json").write_text(json.dumps(metadata), encoding="utf-8")
    env = sync_environment(KioskConfig(data_dir=tmp_path / "kiosk", kiosk_id="k-wrong"))
    env["SKINSCAN_MODEL"] = str(wrong / "skinscan.json")
    status = json_out(kiosk(env, "status", "--json"))
    assert status["model"]["running"] is None
    assert status["model_version"].startswith("unusable: the configured model cannot load")
    assert load_metadata(SHIPPED).version not in status["model_version"].split(":")[0]
    text = kiosk(env, "status")
    assert "model          none: the configured model cannot load" in text.stdout
