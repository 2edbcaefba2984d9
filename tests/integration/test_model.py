"""Model-based randomized test of the merge contract (PRODUCT.md "Semantics" and
"Details"): a small reference model and the real server receive the same seeded random
interleaving of stream events (duplicates, corrections, late events, missing ids, unknown
types, filtered events), batch builds and loads (new, stale and repeated generations,
coverages that overlap and that reach into the recent range) and restarts (SIGTERM and
SIGKILL); after every step, random reads with random filters must equal the model.

Event times keep well away from the horizon cutoff and the retention floor (the wall clock
moves while the test runs); the pure merge at exactly C is pinned in the engine's unit
tests. SEQD_MODEL_SEED and SEQD_MODEL_STEPS run it longer or otherwise on demand."""
import json
import math
import os
import random
import signal
import subprocess

import grpc

from helpers import (DAY, HOUR, SEQCTL_BIN, Producer, Seqd, derived_event_id, now_ms, pb,
                     poll)

SEED = int(os.environ.get("SEQD_MODEL_SEED", "20261125"))
STEPS = int(os.environ.get("SEQD_MODEL_STEPS", "45"))
USERS = list(range(1, 9))
TYPES = ["a", "b", "c"]
MAXLEN = 12
DEFINITION = {
    "bucket_ms": HOUR,
    "freshness_horizon_ms": DAY,
    "sequences": [{
        "name": "m", "event_types": TYPES, "max_length": MAXLEN, "retention_ms": 30 * DAY,
        "columns": ["x", {"name": "y", "default": -1}],
        "filters": [{"attribute": "x", "op": ">=", "value": 0, "event_types": ["c"]}],
    }],
}


def floor_hour(t):
    return t - t % HOUR


class Model:
    """The contract, written as plainly as possible."""

    def __init__(self):
        self.stream = {u: {} for u in USERS}  # user -> id -> event
        self.gen = 0
        self.cov = []  # [start, end, gen], sorted, non-overlapping
        self.data = {}  # gen -> user -> id -> event
        self.last = None  # (gen, start, end, users, events)
        self.watermark = 0

    @staticmethod
    def kept(e):
        if e["event_type"] not in TYPES:
            return False
        if e["event_type"] == "c":
            x = e.get("attributes", {}).get("x")
            return x is not None and x >= 0
        return True

    def apply_stream(self, e):
        if self.kept(e):
            self.stream[e["user_id"]][e["event_id"]] = e

    def load(self, gen, start, end, events):
        """Returns (code, response fields) as the server must answer."""
        if gen < self.gen:
            return grpc.StatusCode.FAILED_PRECONDITION, None
        if gen == self.gen:
            if self.last and self.last[1:3] == (start, end):
                return grpc.StatusCode.OK, self.last
            return grpc.StatusCode.FAILED_PRECONDITION, None
        per_user = {}
        for e in events:  # the builder: range, filters, last copy of an id wins
            if start <= e["event_time_ms"] < end and self.kept(e):
                per_user.setdefault(e["user_id"], {})[e["event_id"]] = e
        self.data[gen] = per_user
        cov = []
        for s, t, g in self.cov:
            if s < start:
                cov.append([s, min(t, start), g])
            if t > end:
                cov.append([max(s, end), t, g])
        cov.append([start, end, gen])
        self.cov = sorted(cov)
        self.gen = gen
        self.watermark = max(self.watermark, end)
        n = sum(len(v) for v in per_user.values())
        self.last = (gen, start, end, len(per_user), n)
        return grpc.StatusCode.OK, self.last

    def owner(self, t):
        for s, e, g in self.cov:
            if s <= t < e:
                return g
        return 0

    def read(self, user, now, max_events=0, since=0, until=0, types=()):
        C = now - DAY
        batch = {}
        for g in sorted({g for _, _, g in self.cov}):
            for i, e in self.data[g].get(user, {}).items():
                if self.owner(e["event_time_ms"]) == g:
                    batch[i] = e  # higher generations overwrite
        hist = {i for i, e in batch.items() if e["event_time_ms"] < C}
        stream = {i: e for i, e in self.stream[user].items()
                  if not (e["event_time_ms"] < C and self.owner(e["event_time_ms"]))
                  and i not in hist}
        merged = list(stream.values())
        merged += [e for i, e in batch.items() if e["event_time_ms"] < C or i not in stream]
        merged = [e for e in merged if e["event_time_ms"] >= now - 30 * DAY]
        merged.sort(key=lambda e: (e["event_time_ms"], e["event_id"].encode()), reverse=True)
        seq = merged[:MAXLEN]
        sel = [e for e in seq
               if (not since or e["event_time_ms"] >= since)
               and (not until or e["event_time_ms"] < until)
               and (not types or e["event_type"] in types)]
        return sel[:max_events] if max_events else sel


