"""The throttled, flapping relay the rural-link sync tests and benchmark run on: the rate holds
across connections, a drop cuts live transfers and refuses new connections, and the link comes
back on the same port."""

from __future__ import annotations

import socket
import threading
import time

from tests.flapping_link import Flap, FlappingLink, random_schedule
from tests.servers import TcpProxy


class Sink:
    """An upstream server that reads a request to its end, counts it and answers "ok" (as an
    HTTP server answers a whole upload)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                with self._lock:
                    self.received += len(data)
            conn.sendall(b"ok")
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self.sock.close()


def _send(port: int, payload: bytes, sent: list[int]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(30)
            answer = b""
            while data := s.recv(4096):
                answer += data
        if answer == b"ok":  # the server saw the whole payload
            sent.append(len(payload))
    except OSError:
        pass


def test_the_rate_is_shared_by_all_connections() -> None:
    sink = Sink()
    relay = TcpProxy(sink.port, rate_bytes_per_s=20_000)
    relay.start()
    try:
        started = time.monotonic()
        sent: list[int] = []
        threads = [
            threading.Thread(target=_send, args=(relay.port, b"x" * 10_000, sent)) for _ in range(3)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while sink.received < 30_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        relay.stop()
        sink.close()
    assert sink.received == 30_000
    # 30 KB at 20 KB/s: 1.5 s whatever the number of connections (slack for a loaded machine).
    assert 1.3 <= elapsed <= 4.0, elapsed
    assert relay.meter.bytes_up == 30_000


def test_a_drop_cuts_a_transfer_under_way_and_refuses_new_connections() -> None:
    sink = Sink()
    relay = TcpProxy(sink.port, rate_bytes_per_s=5_000)
    link = FlappingLink([relay])
    link.up()
    sent: list[int] = []
    sender = threading.Thread(target=_send, args=(relay.port, b"y" * 50_000, sent))
    sender.start()
    deadline = time.monotonic() + 10
    while not relay.meter.busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert relay.meter.busy(), "nothing moved through the relay"
    link.down()
    sender.join(timeout=10)
    assert not sender.is_alive()
    assert sent == [], "a cut transfer must not look complete to the client"
    assert 0 < sink.received < 50_000
    assert link.log.drops == 1 and link.log.drops_mid_transfer == 1
    try:
        socket.create_connection(("127.0.0.1", relay.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused, "a down link must refuse new connections"
    link.up()
    again: list[int] = []
    _send(relay.port, b"z" * 1_000, again)
    assert again == [1_000], "the link is back on the same port"
    link.close()
    sink.close()


def test_a_schedule_plays_and_counts_up_time_and_mid_transfer_cuts() -> None:
    import random

    schedule = random_schedule(6, random.Random(3), up_s=(0.2, 0.4), down_s=(0.1, 0.2))
    assert sum(f.mid_transfer for f in schedule) == 2
    sink = Sink()
    relay = TcpProxy(sink.port, rate_bytes_per_s=4_000)
    link = FlappingLink([relay])
    stop = threading.Event()

    def keep_sending() -> None:
        while not stop.is_set():
            _send(relay.port, b"w" * 3_000, [])
            time.sleep(0.02)

    sender = threading.Thread(target=keep_sending, daemon=True)
    started = time.monotonic()
    link.start([*schedule, Flap(0.3, 0.1, mid_transfer=True)])
    sender.start()
    link.join(timeout=30)
    stop.set()
    sender.join(timeout=30)
    link.close()
    sink.close()
    assert link.log.finished_at is not None
    assert link.log.drops == 7
    # The two scheduled cuts (and the last one) waited for bytes on the move.
    assert link.log.drops_mid_transfer >= 3
    planned = sum(f.up_s for f in schedule) + 0.3
    assert planned <= link.log.up_time_s() <= planned + 3 * 2.0 + 1.0
    assert link.log.up_time_s() < link.log.finished_at - started
