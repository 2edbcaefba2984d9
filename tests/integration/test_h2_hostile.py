"""Bad HTTP/2 peers: not-HTTP/2 bytes and protocol violations get GOAWAY or a close, and
the server keeps answering other clients."""
import socket

from h2raw import GOAWAY, H2Conn, frames, read_until_close
from helpers import pb

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(server):
    host, port = server.grpc.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def still_serving(server):
    req = pb().GetSequenceRequest(user_id=7, sequence="engagements").SerializeToString()
    with H2Conn(server.grpc) as c:
        status, _, _ = c.unary("/seqd.v1.SequenceService/GetSequence", req)
    assert status == 0
    assert server.get(7).user_id == 7


def test_http1_bytes_closed(server):
    with connect(server) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x00" * 100)
        read_until_close(s)  # returns once the server closed: a hang would time out
    still_serving(server)


def test_random_garbage_closed(server):
    with connect(server) as s:
        s.sendall(bytes(range(256)) * 8)
        read_until_close(s)
    still_serving(server)


def test_bad_frame_after_preface_gets_goaway(server):
    with connect(server) as s:
        # a SETTINGS frame on stream 1 is a connection error (PROTOCOL_ERROR)
        s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                  + b"\x00\x00\x06\x04\x00\x00\x00\x00\x01" + b"\x00\x03\x00\x00\x00\x01")
        got = read_until_close(s)
    assert GOAWAY in [f[0] for f in frames(got)]
    still_serving(server)


def test_headers_on_even_stream_gets_goaway(server):
    with connect(server) as s:
        # HEADERS from a client on stream 2 (even: server-initiated only)
        s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                  + b"\x00\x00\x01\x01\x05\x00\x00\x00\x02\x82")
        got = read_until_close(s)
    assert GOAWAY in [f[0] for f in frames(got)]
    still_serving(server)


def test_truncated_connection_midframe(server):
    with connect(server) as s:
        s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\x00\x10\x00\x01")
    still_serving(server)
