"""Real local servers for the tests: Google's Cloud Firestore emulator and gcp-storage-emulator.

Each runs as a child process on a free loopback port and can be stopped and restarted on the
same port (fault tests). A missing server is a loud failure: `./setup.sh test` installs both,
and a suite that silently skipped the sync tests would prove nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT = "demo-skinscan-test"
BUCKET = "demo-skinscan-test.appspot.com"
_JAR_NAME = "cloud-firestore-emulator.jar"
_JAR_SEARCH = (
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator",
    "/usr/share/google-cloud-sdk/platform/cloud-firestore-emulator",
    "/opt/google-cloud-sdk/platform/cloud-firestore-emulator",
)


class ServerUnavailableError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerUnavailableError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def firestore_jar() -> Path:
    override = os.environ.get("FIRESTORE_EMULATOR_JAR")
    candidates = [Path(override)] if override else []
    candidates += [Path(d) / _JAR_NAME for d in _JAR_SEARCH]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "google-cloud-cli-firestore-emulator"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except FileNotFoundError:
        listing = ""
    for line in listing.splitlines():
        if line.endswith(_JAR_NAME):
            return Path(line)
    raise ServerUnavailableError(
        "the Cloud Firestore emulator is not installed (apt package "
        "google-cloud-cli-firestore-emulator, Java 17): run ./setup.sh test, which installs it, "
        "or set FIRESTORE_EMULATOR_JAR"
    )


@dataclass
class ServerProcess:
    name: str
    command: list[str]
    port: int
    ready_timeout: float
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"skinscan-{self.name}-{self.port}.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )
        try:
            self.wait_ready()
        except ServerUnavailableError as e:
            self.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise ServerUnavailableError(f"{self.name} did not start: {e}\n{tail}") from None

    def wait_ready(self) -> None:
        wait_for_port(self.port, self.ready_timeout)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class FirestoreEmulator(ServerProcess):
    def __init__(self, port: int | None = None) -> None:
        java = shutil.which("java")
        if java is None:
            raise ServerUnavailableError("Java (17+) is needed for the Firestore emulator")
        port = port or free_port()
        super().__init__(
            name="firestore",
            command=[
                java,
                "-cp",
                str(firestore_jar()),
                "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            port=port,
            ready_timeout=60,
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as r:
                    if r.read().strip() == b"Ok":
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise ServerUnavailableError(f"Firestore emulator not ready after {self.ready_timeout} s")

    def reset(self, project: str = PROJECT) -> None:
        request = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents",
            method="DELETE",
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            r.read()


class StorageEmulator(ServerProcess):
    def __init__(self, data_dir: Path, port: int | None = None, bucket: str = BUCKET) -> None:
        port = port or free_port()
        executable = Path(sys.executable).with_name("gcp-storage-emulator")
        if not executable.exists():
            raise ServerUnavailableError(
                "gcp-storage-emulator is not installed in this environment: run ./setup.sh test"
            )
        # On disk (not --in-memory) so that a killed and restarted server keeps its objects.
        super().__init__(
            name="storage",
            command=[
                str(executable),
                "start",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--default-bucket={bucket}",
                "--quiet",
            ],
            port=port,
            ready_timeout=30,
            env={"STORAGE_BASE": str(data_dir)},
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with urllib.request.urlopen(f"{self.url}/wipe?keep-buckets=1", timeout=10) as r:
            r.read()


class TcpProxy:
    """A loopback TCP relay in front of a server. Stopping it drops every connection at once,
    exactly as the kiosk sees a server die mid-request; restarting it on the same port brings
    the server back with its data intact. (gcp-storage-emulator itself cannot be SIGKILLed
    for this: it rewrites its whole metadata file on every upload, non-atomically, and a kill
    mid-write leaves it unable to start.)

    The storage emulator serves one connection at a time, so a relayed connection that stayed
    open upstream after stop() would wedge it for every later test. Hence stop() never just
    close()s a socket another thread is blocked in (on Linux that neither wakes the thread nor
    ends the connection, and the freed descriptor number can be reused under it): it shuts
    both ends down, which wakes the relay threads, and the last of a pair's two threads closes
    its sockets with a reset."""

    def __init__(
        self, upstream_port: int, port: int | None = None, rate_bytes_per_s: float | None = None
    ) -> None:
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._pairs: set[_RelayedConnection] = set()
        self._lock = threading.Lock()
        self._running = False
        # A throttled link: every connection in one direction shares one budget, as uploads
        # over one 2G/3G uplink do (None: as fast as loopback).
        self.rate_bytes_per_s = rate_bytes_per_s
        self.meter = TrafficMeter()
        self._limits = (
            (_RateLimit(rate_bytes_per_s), _RateLimit(rate_bytes_per_s))
            if rate_bytes_per_s
            else (None, None)
        )

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running

    def start(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        with self._lock:
            self._running = True
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            pair = _RelayedConnection(client, upstream, self._forget, self._limits, self.meter)
            with self._lock:
                if not self._running:  # accepted just as stop() ran: drop it too
                    _reset(client)
                    _reset(upstream)
                    return
                self._pairs.add(pair)
            pair.start()

    def _forget(self, pair: _RelayedConnection) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def stop(self) -> None:
        with self._lock:
            self._running = False
            pairs, self._pairs = self._pairs, set()
        if self._listener is not None:
            # shutdown() first: a close() alone leaves the accept() that blocks in the other
            # thread holding the port, and the restart could not bind it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for pair in pairs:
            pair.abort()


class _RelayedConnection:
    """One client connection and its upstream twin, relayed by two threads."""

    def __init__(
        self,
        client: socket.socket,
        upstream: socket.socket,
        on_closed: Callable[[_RelayedConnection], None],
        limits: tuple[_RateLimit | None, _RateLimit | None] = (None, None),
        meter: TrafficMeter | None = None,
    ) -> None:
        self._sockets = (client, upstream)
        self._on_closed = on_closed
        self._limits = limits
        self._meter = meter
        self._lock = threading.Lock()
        self._threads_left = 2
        self._aborted = False

    def start(self) -> None:
        client, upstream = self._sockets
        directions = (
            (client, upstream, self._limits[0], True),
            (upstream, client, self._limits[1], False),
        )
        for source, target, limit, outgoing in directions:
            threading.Thread(
                target=self._pump, args=(source, target, limit, outgoing), daemon=True
            ).start()

    def abort(self) -> None:
        """Both ends see the connection end now, mid-request or not."""
        with self._lock:
            self._aborted = True
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    _linger_zero(s)
                    s.shutdown(socket.SHUT_RDWR)

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        limit: _RateLimit | None = None,
        outgoing: bool = True,
    ) -> None:
        # Throttled, small reads: the bytes trickle through as on a slow link instead of one
        # 64 KB burst followed by a long pause.
        size = 65536 if limit is None else limit.chunk
        try:
            while data := source.recv(size):
                if limit is not None:
                    limit.take(len(data))
                target.sendall(data)
                if self._meter is not None and outgoing:
                    self._meter.add(len(data))
        except OSError:
            pass
        with self._lock:
            if not self._aborted:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)
            self._threads_left -= 1
            last = self._threads_left == 0
        if last:  # no thread is blocked in either socket now: closing is safe
            for s in self._sockets:
                # A socket reset by stop() while its pair was being set up may be gone.
                with contextlib.suppress(OSError):
                    s.close()
            self._on_closed(self)


class TrafficMeter:
    """Bytes relayed from clients to the server, and when the last of them went through (a
    flapping link uses it to cut a transfer that is under way)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes_up = 0
        self.last_byte_at = 0.0  # time.monotonic()

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes_up += n
            self.last_byte_at = time.monotonic()

    def busy(self, within_s: float = 0.2) -> bool:
        with self._lock:
            return self.bytes_up > 0 and time.monotonic() - self.last_byte_at < within_s


class _RateLimit:
    """A byte budget shared by every connection in one direction: each chunk books the next
    free slot on a virtual clock and waits for it, so N transfers at once each get 1/N."""

    def __init__(self, rate_bytes_per_s: float) -> None:
        self.rate = float(rate_bytes_per_s)
        # About 1/20 s of the link per read: fine-grained enough for a few KB/s.
        self.chunk = max(256, min(16384, int(self.rate / 20)))
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            # An idle link does not save up a burst for later.
            start = max(self._next, now)
            self._next = start + n / self.rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


def _linger_zero(s: socket.socket) -> None:
    """From now on, closing `s` sends the peer a reset, not a polite end of stream."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _reset(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        _linger_zero(s)
        s.close()


def wait_for(predicate, timeout: float, what: str, every: float = 0.1) -> None:
    """Poll `predicate` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
