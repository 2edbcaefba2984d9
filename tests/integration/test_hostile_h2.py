"""Hostile HTTP/2 and gRPC peers (issue 6, PRODUCT.md rule 8), built frame by frame on raw
sockets (hpack from python3-h2 for header blocks): for each attack the offending
connection gets a GOAWAY or is closed (or, for excess streams and oversized headers, just
that stream is refused and the connection goes on), the server's memory stays bounded,
and another client keeps getting answers. The server runs with small limits so that each
one is reached quickly: --idle-timeout-s 2, --max-concurrent-streams 8,
--max-header-bytes 4096, --max-message-bytes 65536."""
import os
import socket
import struct
import time

import hpack
import pytest

from h2raw import H2Conn, frames
from helpers import Seqd, asan_build, tsan_build, make_event, new_user, now_ms, pb, poll

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
GET = "/seqd.v1.SequenceService/GetSequence"
BATCH_GET = "/seqd.v1.SequenceService/BatchGetSequences"
IDLE_S = 2
MAX_STREAMS = 8
MAX_MSG = 65536
# bytes the server may grow by over the whole module (ASan's quarantine keeps freed memory)
RSS_GROWTH_MAX = (1024 if asan_build() or tsan_build() else 128) << 20


def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload


def grpc_msg(body, declared=None):
    return struct.pack(">BI", 0, len(body) if declared is None else declared) + body


def request_block(enc, path=GET, extra=()):
    return enc.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                       (":authority", "seqd"), ("content-type", "application/grpc"),
                       ("te", "trailers")] + list(extra))


def get_req(user=7):
    return pb().GetSequenceRequest(user_id=user, sequence="engagements").SerializeToString()


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, stubs):
    s = Seqd(str(tmp_path_factory.mktemp("hostile")),
             args=["--idle-timeout-s", str(IDLE_S), "--max-concurrent-streams", str(MAX_STREAMS),
                   "--max-header-bytes", "4096", "--max-message-bytes", str(MAX_MSG)])
    s.start()
    s.rss0 = rss(s.proc.pid)
    yield s
    s.kill()


@pytest.fixture(autouse=True)
def bounded_and_serving(srv):
    """After every attack: the server is alive, answers another client, and its RSS grew
    by less than RSS_GROWTH_MAX since it started."""
    yield
    still_serving(srv)
    assert srv.proc.poll() is None
    grown = rss(srv.proc.pid) - srv.rss0
    assert grown < RSS_GROWTH_MAX, "seqd RSS grew by %d MiB" % (grown >> 20)


def still_serving(srv):
    with H2Conn(srv.grpc) as c:
        status, _, _ = c.unary(GET, get_req())
    assert status == 0
    assert srv.get(7).user_id == 7


def connect(srv, rcvbuf=None):
    host, port = srv.grpc.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect((host, int(port)))
    return s


def send_quietly(sock, data):
    """Sends as much as the server takes: it may close the connection midway."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass


def read_until_closed(sock, timeout):
    """(bytes received, True if the server closed the connection within timeout)."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return out, True
        if not d:
            return out, True
        out += d
    return out, False


def types(data):
    return [f[0] for f in frames(data)]


def handshake(sock):
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))


def assert_goaway_and_closed(sock, timeout=15):
    got, closed = read_until_closed(sock, timeout)
    assert closed, "the server kept the connection open"
    assert GOAWAY in types(got), "closed without a GOAWAY: %r" % types(got)


# ---- the preface ----

def test_no_preface_closed_after_idle_timeout(srv):
    with connect(srv) as s:
        _, closed = read_until_closed(s, IDLE_S * 4 + 5)
    assert closed


def test_bad_preface_closed(srv):
    with connect(srv) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(SETTINGS, 0, 0))
        _, closed = read_until_closed(s, 15)
    assert closed


# ---- frames ----

def test_oversized_frame_gets_goaway(srv):
    with connect(srv) as s:
        handshake(s)
        # 20000 bytes > SETTINGS_MAX_FRAME_SIZE 16384 (the server never raises it)
        send_quietly(s, frame(PING, 0, 0, b"\0" * 20000))
        assert_goaway_and_closed(s)


def test_headers_without_end_headers_then_garbage(srv):
    with connect(srv) as s:
        handshake(s)
        block = request_block(hpack.Encoder())
        # the header block is open: anything but CONTINUATION on stream 1 is a PROTOCOL_ERROR
        send_quietly(s, frame(HEADERS, 0, 1, block[:5]) + frame(PING, 0, 0, b"\0" * 8)
                     + os.urandom(200))
        assert_goaway_and_closed(s)


