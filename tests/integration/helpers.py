"""Shared machinery of the integration tests: paths of the binaries, generated Python
stubs, a handle on a running seqd (start, wait for the ready line, call, stop), a Kafka
producer for events, and polling helpers. Tests assert behaviour, never timing: every
wait polls until a condition holds, with a generous bound that only catches hangs."""
import copy
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SOURCE = os.environ.get("SEQD_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEQD_BUILD") or os.path.join(SOURCE, "build")
SEQD_BIN = os.environ.get("SEQD_BIN") or os.path.join(BUILD, "seqd")
SEQCTL_BIN = os.environ.get("SEQCTL_BIN") or os.path.join(BUILD, "seqctl")

WAIT_S = 60.0  # bound on any poll: only a hang or a real failure reaches it
HOUR = 3600000
DAY = 24 * HOUR

# The product's example definition (PRODUCT.md), plus a short sequence for trimming and
# retention tests.
EXAMPLE_DEFINITION = {
    "bucket_ms": HOUR,
    "freshness_horizon_ms": DAY,
    "max_future_ms": 300000,
    "sequences": [
        {
            "name": "engagements",
            "event_types": ["click", "save", "view"],
            "max_length": 1000,
            "retention_ms": 90 * DAY,
            "columns": ["dwell_ms", {"name": "position", "default": -1}],
            "filters": [{"attribute": "dwell_ms", "op": ">=", "value": 500,
                         "event_types": ["view"]}],
        }
    ],
}


def make_test_definition():
    d = copy.deepcopy(EXAMPLE_DEFINITION)
    d["sequences"].append({
        "name": "short",
        "event_types": ["click", "view"],
        "max_length": 5,
        "retention_ms": 7 * DAY,
        "columns": [],
    })
    return d


def now_ms():
    return int(time.time() * 1000)


# ---- generated stubs ----

_stubs = None


def stubs():
    """(seqd_pb2, seqd_pb2_grpc, health_pb2, health_pb2_grpc), generated once per process.
    health.proto is generated flat (health_pb2) so its directory does not shadow the real
    `grpc` package."""
    global _stubs
    if _stubs:
        return _stubs
    out = tempfile.mkdtemp(prefix="seqd-stubs-")
    proto = os.path.join(SOURCE, "proto")
    plugin = "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"
    subprocess.run(["protoc", "--proto_path=" + proto, "--python_out=" + out,
                    "--grpc_out=" + out, plugin, "seqd/v1/seqd.proto"], check=True)
    hdir = os.path.join(proto, "grpc", "health", "v1")
    subprocess.run(["protoc", "--proto_path=" + hdir, "--python_out=" + out,
                    "--grpc_out=" + out, plugin, "health.proto"], check=True)
    sys.path.insert(0, out)
    from seqd.v1 import seqd_pb2, seqd_pb2_grpc  # noqa: E402
    import health_pb2
    import health_pb2_grpc
    _stubs = (seqd_pb2, seqd_pb2_grpc, health_pb2, health_pb2_grpc)
    return _stubs


def pb():
    return stubs()[0]


def make_event(user_id, time_ms, event_type, item_id=0, event_id=None, attributes=None):
    ev = pb().Event(user_id=user_id, event_time_ms=time_ms, event_type=event_type,
                    item_id=item_id)
    if event_id is not None:
        ev.event_id = event_id
    for k, v in (attributes or {}).items():
        ev.attributes[k] = v
    return ev


# ---- Kafka ----

class Producer:
    """confluent_kafka producer keyed by user id, placed as seqctl produce places them
    (Kafka's murmur2); partitioner="consistent_random" plays a producer with librdkafka's
    default, whose events arrive misrouted."""

    def __init__(self, brokers, topic="seqd.events", partitioner="murmur2_random"):
        from confluent_kafka import Producer as KP
        self.topic = topic
        self.p = KP({"bootstrap.servers": brokers, "linger.ms": 2,
                     "message.timeout.ms": 60000, "partitioner": partitioner})
        self.errors = []

    def _cb(self, err, msg):
        if err is not None:
            self.errors.append(err)

    def raw(self, key, value):
        while True:
            try:
                self.p.produce(self.topic, key=key, value=value, on_delivery=self._cb)
                break
            except BufferError:
                self.p.poll(0.1)
        self.p.poll(0)

    def events(self, events):
        for ev in events:
            if isinstance(ev, dict):
                ev = make_event(**ev)
            self.raw(str(ev.user_id).encode(), ev.SerializeToString())
        self.flush()

    def flush(self):
        left = self.p.flush(60)
        assert left == 0, "%d messages not delivered" % left
        assert not self.errors, self.errors


