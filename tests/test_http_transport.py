"""The InfluxDB store's HTTP transport against servers that misbehave on a real socket: one that closes a kept-alive
connection (the request is sent once more, on a fresh one) and one that takes the request and never answers (no
second try: the pipeline waits one timeout, not two, before it spools)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from connectors.stores.http import HttpRequest, Unavailable, Urllib3Transport


@contextmanager
def _server(answer_from: int | None) -> Iterator[tuple[str, list[bytes]]]:
    """A loopback HTTP server that takes each request and closes the connection without a word, until the
    ``answer_from``-th request (0-based), which it answers 204; ``None``: it never answers, holding the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            data = conn.recv(65536)
            requests.append(data)
            if answer_from is None:
                held.append(conn)  # hung: the request is taken, the answer never comes
            elif len(requests) - 1 >= answer_from:
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()
            else:
                conn.close()  # as a restarted server drops a kept-alive connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_dropped_connection_is_tried_once_more() -> None:
    with _server(answer_from=1) as (url, requests):
        transport = Urllib3Transport(timeout_s=5.0)
        response = transport.send(HttpRequest("POST", f"{url}/write?db=x", {}, b"m f=1 1"))
        transport.close()
    assert response.status == 204
    assert len(requests) == 2


def test_a_server_that_does_not_answer_is_asked_once() -> None:
    with _server(answer_from=None) as (url, requests):
        transport = Urllib3Transport(timeout_s=0.5)
        with pytest.raises(Unavailable, match=r"POST .*/write: no answer"):
            transport.send(HttpRequest("POST", f"{url}/write?db=x", {}, b"m f=1 1"))
        transport.close()
    assert len(requests) == 1, "a request the server did not answer in time was sent again"
