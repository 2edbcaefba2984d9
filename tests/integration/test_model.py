"""Model-based randomized test of the merge contract (PRODUCT.md "Semantics" and
"Details"): a small reference model and the real server receive the same seeded random
interleaving of stream events (duplicates, corrections, late events, missing ids, unknown
types, filtered events), batch builds and loads (new, stale and repeated generations,
coverages that overlap and that reach into the recent range), rollbacks (to loads in
effect, undone or never committed, and of the newest) and restarts (SIGTERM and SIGKILL);
after every step, random reads with random filters, views and provenance must equal the
model, now and as of the moment after any earlier step (the model keeps a copy of each).

Event times keep well away from the horizon cutoff and the retention floor (the wall clock
moves while the test runs); the pure merge at exactly C is pinned in the engine's unit
tests. SEQD_MODEL_SEED and SEQD_MODEL_STEPS run it longer or otherwise on demand."""
import json
import math
import os
import random
import signal
import subprocess
import time

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
        self.data = {}  # gen -> user -> id -> event
        self.loads = []  # [gen, start, end, users, events, undone], commit order
        self.max_gen = 0

    def snapshot(self):
        """A deep enough copy for as-of reads of this moment."""
        m = Model()
        m.stream = {u: dict(d) for u, d in self.stream.items()}
        m.data = self.data  # never modified once loaded
        m.loads = [list(x) for x in self.loads]
        m.max_gen = self.max_gen
        return m

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

    def in_effect(self):
        return [x for x in self.loads if not x[5]]

    @property
    def gen(self):
        e = self.in_effect()
        return e[-1][0] if e else 0

    @property
    def watermark(self):
        return max((x[2] for x in self.in_effect()), default=0)

    @property
    def cov(self):
        cov = []
        for g, start, end, _, _, _ in self.in_effect():
            nxt = []
            for s, t, og in cov:
                if s < start:
                    nxt.append([s, min(t, start), og])
                if t > end:
                    nxt.append([max(s, end), t, og])
            nxt.append([start, end, g])
            cov = sorted(nxt)
        return cov

    def load(self, gen, start, end, events):
        """Returns (code, response fields) as the server must answer."""
        e = self.in_effect()
        if gen <= self.max_gen:
            if e and gen == e[-1][0] and tuple(e[-1][1:3]) == (start, end):
                return grpc.StatusCode.OK, tuple(e[-1][:5])
            return grpc.StatusCode.FAILED_PRECONDITION, None
        per_user = {}
        for ev in events:  # the builder: range, filters, last copy of an id wins
            if start <= ev["event_time_ms"] < end and self.kept(ev):
                per_user.setdefault(ev["user_id"], {})[ev["event_id"]] = ev
        self.data[gen] = per_user
        n = sum(len(v) for v in per_user.values())
        self.loads.append([gen, start, end, len(per_user), n, False])
        self.max_gen = gen
        return grpc.StatusCode.OK, tuple(self.loads[-1][:5])

    def rollback(self, to):
        """(code, generation after) as the server must answer."""
        e = self.in_effect()
        if not e:
            return grpc.StatusCode.FAILED_PRECONDITION, None
        if to == 0:
            to = e[-2][0] if len(e) > 1 else 0
        else:
            rec = [x for x in self.loads if x[0] == to]
            if not rec or rec[0][5]:
                return grpc.StatusCode.FAILED_PRECONDITION, None
            if to == e[-1][0]:
                return grpc.StatusCode.OK, to
        for x in e:
            if x[0] > to:
                x[5] = True
        return grpc.StatusCode.OK, to

    def owner(self, t, cov):
        for s, e, g in cov:
            if s <= t < e:
                return g
        return 0

    def read(self, user, now, max_events=0, since=0, until=0, types=(), view=0):
        """The answer as [(event, generation or 0 for the stream)], newest first."""
        C = now - DAY
        cov = self.cov if view != 1 else []
        batch = {}
        for g in sorted({g for _, _, g in cov}):
            for i, e in self.data[g].get(user, {}).items():
                if self.owner(e["event_time_ms"], cov) == g:
                    batch[i] = (e, g)  # higher generations overwrite
        if view == 2:
            merged = list(batch.values())
        elif view == 1:
            merged = [(e, 0) for e in self.stream[user].values()]
        else:
            hist = {i for i, (e, _) in batch.items() if e["event_time_ms"] < C}
            stream = {i: e for i, e in self.stream[user].items()
                      if not (e["event_time_ms"] < C and self.owner(e["event_time_ms"], cov))
                      and i not in hist}
            merged = [(e, 0) for e in stream.values()]
            merged += [(e, g) for i, (e, g) in batch.items()
                       if e["event_time_ms"] < C or i not in stream]
        merged = [x for x in merged if x[0]["event_time_ms"] >= now - 30 * DAY]
        merged.sort(key=lambda x: (x[0]["event_time_ms"], x[0]["event_id"].encode()),
                    reverse=True)
        seq = merged[:MAXLEN]
        sel = [x for x in seq
               if (not since or x[0]["event_time_ms"] >= since)
               and (not until or x[0]["event_time_ms"] < until)
               and (not types or x[0]["event_type"] in types)]
        return sel[:max_events] if max_events else sel