class Run:
    def __init__(self, tmp, rnd):
        self.rnd = rnd
        self.tmp = tmp
        self.now0 = now_ms()
        self.model = Model()
        self.produced = 0
        self.next_id = 0
        self.all_ids = []
        self.broker = subprocess.Popen([SEQCTL_BIN, "broker", "--partitions", "4"],
                                       stdout=subprocess.PIPE, text=True)
        line = self.broker.stdout.readline().strip()
        assert line.startswith("brokers="), line
        self.brokers = line.split("=", 1)[1]
        self.root = os.path.join(tmp, "root")
        os.makedirs(self.root)
        self.server = None
        self.start()
        self.producer = Producer(self.brokers)

    def start(self):
        wd = os.path.join(self.tmp, "w%d" % self.rnd.randrange(1 << 30))
        os.makedirs(wd)
        self.server = Seqd(wd, definition=DEFINITION, data_dir=os.path.join(self.tmp, "data"),
                           brokers=self.brokers, args=["--batch-root", self.root])
        self.server.start()
        self.definition_path = self.server.definition_path
        self.caught_up()

    def close(self):
        if self.server:
            self.server.kill()
        self.broker.send_signal(signal.SIGTERM)
        try:
            self.broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.broker.kill()

    # ---- random material ----
    def time(self):
        r = self.rnd.random()
        if r < 0.55:  # history: 20 to 3 days ago
            return self.now0 - self.rnd.randrange(3 * DAY, 20 * DAY)
        return self.now0 - self.rnd.randrange(HOUR, 12 * HOUR)  # recent

    def event(self, ids_from=None):
        r = self.rnd.random()
        e = {"user_id": self.rnd.choice(USERS), "event_time_ms": self.time(),
             "event_type": self.rnd.choice(TYPES + ["zzz"] if r < 0.05 else TYPES),
             "item_id": self.rnd.randrange(1, 1000)}
        attrs = {}
        if self.rnd.random() < 0.8:
            attrs["x"] = self.rnd.choice([-1.5, 0, 2.5, 7])
        if self.rnd.random() < 0.5:
            attrs["y"] = float(self.rnd.randrange(100))
        if attrs:
            e["attributes"] = attrs
        k = self.rnd.random()
        pool = ids_from if ids_from is not None else self.all_ids
        if k < 0.2 and pool:  # a duplicate or a correction of a known id
            uid, eid = self.rnd.choice(pool)
            e["user_id"], e["event_id"] = uid, eid
            if self.rnd.random() < 0.5:
                return e
        elif k < 0.45:  # no id: derived from the four fields
            e["event_id"] = derived_event_id(e["user_id"], e["event_time_ms"],
                                             e["event_type"], e["item_id"])
            return dict(e, _derived=True)
        else:
            self.next_id += 1
            e["event_id"] = "e%05d" % self.next_id
        self.all_ids.append((e["user_id"], e["event_id"]))
        return e

    @staticmethod
    def wire(e):
        ev = pb().Event(user_id=e["user_id"], event_time_ms=e["event_time_ms"],
                        event_type=e["event_type"], item_id=e["item_id"])
        if not e.get("_derived"):
            ev.event_id = e["event_id"]
        for k, v in e.get("attributes", {}).items():
            ev.attributes[k] = v
        return ev

    # ---- steps ----
    def caught_up(self):
        def done():
            st = self.server.status()["stream"]
            return sum(p["next_offset"] for p in st["partitions"]) == self.produced
        poll(done, "seqd to apply all %d produced messages" % self.produced)

    def step_stream(self):
        evs = [self.event() for _ in range(self.rnd.randrange(1, 25))]
        if self.rnd.random() < 0.3:  # equal times: the tie goes to the larger id
            for e in evs[1:3]:
                e["event_time_ms"] = evs[0]["event_time_ms"]
                if e.get("_derived"):
                    e["event_id"] = derived_event_id(e["user_id"], e["event_time_ms"],
                                                     e["event_type"], e["item_id"])
        for e in evs:
            self.producer.raw(str(e["user_id"]).encode(), self.wire(e).SerializeToString())
            self.model.apply_stream(e)
        self.producer.flush()
        self.produced += len(evs)
        self.caught_up()
        return "stream %d events" % len(evs)

    def load_args(self):
        m = self.model
        r = self.rnd.random()
        if m.last and r < 0.12:
            return m.gen, m.last[1], m.last[2]  # the same load again: a no-op
        if m.gen and r < 0.25:
            gen = max(1, m.gen - self.rnd.randrange(0, 2))  # stale, or same gen, new range
        else:
            gen = m.gen + self.rnd.randrange(1, 4)
        start = floor_hour(self.now0 - self.rnd.randrange(4 * DAY, 21 * DAY))
        if self.rnd.random() < 0.3:  # coverage that reaches into the recent range
            end = floor_hour(self.now0 - 2 * HOUR)
        else:
            end = start + HOUR * self.rnd.randrange(1, 5 * 24)
            end = min(end, floor_hour(self.now0 - 3 * DAY))
            if end <= start:
                end = start + HOUR
        return gen, start, end

    def step_load(self):
        gen, start, end = self.load_args()
        pool = self.all_ids
        evs = [self.event(ids_from=pool) for _ in range(self.rnd.randrange(0, 40))]
        for e in evs:  # most inside the range, some out of it (counted, skipped)
            if self.rnd.random() < 0.85:
                e["event_time_ms"] = self.rnd.randrange(start, end)
                if e.get("_derived"):
                    e["event_id"] = derived_event_id(e["user_id"], e["event_time_ms"],
                                                     e["event_type"], e["item_id"])
        name = "b%d" % self.rnd.randrange(1 << 30)
        src = os.path.join(self.tmp, name + ".jsonl")
        with open(src, "w") as f:
            for e in evs:
                f.write(json.dumps({k: v for k, v in e.items() if k != "_derived"}) + "\n")
        out = os.path.join(self.root, name)
        r = subprocess.run([SEQCTL_BIN, "build", "--definition", self.definition_path,
                            "--sequence", "m", "--start-ms", str(start), "--end-ms", str(end),
                            "--generation", str(gen), "--out", out, src],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        paths = sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".sst"))
        want_code, want = self.model.load(gen, start, end, evs)
        req = pb().LoadBatchRequest(sequence="m", start_ms=start, end_ms=end, generation=gen,
                                    sst_paths=paths)
        try:
            resp = self.server.stub().LoadBatch(req, timeout=120)
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code, resp = e.code(), None
        assert code == want_code, ("load gen %d [%d,%d): %s, model %s"
                                   % (gen, start, end, code, want_code))
        if want:
            assert (resp.generation, resp.users, resp.events) == (want[0], want[3], want[4])
        return "load gen %d [%d, %d) %d events: %s" % (gen, start, end, len(evs), code.name)

    def step_restart(self):
        sig = self.rnd.choice([signal.SIGTERM, signal.SIGKILL])
        if sig == signal.SIGTERM:
            assert self.server.stop(sig) == 0
        else:
            self.server.kill()
        self.start()
        return "restart after %s" % sig.name

    def check_reads(self, n=8):
        for _ in range(n):
            user = self.rnd.choice(USERS)
            kw = {}
            if self.rnd.random() < 0.3:
                kw["max_events"] = self.rnd.randrange(1, MAXLEN + 3)
            if self.rnd.random() < 0.25:
                kw["since"] = self.time()
            if self.rnd.random() < 0.25:
                kw["until"] = self.time()
            if kw.get("since", 0) > kw.get("until", 1 << 62):
                kw["since"], kw["until"] = kw["until"], kw["since"]
            if self.rnd.random() < 0.2:
                kw["types"] = self.rnd.sample(TYPES, self.rnd.randrange(1, 3))
            self.check_one(user, **kw)

    def check_one(self, user, max_events=0, since=0, until=0, types=()):
        req = pb().GetSequenceRequest(user_id=user, sequence="m", max_events=max_events,
                                      since_ms=since, until_ms=until, event_types=list(types))
        resp = self.server.stub().GetSequence(req, timeout=30)
        want = self.model.read(user, now_ms(), max_events, since, until, types)
        got = list(zip(resp.timestamps_ms, resp.item_ids, resp.event_types))
        exp = [(e["event_time_ms"], e["item_id"], TYPES.index(e["event_type"])) for e in want]
        ctx = "user %d max=%d since=%d until=%d types=%s" % (user, max_events, since, until, types)
        if got != exp:
            known = [("stream", e) for e in self.model.stream[user].values()]
            for g, d in self.model.data.items():
                known += [("gen%d" % g, e) for e in d.get(user, {}).values()]
            extra = [k for k in known if (k[1]["event_time_ms"], k[1]["item_id"]) in
                     {(t, i) for t, i, _ in got}]
            raise AssertionError("%s\n got %s\nwant %s\nids %s\nknown %s\ncov %s"
                                 % (ctx, got, exp, [e["event_id"] for e in want], extra,
                                    self.model.cov))
        cols = {c.name: list(c.values) for c in resp.columns}
        for name, dflt in (("x", math.nan), ("y", -1.0)):
            wantc = [e.get("attributes", {}).get(name, dflt) for e in want]
            gotc = cols.get(name, [])
            assert len(gotc) == len(wantc) and all(
                a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(gotc, wantc)), (
                ctx, name, gotc, wantc)
        assert resp.batch_generation == self.model.gen, ctx
        assert resp.batch_watermark_ms == self.model.watermark, ctx


def test_model(tmp_path, stubs):
    rnd = random.Random(SEED)
    run = Run(str(tmp_path), rnd)
    log = []
    try:
        for i in range(STEPS):
            r = rnd.random()
            if r < 0.5:
                what = run.step_stream()
            elif r < 0.88:
                what = run.step_load()
            else:
                what = run.step_restart()
            log.append(what)
            try:
                run.check_reads()
            except AssertionError as e:
                raise AssertionError("after step %d (%s); steps so far:\n  %s\n%s"
                                     % (i, what, "\n  ".join(log), e))
        # every user, unfiltered, at the end
        for u in USERS:
            run.check_one(u)
    finally:
        run.close()
