"""Client half of tests/unit/test_grpc_transport.c: run by Debian's /usr/bin/python3
(which has grpcio and h2) against the test server on 127.0.0.1:PORT. Prints one line per
check; exits 1 on the first failure, 0 with "ALL OK" at the end."""
import socket
import struct
import sys

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings

PORT = int(sys.argv[1])
LIMIT = int(sys.argv[2])
TARGET = "127.0.0.1:%d" % PORT


def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)
    print("ok:", what, flush=True)


def ident(b):
    return b


chan = grpc.insecure_channel(TARGET)


def method(name):
    return chan.unary_unary(name, request_serializer=ident, response_deserializer=ident)


def rpc_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except grpc.RpcError as e:
        return e
    return None


def grpc_frame(body, flag=0):
    return struct.pack(">BI", flag, len(body)) + body


def raw_call(path, body, extra=(), ctype="application/grpc", window=None):
    """One request on a fresh raw HTTP/2 connection; returns (headers dict, data). A small
    `window` (stream flow-control window) makes the server cut its DATA frames that small."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    if window:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                            (":authority", "x"), ("content-type", ctype),
                            ("te", "trailers")] + list(extra))
    conn.send_data(sid, body, end_stream=True)
    s.sendall(conn.data_to_send())
    headers, data, done = {}, b"", False
    while not done:
        chunk = s.recv(65536)
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                headers.update(dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(conn.data_to_send())
    s.close()
    return headers, data


if len(sys.argv) > 3 and sys.argv[3] == "stop":
    # The C side calls seq_grpc_stop once this call is held: it must still complete.
    check(method("/test.Echo/Slow")(b"inflight", timeout=20) == b"inflight",
          "in-flight call completes across a graceful stop")
    e = rpc_error(method("/test.Echo/Echo"), b"x", timeout=5)
    check(e is not None and e.code() == grpc.StatusCode.UNAVAILABLE, "stopped server: UNAVAILABLE")
    print("ALL OK", flush=True)
    sys.exit(0)

if len(sys.argv) > 3 and sys.argv[3] == "held":
    # The server's idle timeout is 100 ms: a call held for 600 ms must still complete.
    check(method("/test.Echo/Slow")(b"sleep:600", timeout=20) == b"sleep:600",
          "a call held past the idle timeout completes")
    print("ALL OK", flush=True)
    sys.exit(0)

echo = method("/test.Echo/Echo")
check(echo(b"hello", timeout=5) == b"hello", "echo")
check(echo(b"", timeout=5) == b"", "echo empty message")
big_req = bytes(range(256)) * ((LIMIT - 100) // 256)
check(echo(big_req, timeout=5) == big_req, "echo of a multi-frame message")
# 40 x 65 KB on one connection: more than the server's 1 MiB receive windows, so the
# transport hands unary bytes back to both windows (it updates them itself: grpc.c).
check(all(echo(big_req, timeout=10) == big_req for _ in range(40)),
      "unary requests past the receive windows on one connection")

e = rpc_error(method("/test.Echo/Fail"), b"x", timeout=5)
check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and
      e.details() == "bad thing", "handler error: INVALID_ARGUMENT 'bad thing'")
e = rpc_error(method("/test.Echo/FailUtf"), b"x", timeout=5)
check(e is not None and e.code() == grpc.StatusCode.NOT_FOUND and
      e.details() == "100% \u00fcnicode\nline", "grpc-message percent-encoded")

e = rpc_error(method("/no.Such/Method"), b"x", timeout=5)
check(e is not None and e.code() == grpc.StatusCode.UNIMPLEMENTED and
      "unknown method /no.Such/Method" in e.details(), "unknown method: UNIMPLEMENTED")

e = rpc_error(echo, b"x" * (LIMIT + 1), timeout=5)
check(e is not None and e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED,
      "request above the limit: RESOURCE_EXHAUSTED")
e = rpc_error(method("/test.Echo/Big"), b"x", timeout=5)
check(e is not None and e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and
      str(LIMIT + 1) in e.details() and str(LIMIT) in e.details(),
      "response above the limit: RESOURCE_EXHAUSTED naming both sizes")

auth = method("/test.Echo/Auth")
check(auth(b"", metadata=[("authorization", "Bearer t0k")], timeout=5) == b"Bearer t0k",
      "authorization header visible to the handler")

slow = method("/test.Echo/Slow")
check(slow(b"later", timeout=5) == b"later", "held call finished from another thread")
e = rpc_error(slow, b"x", timeout=0.01)
check(e is not None and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "client deadline")

futs = [(b"m%d" % i, (slow if i % 4 == 0 else echo).future(b"m%d" % i, timeout=10))
        for i in range(200)]
check(all(f.result() == want for want, f in futs), "200 concurrent calls on one channel")

# Raw HTTP/2: what grpcio would hide.
h, d = raw_call("/test.Echo/Slow", grpc_frame(b"s"), [("grpc-timeout", "20m")])
check(h.get("grpc-status") == "4", "server-side deadline of a held call: %r" % h)
h, d = raw_call("/test.Echo/Echo", grpc_frame(b"s"), [("grpc-timeout", "1n")])
check(h.get("grpc-status") == "4", "deadline passed on arrival: %r" % h)
h, d = raw_call("/test.Echo/Echo", grpc_frame(b"raw"))
check(h.get(":status") == "200" and h.get("grpc-status") == "0" and d == grpc_frame(b"raw"),
      "raw echo: prefix + body, grpc-status 0 in trailers")
body = bytes(range(40))
h, d = raw_call("/test.Echo/Echo", grpc_frame(body), window=3)
check(h.get("grpc-status") == "0" and d == grpc_frame(body),
      "response in 3-byte DATA frames (the 5-byte prefix split across frames)")
h, d = raw_call("/test.Echo/Echo", grpc_frame(b"s"), ctype="text/plain")
check(h.get(":status") == "415", "wrong content-type: HTTP 415")
h, d = raw_call("/test.Echo/Echo", grpc_frame(b"0123456789")[:9])
check(h.get("grpc-status") == "13", "truncated message: INTERNAL")
h, d = raw_call("/test.Echo/Echo", grpc_frame(b"zz", flag=1))
check(h.get("grpc-status") in ("3", "12") and "compressed" in h.get("grpc-message", ""),
      "compressed flag refused")
h, d = raw_call("/test.Echo/Echo", grpc_frame(b"a") + grpc_frame(b"b"))
check(h.get("grpc-status") == "3", "two messages in a unary call: INVALID_ARGUMENT")
h, d = raw_call("/test.Echo/Echo", b"")
check(h.get("grpc-status") == "3", "no message: INVALID_ARGUMENT")

# Bidirectional streaming: several messages each way on one stream, in order.
stream = chan.stream_stream("/test.Echo/Stream", request_serializer=ident,
                            response_deserializer=ident)
got = list(stream(iter([b"a", b"twice:b", b"", b"c"]), timeout=10))
check(got == [b"a", b"twice:b", b"twice:b", b"", b"c"], "stream: echoes in order %r" % got)
check(list(stream(iter([]), timeout=10)) == [], "stream: immediate half-close, OK")
# Far more response bytes than the server queues per stream (256 KiB): it stops
# decoding while grpcio catches up, and nothing is lost or reordered.
reqs = [b"%05d" % i + b"x" * 4000 for i in range(400)]
got = list(stream(iter(reqs), timeout=30))
check(got == reqs, "stream: 400 x 4 KB through the per-stream backpressure (%d back)" % len(got))
it = stream(iter([b"one", b"fail", b"never"]), timeout=10)
first = next(it)
e = rpc_error(lambda: list(it))
check(first == b"one" and e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT and
      e.details() == "bad stream message", "stream: an error after a response ends the call")
e = rpc_error(lambda: list(stream(iter([b"fail"]), timeout=10)))
check(e is not None and e.code() == grpc.StatusCode.INVALID_ARGUMENT, "stream: error first")
check(echo(b"after streams", timeout=5) == b"after streams", "unary after streams")

# Raw HTTP/2: responses in 3-byte DATA frames; a truncated last message is INTERNAL.
h, d = raw_call("/test.Echo/Stream", grpc_frame(b"p") + grpc_frame(b"q"), window=3)
check(h.get("grpc-status") == "0" and d == grpc_frame(b"p") + grpc_frame(b"q"),
      "raw stream: two responses through a 3-byte window")
h, d = raw_call("/test.Echo/Stream", grpc_frame(b"p") + grpc_frame(b"qqq")[:6])
check(h.get("grpc-status") == "13" and d == grpc_frame(b"p"),
      "raw stream: truncated last message after a response: INTERNAL in trailers")
h, d = raw_call("/test.Echo/Stream", grpc_frame(b"zz", flag=1))
check(h.get("grpc-status") == "3", "raw stream: compressed flag refused")


def stalled_stream():
    """A peer that sends requests but does not read responses: once the server's queue
    for the stream is full it stops taking request bytes (the stream's window is not
    returned), yet the connection still serves other streams; once the peer reads, all
    responses arrive."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    conn.increment_flow_control_window(1 << 30)
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                            (":path", "/test.Echo/Stream"), (":authority", "x"),
                            ("content-type", "application/grpc"), ("te", "trailers")])
    msg = grpc_frame(b"y" * 8000)
    want = 600  # 4.8 MB of requests: more than the 1 MiB stream window plus the queue
    body = msg * want
    sent = 0
    s.sendall(conn.data_to_send())
    s.settimeout(0.2)
    stuck_rounds = 0
    received, unacked = b"", 0
    # Phase 1: send what flow control allows; read frames but never grant window, so
    # the server's responses stall after 64 KiB and its queue fills.
    while sent < len(body) and stuck_rounds < 20:
        room = min(conn.local_settings.max_frame_size, conn.local_flow_control_window(sid),
                   len(body) - sent)
        if room > 0:
            conn.send_data(sid, body[sent:sent + room])
            sent += room
            stuck_rounds = 0
        else:
            stuck_rounds += 1
        s.sendall(conn.data_to_send())
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            chunk = b""
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.DataReceived):
                received += ev.data
                unacked += ev.flow_controlled_length
        s.sendall(conn.data_to_send())
    check(sent < len(body), "stalled stream: the server stopped returning window "
          "(%d of %d request bytes taken)" % (sent, len(body)))
    # Phase 2: read everything; the rest of the requests go through.
    s.settimeout(10)
    if unacked:
        conn.acknowledge_received_data(unacked, sid)
    done = False
    while not done:
        room = min(conn.local_settings.max_frame_size, conn.local_flow_control_window(sid),
                   len(body) - sent)
        if room > 0:
            conn.send_data(sid, body[sent:sent + room], end_stream=sent + room == len(body))
            sent += room
        s.sendall(conn.data_to_send())
        chunk = s.recv(65536)
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.DataReceived):
                received += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
            elif isinstance(ev, h2.events.StreamReset):
                break
        s.sendall(conn.data_to_send())
    s.close()
    check(done and received == body, "stalled stream: all %d responses once the peer reads"
          % want)


stalled_stream()

# Garbage instead of the preface: GOAWAY (frame type 7) or a plain close, never a hang.
s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
s.close()
frames, off = [], 0
while off + 9 <= len(got):
    ln = int.from_bytes(got[off:off + 3], "big")
    frames.append(got[off + 3])
    off += 9 + ln
check(not got or 7 in frames, "garbage peer: GOAWAY and close (frames %r)" % frames)
check(echo(b"still here", timeout=5) == b"still here", "server still serves after garbage")
print("ALL OK", flush=True)
