"""Fleet telemetry against a real Mosquitto: retained availability and state, commands, events,
last will on SIGKILL of a real kiosk process, reconnect after a broker restart, TLS with a
password, Home Assistant discovery, and no patient data in anything published."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.config import KioskConfig, MqttConfig
from kiosk.fleet.mqtt import COMMANDS, Telemetry, TelemetryError, TelemetryState
from kiosk.fleet.topics import topics_for
from tests.mqtt_broker import HOST, Broker, Recorder, free_port, publish

REPO = Path(__file__).resolve().parents[2]
KIOSK_ID = "kiosk-test-01"
BASE = f"skinscan/{KIOSK_ID}"


def config_for(broker_port: int, tmp_path: Path, **mqtt: object) -> KioskConfig:
    return KioskConfig(
        data_dir=tmp_path / "data",
        kiosk_id=KIOSK_ID,
        mqtt=MqttConfig(host=HOST, port=broker_port, **mqtt),
    )


class StateBox:
    """A state provider whose answer a test changes."""

    def __init__(self, **fields: object) -> None:
        self.state = TelemetryState(app_version="0.1.0", model_version="m-1", **fields)
        self.calls = 0

    def __call__(self) -> TelemetryState:
        self.calls += 1
        return self.state


@pytest.fixture
def recorder(mqtt_broker: Broker):
    rec = Recorder(mqtt_broker)
    yield rec
    rec.close()


def is_online(m) -> bool:
    return m.topic == f"{BASE}/availability" and m.text == "online"


def test_retained_availability_and_state_and_clean_offline(mqtt_broker, tmp_path):
    box = StateBox(queue_depth=3, online=False, camera="live", fps=14.96)
    telemetry = Telemetry(config_for(mqtt_broker.port, tmp_path), box, poll_s=0.1).start()
    try:
        first = Recorder(mqtt_broker)  # subscribes after the kiosk published
        first.wait_for(lambda m: m.topic == f"{BASE}/state")
        first.close()
        # Both are retained: a dashboard that connects later sees them at once.
        late = Recorder(mqtt_broker)
        avail = late.wait_for(lambda m: m.topic == f"{BASE}/availability")
        state = late.wait_for(lambda m: m.topic == f"{BASE}/state")
        assert (avail.text, avail.retain) == ("online", True)
        assert state.retain
        body = state.json()
        assert body["queue_depth"] == 3 and body["online"] is False
        assert body["camera"] == "live" and body["fps"] == 15.0
        assert body["model_version"] == "m-1" and body["app_version"] == "0.1.0"
        assert body["last_sync"] is None and body["errors"] == []
        assert isinstance(body["uptime_s"], int)

        # Unchanged state is not republished at every poll...
        polls = box.calls
        count = len(late.on(f"{BASE}/state"))
        time.sleep(0.6)
        assert box.calls > polls + 2, "the provider is polled"
        assert len(late.on(f"{BASE}/state")) == count
        # ...a change is.
        synced = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
        box.state = TelemetryState(queue_depth=0, online=True, last_sync=synced)
        changed = late.wait_for(
            lambda m: m.topic == f"{BASE}/state" and m.json()["queue_depth"] == 0
        )
        assert changed.json()["last_sync"] == "2026-11-20T08:30:00+00:00"
        assert changed.json()["online"] is True
    finally:
        telemetry.stop()
    after = Recorder(mqtt_broker)
    gone = after.wait_for(lambda m: m.topic == f"{BASE}/availability")
    assert (gone.text, gone.retain) == ("offline", True)
    after.close()
    late.close()


def test_commands_run_from_allow_list_and_others_refused(mqtt_broker, recorder, tmp_path):
    # A command left retained must not run at every boot.
    publish(mqtt_broker, f"{BASE}/cmd/sync_now", "{}", retain=True)
    ran = threading.Event()
    telemetry = Telemetry(config_for(mqtt_broker.port, tmp_path), poll_s=0.2)
    telemetry.on_command("sync_now", lambda: ran.set() or "sync started")
    with pytest.raises(ValueError, match="unknown command"):
        telemetry.on_command("reboot", lambda: None)
    telemetry.start()
    try:
        recorder.wait_for(is_online)
        time.sleep(0.3)
        assert not ran.is_set(), "a retained command ran"
        publish(mqtt_broker, f"{BASE}/cmd/sync_now", "", retain=True)  # clear it

        publish(mqtt_broker, f"{BASE}/cmd/sync_now", json.dumps({"id": "req-1"}))
        result = recorder.wait_for(
            lambda m: m.topic == f"{BASE}/cmd_result" and m.json()["id"] == "req-1"
        ).json()
        assert ran.is_set()
        assert result["ok"] is True and result["message"] == "sync started"
        assert result["command"] == "sync_now"

        publish(mqtt_broker, f"{BASE}/cmd/reboot", json.dumps({"id": "req-2"}))
        refused = recorder.wait_for(
            lambda m: m.topic == f"{BASE}/cmd_result" and m.json()["id"] == "req-2"
        ).json()
        assert refused["ok"] is False and "unknown command" in refused["message"]

        # Allowed, but nobody in this process registered it.
        publish(mqtt_broker, f"{BASE}/cmd/reload_model", json.dumps({"id": "req-3"}))
        unregistered = recorder.wait_for(
            lambda m: m.topic == f"{BASE}/cmd_result" and m.json()["id"] == "req-3"
        ).json()
        assert unregistered["ok"] is False and "not available" in unregistered["message"]
        assert not any(m.retain for m in recorder.on(f"{BASE}/cmd_result"))
    finally:
        telemetry.stop()


def test_failing_handler_reports_failure_without_details(mqtt_broker, recorder, tmp_path):
    telemetry = Telemetry(config_for(mqtt_broker.port, tmp_path), poll_s=0.2)

    def broken() -> str:
        raise OSError("/var/lib/skinscan/images/patient-123.jpg: no space")

    telemetry.on_command("restart_camera", broken)
    with telemetry:
        recorder.wait_for(is_online)
        publish(mqtt_broker, f"{BASE}/cmd/restart_camera", "{}")
        result = recorder.wait_for(lambda m: m.topic == f"{BASE}/cmd_result").json()
        assert result == result | {"ok": False, "message": "failed: OSError"}
        # Still working after the failure.
        publish(mqtt_broker, f"{BASE}/cmd/sync_now", json.dumps({"id": "after"}))
        recorder.wait_for(lambda m: m.topic == f"{BASE}/cmd_result" and m.json()["id"] == "after")
    assert all(b"patient" not in m.payload for m in recorder.messages)


def test_events_carry_class_counts_only(mqtt_broker, recorder, tmp_path):
    telemetry = Telemetry(config_for(mqtt_broker.port, tmp_path), poll_s=0.2)
    with telemetry:
        recorder.wait_for(is_online)
        telemetry.publish_event({"melanoma": 1, "acne": 2, "total": 3})
        event = recorder.wait_for(lambda m: m.topic == f"{BASE}/events")
        assert not event.retain
        body = event.json()
        assert body["kind"] == "verdicts"
        assert body["counts"] == {"melanoma": 1, "acne": 2, "total": 3}
        assert set(body) == {"kind", "counts", "at"}
        for bad in ({"Jane Doe": 1}, {"melanoma": -1}, {"melanoma": True}, {"acne": 1.5}):
            with pytest.raises(ValueError):
                telemetry.publish_event(bad)
        with pytest.raises(ValueError):
            telemetry.publish_event({"acne": 1}, kind="patient Jane")
    assert len(recorder.on(f"{BASE}/events")) == 1


def test_reconnects_after_broker_restart_and_republishes_state(mqtt_broker, tmp_path):
    box = StateBox(queue_depth=5)
    telemetry = Telemetry(
        config_for(mqtt_broker.port, tmp_path), box, poll_s=0.1, reconnect_max_s=1
    ).start()
    try:
        rec = Recorder(mqtt_broker)
        rec.wait_for(lambda m: m.topic == f"{BASE}/state")
        rec.close()
        mqtt_broker.stop()  # persistence is off: the restarted broker has no retained messages
        deadline = time.monotonic() + 10
        while telemetry.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not telemetry.connected
        box.state = TelemetryState(queue_depth=7)  # changed while the broker was away
        t0 = time.perf_counter()
        telemetry.publish_event({"acne": 1})  # dropped, but must not block
        assert time.perf_counter() - t0 < 0.05
        mqtt_broker.start()
        back = Recorder(mqtt_broker)
        avail = back.wait_for(lambda m: m.topic == f"{BASE}/availability", timeout=15)
        state = back.wait_for(lambda m: m.topic == f"{BASE}/state", timeout=15)
        assert avail.text == "online"
        assert state.json()["queue_depth"] == 7
        back.close()
    finally:
        telemetry.stop()


def test_dead_broker_never_blocks_the_caller(tmp_path):
    config = config_for(free_port(), tmp_path)  # nothing listens there
    telemetry = Telemetry(config, StateBox(), poll_s=0.05, reconnect_max_s=1)
    telemetry.on_command("sync_now", lambda: None)
    t0 = time.perf_counter()
    telemetry.start()
    for _ in range(1000):
        telemetry.publish_event({"acne": 1, "total": 1})
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, f"start + 1000 events took {elapsed:.3f} s with no broker"
    time.sleep(1.5)  # a few reconnect attempts
    assert not telemetry.connected
    t0 = time.perf_counter()
    telemetry.stop()
    assert time.perf_counter() - t0 < 5


def test_unresolvable_host_never_blocks(tmp_path):
    config = KioskConfig(kiosk_id=KIOSK_ID, mqtt=MqttConfig(host="mqtt.skinscan.invalid"))
    t0 = time.perf_counter()
    telemetry = Telemetry(config).start()
    telemetry.publish_event({"total": 0})
    assert time.perf_counter() - t0 < 0.5
    telemetry.stop()


def test_password_and_tls(tmp_path):
    broker = Broker(tmp_path / "secure", users={"kiosk-01": "s3cret"}, tls=True).start()
    try:
        rec = Recorder(broker, username="kiosk-01", password="s3cret")
        good = config_for(
            broker.port, tmp_path, tls=True, ca_file=broker.ca_file,
            username="kiosk-01", password="s3cret",
        )  # fmt: skip
        with Telemetry(good, StateBox(queue_depth=1), poll_s=0.1):
            rec.wait_for(is_online)
            assert rec.wait_for(lambda m: m.topic == f"{BASE}/state").json()["queue_depth"] == 1

        bad = config_for(
            broker.port, tmp_path, tls=True, ca_file=broker.ca_file,
            username="kiosk-01", password="wrong",
        )  # fmt: skip
        telemetry = Telemetry(bad, poll_s=0.1, reconnect_max_s=1).start()
        time.sleep(1.5)
        assert not telemetry.connected
        telemetry.stop()

        # TLS is not optional once asked for: a broker certificate from another CA is refused.
        other_ca = tmp_path / "other-ca.pem"
        other_ca.write_bytes((tmp_path / "secure" / "server.crt").read_bytes())
        wrong_ca = config_for(
            broker.port, tmp_path, tls=True, ca_file=other_ca,
            username="kiosk-01", password="s3cret",
        )  # fmt: skip
        telemetry = Telemetry(wrong_ca, poll_s=0.1, reconnect_max_s=1).start()
        time.sleep(1.5)
        assert not telemetry.connected
        telemetry.stop()
        rec.close()
    finally:
        broker.stop()
    assert "s3cret" not in broker.log()


def test_missing_ca_file_is_a_telemetry_error(tmp_path):
    config = config_for(1883, tmp_path, tls=True, ca_file=tmp_path / "absent.pem")
    with pytest.raises(TelemetryError, match="TLS"):
        Telemetry(config)


def test_home_assistant_discovery(mqtt_broker, tmp_path):
    config = config_for(mqtt_broker.port, tmp_path, discovery=True)
    with Telemetry(config, StateBox(), poll_s=0.2):
        first = Recorder(mqtt_broker)
        first.wait_for(lambda m: m.topic == f"{BASE}/state")  # discovery went out before it
        first.close()
        rec = Recorder(mqtt_broker, "homeassistant/#")  # so it gets the retained copies
        node = "skinscan_kiosk-test-01"
        queue = rec.wait_for(lambda m: m.topic == f"homeassistant/sensor/{node}/queue_depth/config")
        button = rec.wait_for(lambda m: m.topic == f"homeassistant/button/{node}/sync_now/config")
        rec.close()
    assert queue.retain and button.retain
    sensor = queue.json()
    assert sensor["state_topic"] == f"{BASE}/state"
    assert sensor["value_template"] == "{{ value_json.queue_depth }}"
    assert sensor["availability_topic"] == f"{BASE}/availability"
    assert sensor["device"]["identifiers"] == [node]
    assert button.json()["command_topic"] == f"{BASE}/cmd/sync_now"


def test_second_component_has_its_own_topics(tmp_path):
    config = KioskConfig(kiosk_id=KIOSK_ID, mqtt=MqttConfig(host=HOST, topic_prefix="fleet/"))
    assert topics_for(config).availability == f"fleet/{KIOSK_ID}/availability"
    assert topics_for(config, "sync").availability == f"fleet/{KIOSK_ID}/sync/availability"
    assert topics_for(config).cmd("sync_now") == f"fleet/{KIOSK_ID}/cmd/sync_now"
    with pytest.raises(TelemetryError):
        Telemetry(config, component="../x")
    with pytest.raises(TelemetryError, match="not configured"):
        Telemetry(KioskConfig(kiosk_id=KIOSK_ID))


# --------------------------------------------------------------------------- a real kiosk


ALLOWED_STATE_KEYS = {
    "app_version", "model_version", "queue_depth", "last_sync", "online", "fps", "camera",
    "errors", "uptime_s", "component",
    "unverified_items", "model_rejected",  # a count; release versions and reasons
}  # fmt: skip


def assert_no_patient_data(messages) -> None:
    """Everything a kiosk publishes: small, and only the shapes this module defines."""
    for m in messages:
        assert len(m.payload) < 4096, f"{m.topic}: {len(m.payload)} bytes"
        assert not m.payload.startswith(b"\xff\xd8"), f"{m.topic}: an image"
        if m.topic.endswith("/availability"):
            assert m.text in ("online", "offline")
        elif m.topic.endswith("/state"):
            assert set(m.json()) <= ALLOWED_STATE_KEYS, m.json()
        elif m.topic.endswith("/events"):
            body = m.json()
            assert set(body) == {"kind", "counts", "at"}
            assert all(isinstance(v, int) for v in body["counts"].values())
        elif m.topic.endswith("/cmd_result"):
            assert set(m.json()) == {"command", "id", "ok", "message", "at"}


def start_kiosk(broker: Broker, tmp_path: Path) -> subprocess.Popen:
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nkiosk_id = "{KIOSK_ID}"\n'
        f'[mqtt]\nhost = "{HOST}"\nport = {broker.port}\n'
    )
    env = dict(os.environ, SKINSCAN_MQTT_KEEPALIVE_S="5", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "kiosk", "scan", "--headless", "--source", "demo",
           "--config", str(config)]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_real_kiosk_publishes_then_last_will_on_sigkill(mqtt_broker, recorder, tmp_path):
    proc = start_kiosk(mqtt_broker, tmp_path)
    try:
        recorder.wait_for(is_online, timeout=60)
        state = recorder.wait_for(
            lambda m: m.topic == f"{BASE}/state" and m.json()["camera"] == "live", timeout=30
        ).json()
        assert state["model_version"] and state["app_version"]
        assert state["component"] == "kiosk"
        # The demo clip settles on verdicts: counted by class, published as events.
        event = recorder.wait_for(lambda m: m.topic == f"{BASE}/events", timeout=60).json()
        assert event["counts"]["total"] >= 1

        mark = len(recorder.messages)
        publish(mqtt_broker, f"{BASE}/cmd/restart_camera", json.dumps({"id": "cam"}))
        result = recorder.wait_for(lambda m: m.topic == f"{BASE}/cmd_result", after=mark).json()
        assert result["ok"] is True and result["id"] == "cam"
        publish(mqtt_broker, f"{BASE}/cmd/sync_now", json.dumps({"id": "sync"}))
        refused = recorder.wait_for(
            lambda m: m.topic == f"{BASE}/cmd_result" and m.json()["id"] == "sync"
        ).json()
        assert refused["ok"] is False  # `kiosk scan` does not sync

        mark = len(recorder.messages)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        will = recorder.wait_for(
            lambda m: m.topic == f"{BASE}/availability", after=mark, timeout=15
        )
        assert will.text == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    late = Recorder(mqtt_broker)
    retained = late.wait_for(lambda m: m.topic == f"{BASE}/availability")
    assert retained.text == "offline" and retained.retain
    late.close()
    assert_no_patient_data(recorder.messages)
    assert "Traceback" not in stderr, stderr


def test_real_kiosk_says_offline_on_sigterm(mqtt_broker, recorder, tmp_path):
    proc = start_kiosk(mqtt_broker, tmp_path)
    try:
        recorder.wait_for(is_online, timeout=60)
        mark = len(recorder.messages)
        proc.send_signal(signal.SIGTERM)  # how systemd stops the service
        assert proc.wait(timeout=20) == 0
        gone = recorder.wait_for(lambda m: m.topic == f"{BASE}/availability", after=mark)
        assert gone.text == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_commands_allow_list_is_the_documented_one():
    assert COMMANDS == ("sync_now", "reload_model", "restart_camera")


@pytest.mark.parametrize(
    "mqtt_env",
    [
        {"SKINSCAN_MQTT_PORT": "0"},  # replaced by a port where nothing listens
        {"SKINSCAN_MQTT_TLS": "true", "SKINSCAN_MQTT_CA_FILE": "/nonexistent/ca.pem"},
    ],
    ids=["dead-broker", "bad-tls-file"],
)
def test_kiosk_scans_on_when_telemetry_cannot_work(tmp_path, mqtt_env):
    env = dict(os.environ, PYTHONPATH=str(REPO), SKINSCAN_MQTT_HOST=HOST, **mqtt_env)
    if env.get("SKINSCAN_MQTT_PORT") == "0":
        env["SKINSCAN_MQTT_PORT"] = str(free_port())
    config = tmp_path / "kiosk.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nkiosk_id = "{KIOSK_ID}"\n')
    cmd = [sys.executable, "-m", "kiosk", "scan", "--headless", "--source", "demo",
           "--frames", "30", "--config", str(config)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["summary"]
    assert summary["frames"] >= 30
    if "SKINSCAN_MQTT_CA_FILE" in mqtt_env:
        assert "fleet telemetry off" in proc.stderr