def test_continuation_flood(srv):
    with connect(srv) as s:
        handshake(s)
        enc = hpack.Encoder()
        flood = frame(HEADERS, 0, 1, request_block(enc))
        junk = enc.encode([("x-junk", "y")])
        flood += b"".join(frame(CONTINUATION, 0, 1, junk) for _ in range(5000))
        send_quietly(s, flood)
        assert_goaway_and_closed(s)


def test_settings_flood(srv):
    with connect(srv) as s:
        handshake(s)
        # never reading the ACKs: nghttp2 refuses to queue more than 1000 of them
        send_quietly(s, frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)) * 20000)
        assert_goaway_and_closed(s)


def test_ping_flood(srv):
    with connect(srv) as s:
        handshake(s)
        send_quietly(s, frame(PING, 0, 0, b"12345678") * 20000)
        assert_goaway_and_closed(s)


def test_rapid_reset_storm(srv):
    with connect(srv) as s:
        handshake(s)
        enc = hpack.Encoder()
        storm = b"".join(frame(HEADERS, END_HEADERS, sid, request_block(enc))
                         + frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
                         for sid in range(1, 2 * 5000, 2))
        send_quietly(s, storm)
        assert_goaway_and_closed(s)


def test_window_update_overflow(srv):
    with connect(srv) as s:
        handshake(s)
        # 65535 + 2^31-1 overflows the connection's send window: FLOW_CONTROL_ERROR
        send_quietly(s, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2)
        assert_goaway_and_closed(s)


# ---- streams ----

def test_streams_beyond_max_concurrent_refused_connection_kept(srv):
    n = MAX_STREAMS + 12
    with connect(srv) as s:
        enc = hpack.Encoder()
        # the server's SETTINGS acknowledged: its limit is in force
        out = PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0)
        sids = list(range(1, 2 * n, 2))
        for sid in sids:  # open, no END_STREAM: every one stays open
            out += frame(HEADERS, END_HEADERS, sid, request_block(enc))
        s.sendall(out)
        got, closed = read_until_closed(s, 1)  # (well within the idle timeout)
        assert not closed
        refused = {f[2] for f in frames(got) if f[0] == RST_STREAM}
        assert len(refused) == n - MAX_STREAMS, sorted(refused)
        assert GOAWAY not in types(got)
        # the admitted streams still complete on the same connection
        admitted = [sid for sid in sids if sid not in refused]
        s.sendall(b"".join(frame(DATA, END_STREAM, sid, grpc_msg(get_req()))
                           for sid in admitted))
        answered = set()
        deadline = time.monotonic() + 20
        buf = b""
        while len(answered) < len(admitted) and time.monotonic() < deadline:
            more, closed = read_until_closed(s, 1)
            buf += more
            answered = {f[2] for f in frames(buf) if f[0] == HEADERS and f[1] & END_STREAM}
            assert not closed
        assert answered == set(admitted)


def test_header_list_above_limit_refuses_the_stream(srv):
    with H2Conn(srv.grpc) as c:
        status, _, _ = c.unary(GET, get_req())
        assert status == 0
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", GET),
                                  (":authority", "seqd"), ("content-type", "application/grpc"),
                                  ("x-big", "a" * 8000)], end_stream=True)
        c.flush()
        reset = None
        while reset is None:
            data = c.sock.recv(65536)
            assert data, "connection closed"
            for ev in c.conn.receive_data(data):
                if type(ev).__name__ == "StreamReset" and ev.stream_id == sid:
                    reset = ev
            c.flush()
        status, _, _ = c.unary(GET, get_req())  # same connection goes on
        assert status == 0


# ---- gRPC messages ----

def test_declared_length_above_limit(srv):
    with H2Conn(srv.grpc) as c:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", GET),
                                  (":authority", "seqd"), ("content-type", "application/grpc"),
                                  ("te", "trailers")])
        c.conn.send_data(sid, grpc_msg(b"x" * 100, declared=MAX_MSG * 100))
        c.flush()
        status = None
        while status is None:
            data = c.sock.recv(65536)
            assert data, "connection closed"
            for ev in c.conn.receive_data(data):
                if hasattr(ev, "headers") and ev.stream_id == sid:
                    h = dict((k.decode(), v.decode()) for k, v in ev.headers)
                    status = h.get("grpc-status", status)
            c.flush()
        assert status == "8"  # RESOURCE_EXHAUSTED, before the body was buffered
        status, _, _ = c.unary(GET, get_req())
        assert status == 0