def poll(cond, what, timeout=WAIT_S, interval=0.05):
    """Calls cond() until it returns a truthy value; returns it. Fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except Exception as e:  # a server still starting, a transient read error
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


# ---- a running seqd ----

READY_RE = re.compile(r"seqd ready grpc=(\S+) admin=(\S+) brokers=(\S+)")


class Seqd:
    """One seqd process on free ports with its own data dir. Always stopped by its owner
    (the fixtures call kill() at teardown)."""

    def __init__(self, workdir, definition=None, data_dir=None, args=(), brokers=None,
                 definition_path=None):
        self.workdir = workdir
        self.data_dir = data_dir or os.path.join(workdir, "data")
        if definition_path is None:
            definition_path = os.path.join(workdir, "definition.json")
            with open(definition_path, "w") as f:
                json.dump(definition if definition is not None else make_test_definition(), f)
        self.definition_path = definition_path
        self.args = list(args)
        self.ext_brokers = brokers
        self.proc = None
        self.channel = None

    def command(self):
        cmd = [SEQD_BIN, "--definition", self.definition_path, "--data-dir", self.data_dir,
               "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
               "--threads", "2", "--cache-mb", "64"]
        if self.ext_brokers:
            cmd += ["--brokers", self.ext_brokers]
        return cmd + self.args

    def start(self, expect_ready=True):
        self.stderr_path = os.path.join(self.workdir, "seqd.%d.stderr" % time.monotonic_ns())
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        lines = queue.Queue()
        # reads stdout to the end so the pipe never fills and blocks the server
        threading.Thread(target=self._pump, args=(self.proc.stdout, lines), daemon=True).start()
        if not expect_ready:
            return self
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                rc = self.proc.poll()
                self.kill()
                raise AssertionError("seqd did not become ready (exit %r): %s"
                                     % (rc, self.stderr_text()))
            m = READY_RE.search(line)
            if m:
                self.grpc, self.admin, self.brokers = m.groups()
                return self

    @staticmethod
    def _pump(f, q):
        for line in f:
            q.put(line)
        q.put(None)

    def stderr_text(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()
        except OSError:
            return ""

    def wait_exit(self, timeout=WAIT_S):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("seqd did not exit")

    def stop(self, sig=signal.SIGTERM):
        """Sends sig, returns the exit code."""
        self.close_channel()
        self.proc.send_signal(sig)
        return self.wait_exit()

    def kill(self):
        self.close_channel()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "stderr", None):
            self.stderr.close()

    # ---- gRPC ----

    def close_channel(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def stub(self):
        import grpc
        if self.channel is None:
            self.channel = grpc.insecure_channel(self.grpc)
        return stubs()[1].SequenceServiceStub(self.channel)

    def health(self):
        self.stub()
        return stubs()[3].HealthStub(self.channel)

    def raw_call(self, method, payload, timeout=30):
        """A unary call with raw request bytes; returns raw response bytes."""
        self.stub()
        f = self.channel.unary_unary(method, request_serializer=None,
                                     response_deserializer=None)
        return f(payload, timeout=timeout)

    def get(self, user_id, sequence="engagements", **kw):
        req = pb().GetSequenceRequest(user_id=user_id, sequence=sequence, **kw)
        return self.stub().GetSequence(req, timeout=30)

    def wait_visible(self, user_id, n, sequence="engagements", **kw):
        """Polls until the user's sequence holds exactly n events; returns the response."""
        return poll(lambda: (lambda r: r if len(r.timestamps_ms) == n else None)(
            self.get(user_id, sequence, **kw)),
            "user %d to have %d events in %s" % (user_id, n, sequence))

    def wait_item(self, user_id, item_id, sequence="engagements"):
        """Polls until item_id shows in the user's sequence (a sentinel produced after
        the events under test, on the same partition since the key is the user)."""
        return poll(lambda: (lambda r: r if item_id in r.item_ids else None)(
            self.get(user_id, sequence)), "item %d for user %d" % (item_id, user_id))

    # ---- admin ----

    def http(self, path):
        """(status, body text) of GET http://admin/path."""
        try:
            with urllib.request.urlopen("http://%s%s" % (self.admin, path), timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def status(self):
        code, body = self.http("/status")
        assert code == 200, (code, body)
        return json.loads(body)

    def counts(self):
        return self.status()["counts"]

    def metric(self, name):
        """Sum of the samples of one metric (all label sets) in /metrics."""
        code, body = self.http("/metrics")
        assert code == 200
        total, seen = 0.0, False
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if m and m.group(1) == name:
                total += float(m.group(3))
                seen = True
        assert seen, "metric %s missing" % name
        return total

    def producer(self, topic="seqd.events"):
        return Producer(self.brokers, topic)

    def seqctl(self, *args, input=None, check=False):
        r = subprocess.run([SEQCTL_BIN, "--server", self.grpc, "--admin", self.admin]
                           + [str(a) for a in args], capture_output=True, text=True,
                           input=input, timeout=120)
        if check:
            assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        return r


def batch_root_server(workdir, args=()):
    """A started seqd whose --batch-root is <workdir>/root (kept as .root)."""
    root = os.path.join(workdir, "root")
    os.makedirs(root)
    s = Seqd(workdir, args=["--batch-root", root] + list(args))
    s.root = root
    return s.start()


def asan_build():
    """Is seqd built with AddressSanitizer? (Its shadow memory and quarantine make RSS
    figures meaningless: RSS bounds are for the plain build.)"""
    out = subprocess.run(["ldd", SEQD_BIN], capture_output=True, text=True).stdout
    return "libasan" in out


def tsan_build():
    """Is seqd built with ThreadSanitizer? (Same caveat for RSS: its shadow memory.)"""
    out = subprocess.run(["ldd", SEQD_BIN], capture_output=True, text=True).stdout
    return "libtsan" in out


_next_user = [1000]


def new_user():
    """A user id no other test in this process touched."""
    _next_user[0] += 1
    return _next_user[0]


def column(resp, name):
    for c in resp.columns:
        if c.name == name:
            return list(c.values)
    raise AssertionError("no column %s in %s" % (name, [c.name for c in resp.columns]))


def same_float(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def derived_event_id(user_id, time_ms, event_type, item_id):
    """The README's derivation: "d" + 16 hex digits of FNV-1a 64 over
    "<user_id>:<event_time_ms>:<event_type>:<item_id>"."""
    h = 0xcbf29ce484222325
    for b in ("%d:%d:%s:%d" % (user_id, time_ms, event_type, item_id)).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "d%016x" % h
