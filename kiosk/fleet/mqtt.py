"""Fleet status over MQTT: is this kiosk up, is its queue stuck, which model does it run.

Topics, under `<topic_prefix>/<kiosk_id>/` (`skinscan/kiosk-01/...` by default):

- `availability`  retained `online` once connected; `offline` as the last will (the broker sends
  it when the process dies or the network goes) and on a clean stop.
- `state`         retained JSON (TelemetryState plus uptime_s), republished when it changes,
  after every reconnect, and every `heartbeat_s` so that uptime stays fresh.
- `events`        not retained: counts of verdicts by class. Never images, never patient
  references: `publish_event` accepts only condition names and whole numbers.
- `cmd/<name>`    commands from the allow list COMMANDS, run by handlers the caller registers
  with `on_command`; the answer goes to `cmd_result` (not retained).

A second process on the same kiosk (e.g. `kiosk sync`) passes its own `component`; its topics go
one level down (`<prefix>/<id>/sync/availability`) so that its last will does not mark the
whole kiosk offline.

Nothing here may slow the caller: paho's network loop runs on its own thread and reconnects
with backoff; publishing, polling the state provider and running command handlers happen on a
second thread fed by a bounded queue. A dead or absent broker costs the caller nothing; what
would have been published meanwhile is dropped (MQTT is status, not a delivery channel).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.config import KioskConfig
from kiosk.errors import SkinscanError
from kiosk.fleet.discovery import discovery_messages
from kiosk.fleet.topics import MAIN_COMPONENT, topics_for
from kiosk.model.conditions import CONDITIONS

log = logging.getLogger(__name__)

COMMANDS = ("sync_now", "reload_model", "restart_camera")
ONLINE, OFFLINE = "online", "offline"
# Event counts are keyed by these only, so no free text (a name, a note) can ever reach MQTT.
EVENT_KEYS = frozenset(CONDITIONS) | {"unsure", "total"}
_COMPONENT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_QUEUE_MAX = 256  # events and commands waiting for the telemetry thread; beyond: dropped
_STOP_WAIT_S = 2.0  # how long stop() waits for "offline" to leave


class TelemetryError(SkinscanError):
    """Telemetry cannot be set up (TLS files, bad component name); the kiosk runs without it."""


@dataclass(frozen=True)
class TelemetryState:
    """What the fleet sees about one kiosk. None: this process does not know it."""

    app_version: str | None = None
    model_version: str | None = None
    queue_depth: int | None = None  # cases and messages waiting to go up
    last_sync: datetime | None = None  # end of the last pass that reached Firebase (UTC)
    online: bool | None = None  # the last attempt to reach Firebase succeeded
    fps: float | None = None  # frames through the live loop per second
    camera: str | None = None  # starting | live | reconnecting | stalled | stopped
    errors: tuple[str, ...] = ()  # one line each, no patient data
    # Reviews / specialist messages kept aside because their signature did not verify.
    unverified_items: int | None = None
    model_rejected: str | None = None  # releases the last check skipped ("version: reason")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["last_sync"] = self.last_sync.isoformat() if self.last_sync else None
        out["errors"] = list(self.errors)
        if self.fps is not None:
            out["fps"] = round(self.fps, 1)  # finer would republish on every jitter
        return out


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    message: str = ""


# A handler returns a short message (or None) for cmd_result; raising means it failed.
CommandHandler = Callable[[], str | None]


@dataclass
class _Work:
    kind: str  # "event" | "command" | "wake"
    name: str = ""
    payload: Any = None


@dataclass
class _Published:
    state: dict[str, Any] | None = None
    at: float = 0.0
    forced: bool = True  # publish at the next poll whatever changed (start, reconnect)
    handlers: dict[str, CommandHandler] = field(default_factory=dict)


class Telemetry:
    """`Telemetry(config, state_provider).start()`, then `publish_event`, `on_command`, `stop()`.

    `config.kiosk_id` must be resolved (kiosk.config.resolve_kiosk_id). `state_provider` is
    called on the telemetry thread every `poll_s` seconds: it must be thread-safe and quick.
    """

    def __init__(
        self,
        config: KioskConfig,
        state_provider: Callable[[], TelemetryState] | None = None,
        *,
        component: str = MAIN_COMPONENT,
        poll_s: float = 5.0,
        heartbeat_s: float = 60.0,
        reconnect_max_s: float = 60.0,
    ) -> None:
        if not config.mqtt.enabled:
            raise TelemetryError("MQTT is not configured (mqtt.host is empty)")
        if not config.kiosk_id:
            raise TelemetryError("kiosk_id is not resolved (kiosk.config.resolve_kiosk_id)")
        if not _COMPONENT.match(component):
            raise TelemetryError(f"component must be a short lowercase word, got {component!r}")
        self.config = config
        self.mqtt_config = config.mqtt
        self.component = component
        self.topics = topics_for(config, component)
        self._provider = state_provider or TelemetryState
        self._poll_s = poll_s
        self._heartbeat_s = heartbeat_s
        self._started_at = time.monotonic()
        self._queue: queue.Queue[_Work] = queue.Queue(maxsize=_QUEUE_MAX)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._published = _Published()
        self._thread: threading.Thread | None = None
        self._client = self._make_client(reconnect_max_s)

    # ---- public API ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on_command(self, name: str, handler: CommandHandler) -> None:
        """Run `handler` when `cmd/<name>` arrives. Only names in COMMANDS can be registered;
        the handler runs on the telemetry thread, so it should only ask for the work (set a
        flag, wake a worker) and return."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; allowed: {', '.join(COMMANDS)}")
        with self._lock:
            self._published.handlers[name] = handler

    def publish_event(self, counts: Mapping[str, int], kind: str = "verdicts") -> None:
        """Counts of verdicts by class (keys from EVENT_KEYS, values whole numbers ≥ 0).
        Returns at once; dropped when the broker is unreachable or the queue is full."""
        clean: dict[str, int] = {}
        for key, value in counts.items():
            if key not in EVENT_KEYS:
                raise ValueError(f"event key {key!r} is not a condition name")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"event count for {key!r} must be a whole number ≥ 0")
            clean[key] = value
        if not _COMPONENT.match(kind):
            raise ValueError(f"event kind must be a short lowercase word, got {kind!r}")
        self._offer(_Work("event", kind, clean))

    def start(self) -> Telemetry:
        m = self.mqtt_config
        # connect_async: the first connection happens on paho's thread too, so an unknown host
        # or a dead broker never blocks here.
        self._client.connect_async(m.host, m.port, keepalive=m.keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._work_loop, name="telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Say `offline` (retained) if connected, then disconnect. Waits at most a few
        seconds, and only for a broker that is there."""
        self._stop.set()
        self._offer(_Work("wake"))
        if self._thread is not None:
            self._thread.join(timeout=_STOP_WAIT_S + 1)
        if self._connected.is_set():
            info = self._client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            # RuntimeError / ValueError: the connection went meanwhile; nothing left to do.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=_STOP_WAIT_S)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Telemetry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- paho side (its network thread) -------------------------------------------------

    def _make_client(self, reconnect_max_s: float) -> mqtt.Client:
        m = self.mqtt_config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"skinscan-{self.config.kiosk_id}-{self.component}",
        )
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max_s)))
        client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        if m.username:
            client.username_pw_set(m.username, m.password)
        if m.tls:
            try:
                client.tls_set(
                    ca_certs=str(m.ca_file) if m.ca_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError) as e:
                raise TelemetryError(f"MQTT TLS setup failed: {e}") from None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # Wrong password or a refused client id: paho retries with backoff; say why once.
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        log.info("MQTT connected to %s:%s", self.mqtt_config.host, self.mqtt_config.port)
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        client.subscribe(self.topics.cmd("+"), qos=1)
        if self.mqtt_config.discovery and self.component == MAIN_COMPONENT:
            for topic, payload in discovery_messages(self.config, self.topics):
                client.publish(topic, json.dumps(payload), qos=1, retain=True)
        self._connected.set()
        with self._lock:
            self._published.forced = True  # the state may have changed while we were away
        self._offer(_Work("wake"))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("MQTT connection lost (%s); reconnecting in the background", reason_code)
        self._connected.clear()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            # A command left retained on the broker would run again at every boot.
            log.warning("ignoring retained command on %s", message.topic)
            return
        name = message.topic.rsplit("/", 1)[-1]
        self._offer(_Work("command", name, message.payload))

    # ---- the telemetry thread -----------------------------------------------------------

    def _offer(self, work: _Work) -> None:
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            log.debug("telemetry queue full: dropped a %s", work.kind)

    def _work_loop(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            try:
                work = self._queue.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                work = None
            if self._stop.is_set():
                break
            try:
                if work is not None and work.kind == "event":
                    self._send_event(work.name, work.payload)
                elif work is not None and work.kind == "command":
                    self._run_command(work.name, work.payload)
                now = time.monotonic()
                with self._lock:
                    forced = self._published.forced
                if now >= next_poll or forced:
                    next_poll = now + self._poll_s
                    self._poll_state()
            except Exception:
                # Telemetry must never take the kiosk down; keep going and say what broke.
                log.exception("telemetry step failed")

    def _poll_state(self) -> None:
        if not self._connected.is_set():
            return
        state = self._provider().to_json()
        now = time.monotonic()
        with self._lock:
            published = self._published
            due = (
                published.forced
                or state != published.state
                or now - published.at >= self._heartbeat_s
            )
            if not due:
                return
        payload = dict(state, component=self.component, uptime_s=round(now - self._started_at))
        info = self._client.publish(self.topics.state, json.dumps(payload), qos=1, retain=True)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            with self._lock:
                published.state, published.at, published.forced = state, now, False

    def _send_event(self, kind: str, counts: dict[str, int]) -> None:
        if not self._connected.is_set():
            return
        payload = {"kind": kind, "counts": counts, "at": _utc_now()}
        self._client.publish(self.topics.events, json.dumps(payload), qos=0, retain=False)

    def _run_command(self, name: str, raw: bytes) -> None:
        request_id = _request_id(raw)
        with self._lock:
            handler = self._published.handlers.get(name)
        if name not in COMMANDS:
            result = CommandResult(False, f"unknown command; allowed: {', '.join(COMMANDS)}")
        elif handler is None:
            result = CommandResult(False, f"{name} is not available in this process")
        else:
            try:
                result = CommandResult(True, handler() or "done")
            except Exception as e:
                log.exception("command %s failed", name)
                result = CommandResult(False, f"failed: {type(e).__name__}")
        log.info("command %s: %s", name, "ok" if result.ok else result.message)
        payload = {
            "command": name if _REQUEST_ID.match(name) else "?",
            "id": request_id,
            "ok": result.ok,
            "message": result.message,
            "at": _utc_now(),
        }
        self._client.publish(self.topics.cmd_result, json.dumps(payload), qos=1, retain=False)


def _request_id(raw: bytes) -> str | None:
    """A command's payload may be JSON with an "id" to match the answer; anything else in it
    is ignored (commands take no arguments)."""
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and _REQUEST_ID.match(value) else None


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