def test_message_split_across_many_data_frames(srv):
    req = pb().BatchGetSequencesRequest(requests=[
        pb().GetSequenceRequest(user_id=u, sequence="engagements") for u in range(1, 101)])
    msg = grpc_msg(req.SerializeToString())
    enc = hpack.Encoder()
    with connect(srv) as s:
        out = PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1,
                                                      request_block(enc, BATCH_GET))
        out += b"".join(frame(DATA, 0, 1, msg[i:i + 1]) for i in range(len(msg)))
        s.sendall(out + frame(DATA, END_STREAM, 1))
        buf = b""
        while not any(f[0] == HEADERS and f[1] & END_STREAM for f in frames(buf)):
            more, closed = read_until_closed(s, 2)
            assert more or not closed, "closed without an answer"
            buf += more
    dec = hpack.Decoder()
    body = b"".join(f[3] for f in frames(buf) if f[0] == DATA and f[2] == 1)
    trailers = [dict(dec.decode(f[3])) for f in frames(buf) if f[0] == HEADERS]
    assert trailers[-1]["grpc-status"] == "0"
    resp = pb().BatchGetSequencesResponse.FromString(body[5:])
    assert [r.user_id for r in resp.responses] == list(range(1, 101))


# ---- slow and idle peers ----

def test_client_that_never_reads(srv):
    """Big responses asked for, never read: the server stops reading that connection once
    its output is queued (memory bounded), and closes it after the idle timeout."""
    user = new_user()
    base = now_ms() - 3600000
    p = srv.producer()
    p.events([make_event(user, base + i, "click", i, "big-%d" % i, {"dwell_ms": 1.0})
              for i in range(1000)])
    srv.wait_visible(user, 1000)
    req = grpc_msg(pb().GetSequenceRequest(user_id=user, sequence="engagements")
                   .SerializeToString())
    enc = hpack.Encoder()
    s = connect(srv, rcvbuf=4096)
    try:
        # a huge receive window, so flow control does not hold the server back
        s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0x7FFFFFFF))
                  + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))
        s.settimeout(0.2)
        sent, sid, t_end = 0, 1, time.monotonic() + 4 * IDLE_S + 10
        while time.monotonic() < t_end:
            try:
                s.sendall(frame(HEADERS, END_HEADERS, sid, request_block(enc))
                          + frame(DATA, END_STREAM, sid, req))
            except socket.timeout:
                break  # the server stopped reading us
            except (BrokenPipeError, ConnectionResetError):
                break
            sid += 2
            sent += 1
        assert sent > MAX_STREAMS
        still_serving(srv)
        # the server gives up on us: EOF or reset once we drain what it had queued
        _, closed = read_until_closed(s, 4 * IDLE_S + 20)
        assert closed
    finally:
        s.close()


def test_thousands_of_idle_connections(srv):
    n = 2000
    socks = []
    try:
        for i in range(n):
            s = connect(srv)
            if i % 2:
                s.sendall(PREFACE + frame(SETTINGS, 0, 0))
            socks.append(s)
        still_serving(srv)
        grown = rss(srv.proc.pid) - srv.rss0
        assert grown < RSS_GROWTH_MAX, "RSS grew by %d MiB" % (grown >> 20)
        # all of them are closed by the idle timeout
        deadline = time.monotonic() + 4 * IDLE_S + 30
        for s in socks:
            _, closed = read_until_closed(s, max(0.1, deadline - time.monotonic()))
            assert closed
    finally:
        for s in socks:
            s.close()


def test_max_connections(seqd_factory):
    s = seqd_factory(args=["--max-connections", "20", "--threads", "1"])
    held = [connect(s) for _ in range(20)]
    try:
        for c in held:  # each one accepted: the server's SETTINGS arrive
            c.sendall(PREFACE + frame(SETTINGS, 0, 0))
            c.settimeout(10)
            assert c.recv(9)
        extra = connect(s)
        _, closed = read_until_closed(extra, 10)
        extra.close()
        assert closed, "the 21st connection was kept"
    finally:
        for c in held:
            c.close()
    # capacity comes back once the others are gone

    def served():
        try:
            with H2Conn(s.grpc, timeout=5) as c:
                return c.unary(GET, get_req())[0] == 0
        except OSError:
            return False
    poll(served, "a new connection to be served")
