"""The fault-injection relay itself: when it stops, both ends must see their connection end.

The storage emulator serves one connection at a time; a relayed connection left open upstream
by a stopped proxy wedged it for the rest of a CI run once. This pins that down."""

from __future__ import annotations

import socket
import threading
import time

from tests.servers import TcpProxy


def _upstream_server() -> tuple[socket.socket, list[socket.socket]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return listener, accepted


def _connection_ends(conn: socket.socket, timeout: float) -> bool:
    """True if the peer ended the connection (EOF or reset) within the timeout."""
    conn.settimeout(timeout)
    try:
        while conn.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_stop_ends_a_relayed_connection_on_both_sides_mid_request() -> None:
    listener, accepted = _upstream_server()
    proxy = TcpProxy(listener.getsockname()[1])
    proxy.start()
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    # Half a request: the upstream server now waits for the rest, as the emulator does for
    # the body of an upload.
    client.sendall(b"POST /upload HTTP/1.0\r\nContent-Length: 100000\r\n\r\npartial")
    upstream = None
    for _ in range(200):
        if accepted:
            upstream = accepted[0]
            break
        time.sleep(0.01)
    assert upstream is not None, "the proxy never connected upstream"
    upstream.settimeout(5)
    assert upstream.recv(4096).startswith(b"POST /upload")

    proxy.stop()

    assert _connection_ends(upstream, timeout=5), "the server was left waiting on a dead client"
    assert _connection_ends(client, timeout=5), "the client was left waiting on a dead server"
    client.close()
    upstream.close()
    listener.close()


def test_restarted_proxy_relays_again_on_the_same_port() -> None:
    listener, accepted = _upstream_server()
    proxy = TcpProxy(listener.getsockname()[1])
    proxy.start()
    proxy.stop()
    proxy.start()
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    client.sendall(b"ping")
    for _ in range(200):
        if accepted:
            break
        time.sleep(0.01)
    assert accepted, "the restarted proxy did not relay"
    accepted[0].settimeout(5)
    assert accepted[0].recv(4) == b"ping"
    accepted[0].sendall(b"pong")
    assert client.recv(4) == b"pong"
    proxy.stop()
    client.close()
    accepted[0].close()
    listener.close()
