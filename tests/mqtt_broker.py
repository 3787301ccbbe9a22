"""A real Mosquitto broker for tests, on a free port, and a subscriber that records messages.

`mqtt_broker` (fixture): a started Broker; `broker.stop()` / `broker.start()` take it down and
bring it back on the same port (the reconnect tests). Options for password and TLS tests:
`Broker(workdir, users={"name": "password"}, tls=True)`. Needs Debian's `mosquitto` (and
`openssl` for TLS): `./setup.sh test` installs them. Missing, the fixture fails; it never skips.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"
INSTALL_HINT = "mosquitto is not installed: ./setup.sh test installs it (apt package mosquitto)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _mosquitto() -> str:
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


class Broker:
    def __init__(
        self, workdir: Path, users: dict[str, str] | None = None, tls: bool = False
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.users = users or {}
        self.tls = tls
        self.ca_file: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._binary = _mosquitto()
        workdir.mkdir(parents=True, exist_ok=True)
        self._config = self._write_config()

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {HOST}",
            "persistence false",
            # Mosquitto started as root switches to the `mosquitto` user, which cannot read a
            # test's private directory; stay as whoever runs the tests.
            "user root",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            "log_type all",
        ]
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for name, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwd), name, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            self.ca_file, cert, key = _make_certificates(self.workdir)
            lines += [f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}"]
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> Broker:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [self._binary, "-c", str(self._config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}\n{self.log()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _make_certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: ./setup.sh test installs it", pytrace=False)
    ca_key, ca, key, csr, cert = (
        workdir / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = workdir / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
            str(ca), "-subj", "/CN=skinscan-test-ca", "-days", "2")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """A subscriber that keeps every message it sees; `wait_for` polls for one that matches."""

    def __init__(
        self, broker: Broker, topic: str = "#", username: str | None = None, password: str = ""
    ) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4()}")
        if username:
            self.client.username_pw_set(username, password)
        if broker.tls:
            self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect(HOST, broker.port)
        self.client.loop_start()
        if not subscribed.wait(5):
            raise RuntimeError("recorder could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(
        self, match: Callable[[Message], bool], timeout: float = 10.0, after: int = 0
    ) -> Message:
        """The first message (from index `after` on) for which `match` is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[after:]:
                    if match(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[after:]]
                    raise AssertionError(f"no matching message in {timeout} s; saw {seen}")
                self._cond.wait(remaining)

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Broker, topic: str, payload: str | bytes, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4()}")
    client.connect(HOST, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()
