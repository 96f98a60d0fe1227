"""Framing on the validation harness's TCP connections: a 12-byte header (id, length), then the payload."""
from __future__ import annotations

import socket
import struct
import sys
import threading
from typing import Any, Callable, Iterator

HEADER = struct.Struct("!QI")  # request id, payload length
PING = 1 << 63  # ids with this bit set are echoed at once by the server, without queueing
STREAM_SHIFT = 40  # a request id is its stream's number (from 1) << STREAM_SHIFT | its position in the stream
SEQ = (1 << STREAM_SHIFT) - 1
REHEARSAL = 0  # stream 0: a layered server queues these like requests but answers without a forward pass


def is_rehearsal(rid: int) -> bool:
    return rid >> STREAM_SHIFT == REHEARSAL


def pack(rid: int, payload: bytes) -> bytes:
    return HEADER.pack(rid, len(payload)) + payload


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """n bytes, or None when the peer closed the connection first."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """(id, payload), or None at the end of the stream."""
    head = recv_exact(sock, HEADER.size)
    if head is None:
        return None
    rid, n = HEADER.unpack(head)
    payload = recv_exact(sock, n) if n else b""
    if payload is None:
        return None
    return rid, payload


def requests(conn: socket.socket, send_lock: Any) -> Iterator[tuple[int, bytes]]:
    """A server connection's request frames until the peer closes; pings are echoed at once."""
    while True:
        frame = recv_frame(conn)
        if frame is None:
            return
        rid, payload = frame
        if rid & PING:
            with send_lock:
                conn.sendall(pack(rid, b""))
            continue
        yield rid, payload


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def listen() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def serve_until_stdin_closes(sock: socket.socket, reader: Callable[[socket.socket], Any],
                             workers: list[threading.Thread], stop: Callable[[], None]) -> None:
    """A server process's life: start its workers, read every connection with `reader` in the
    background until the orchestrator closes stdin, then `stop()` the workers and close the socket."""
    for w in workers:
        w.start()
    accept_in_background(sock, reader)
    sys.stdin.read()
    stop()
    sock.close()


def accept_in_background(sock: socket.socket, handle: Callable[[socket.socket], Any]) -> None:
    """Accept connections on `sock` in a daemon thread, each handled by `handle` in a thread of its own."""
    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # the listening socket was closed: stop
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
