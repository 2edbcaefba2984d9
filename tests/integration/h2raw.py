"""A raw HTTP/2 client (python3-h2) for what grpcio will not do: exact grpc-timeout
values, hostile frames, and reading GOAWAY."""
import socket
import struct

import h2.config
import h2.connection
import h2.events


class H2Conn:
    def __init__(self, hostport, timeout=30):
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.authority = hostport
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.sock.close()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def unary(self, path, message, extra=()):
        """One gRPC call; returns (grpc-status int or None, grpc-message, response bytes)."""
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", self.authority),
                   (":path", path), ("content-type", "application/grpc"), ("te", "trailers")]
        self.conn.send_headers(sid, headers + list(extra))
        self.conn.send_data(sid, struct.pack(">BI", 0, len(message)) + message, end_stream=True)
        self.flush()
        hdrs, body = {}, b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                break
            done = False
            for ev in self.conn.receive_data(data):
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    hdrs.update({k.decode() if isinstance(k, bytes) else k:
                                 v.decode() if isinstance(v, bytes) else v
                                 for k, v in ev.headers})
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = ev.stream_id == sid
            self.flush()
            if done:
                break
        status = hdrs.get("grpc-status")
        return (int(status) if status is not None else None, hdrs.get("grpc-message", ""),
                body[5:])


def read_until_close(sock, limit=1 << 20):
    """All bytes the server sends until it closes (or the socket times out)."""
    out = b""
    try:
        while len(out) < limit:
            d = sock.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def frames(data):
    """(type, flags, stream_id, payload) of each whole HTTP/2 frame in data."""
    out, i = [], 0
    while i + 9 <= len(data):
        ln = int.from_bytes(data[i:i + 3], "big")
        typ, flags = data[i + 3], data[i + 4]
        sid = int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF
        out.append((typ, flags, sid, data[i + 9:i + 9 + ln]))
        i += 9 + ln
    return out


GOAWAY = 0x7