class Run:
    def __init__(self, tmp, rnd):
        self.rnd = rnd
        self.tmp = tmp
        self.now0 = now_ms()
        self.model = Model()
        self.produced = 0
        self.snapshots = []  # (wall-clock ms, model state then)
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
        e = m.in_effect()
        if e and r < 0.12:
            return e[-1][0], e[-1][1], e[-1][2]  # the committed load again: a no-op
        if m.max_gen and r < 0.25:
            # stale, the committed one with a new range, or an undone one (rolled back)
            gen = max(1, self.rnd.choice([m.gen, m.max_gen]) - self.rnd.randrange(0, 2))
        else:
            gen = m.max_gen + self.rnd.randrange(1, 4)
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

    def step_rollback(self):
        m = self.model
        r = self.rnd.random()
        known = [x[0] for x in m.loads]
        if r < 0.3 or not known:
            to = 0
        elif r < 0.9:
            to = self.rnd.choice(known)  # in effect, the newest, or undone
        else:
            to = m.max_gen + self.rnd.randrange(1, 5)  # never committed
        want_code, want = m.rollback(to)
        req = pb().RollbackBatchRequest(sequence="m", generation=to)
        try:
            resp = self.server.stub().RollbackBatch(req, timeout=120)
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code, resp = e.code(), None
        assert code == want_code, "rollback to %d: %s, model %s" % (to, code, want_code)
        if resp:
            assert resp.generation == want
        return "rollback to %d: %s" % (to, code.name)

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
            if self.rnd.random() < 0.3:
                kw["view"] = self.rnd.choice([1, 2])
            kw["provenance"] = self.rnd.random() < 0.5
            if self.snapshots and self.rnd.random() < 0.3:  # as of an earlier moment
                kw["as_of"] = self.rnd.randrange(len(self.snapshots))
            self.check_one(user, **kw)

    def mark(self):
        """After a step, with everything applied and visible: this moment's model state,
        for as-of reads of it later (a wall-clock instant strictly after the step)."""
        time.sleep(0.005)
        self.snapshots.append((now_ms(), self.model.snapshot()))
        time.sleep(0.005)

    def check_one(self, user, max_events=0, since=0, until=0, types=(), view=0,
                  provenance=False, as_of=None):
        t, model = (0, self.model) if as_of is None else self.snapshots[as_of]
        req = pb().GetSequenceRequest(user_id=user, sequence="m", max_events=max_events,
                                      since_ms=since, until_ms=until, event_types=list(types),
                                      view=view, include_provenance=provenance, as_of_ms=t)
        resp = self.server.stub().GetSequence(req, timeout=30)
        want_p = model.read(user, t or now_ms(), max_events, since, until, types, view)
        want = [e for e, _ in want_p]
        got = list(zip(resp.timestamps_ms, resp.item_ids, resp.event_types))
        exp = [(e["event_time_ms"], e["item_id"], TYPES.index(e["event_type"])) for e in want]
        ctx = "user %d max=%d since=%d until=%d types=%s view=%d as_of=%s" % (
            user, max_events, since, until, types, view, as_of)
        if got != exp:
            known = [("stream", e) for e in model.stream[user].values()]
            for g, d in model.data.items():
                known += [("gen%d" % g, e) for e in d.get(user, {}).values()]
            extra = [k for k in known if (k[1]["event_time_ms"], k[1]["item_id"]) in
                     {(t, i) for t, i, _ in got}]
            raise AssertionError("%s\n got %s\nwant %s\nids %s\nknown %s\ncov %s"
                                 % (ctx, got, exp, [e["event_id"] for e in want], extra,
                                    model.cov))
        cols = {c.name: list(c.values) for c in resp.columns}
        for name, dflt in (("x", math.nan), ("y", -1.0)):
            wantc = [e.get("attributes", {}).get(name, dflt) for e in want]
            gotc = cols.get(name, [])
            assert len(gotc) == len(wantc) and all(
                a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(gotc, wantc)), (
                ctx, name, gotc, wantc)
        assert resp.batch_generation == model.gen, ctx
        assert resp.batch_watermark_ms == model.watermark, ctx
        if provenance:
            assert list(resp.sources) == [1 if g else 0 for _, g in want_p], ctx
            assert list(resp.generations) == [g for _, g in want_p], ctx
        else:
            assert len(resp.sources) == 0 and len(resp.generations) == 0, ctx
        if t:
            assert resp.as_of_ms == t, ctx


def test_model(tmp_path, stubs):
    rnd = random.Random(SEED)
    run = Run(str(tmp_path), rnd)
    log = []
    try:
        for i in range(STEPS):
            r = rnd.random()
            if r < 0.45:
                what = run.step_stream()
            elif r < 0.78:
                what = run.step_load()
            elif r < 0.9:
                what = run.step_rollback()
            else:
                what = run.step_restart()
            log.append(what)
            run.mark()
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
