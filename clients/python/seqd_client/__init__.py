"""A routing client for a seqd cluster (README, "A cluster of nodes").

    from seqd_client import SeqdClient
    c = SeqdClient(["10.0.0.1:50051", "10.0.0.2:50051"])
    r = c.get(42, "engagements", max_events=100)            # GetSequenceResponse
    a = c.get_arrays(42, "engagements")                      # NumPy arrays for a model
    rs = c.batch_get([(42, "engagements"), (7, "engagements")])

It fetches the cluster map (ClusterService/GetClusterMap) from any seed, computes a
user's partition with Kafka's murmur2 (as seqd does), and calls a caught-up holder of it
directly (one hop, no forwarding): one caught up without a gap first (a holder whose map
entry lists the partition in `gap_partitions` holds its stream only from `gap_from_ms`
on: the Kafka log no longer reached back when it took the partition), a ready one first.
On UNAVAILABLE (or DATA_LOSS, FAILED_PRECONDITION, no answer) it refreshes the map and
tries the next holder, within the call's deadline. The map is also refreshed every
`refresh_s` seconds. `get_served` also returns the id of the node that read storage (the
`seqd-served-by` trailer): where the only caught-up holder has a gap, that is the node
named there."""
import threading
import time

import grpc

from .partition import murmur2, partition_of_user  # noqa: F401
from . import stubs as _stubs

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
             grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED)


class SeqdClient:
    def __init__(self, seeds, timeout=1.0, refresh_s=30.0):
        if isinstance(seeds, str):
            seeds = [seeds]
        self.pb, self.pbg = _stubs.load()
        self.seeds = list(seeds)
        self.timeout = timeout
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._channels = {}
        self._map = None
        self._map_at = 0.0
        self._owners = {}
        self.refresh()

    # ---- the map ----

    def _channel(self, addr):
        with self._lock:
            ch = self._channels.get(addr)
            if ch is None:
                ch = self._channels[addr] = grpc.insecure_channel(addr)
            return ch

    def refresh(self):
        """Fetches the cluster map from the first seed or known node that answers."""
        known = [n.grpc for n in self._map.nodes] if self._map else []
        err = None
        for addr in self.seeds + [a for a in known if a not in self.seeds]:
            try:
                m = self.pbg.ClusterServiceStub(self._channel(addr)).GetClusterMap(
                    self.pb.GetClusterMapRequest(), timeout=self.timeout)
            except grpc.RpcError as e:
                err = e
                continue
            self._install(m)
            return m
        raise RuntimeError("seqd_client: no node answered GetClusterMap: %s" % err)

    @staticmethod
    def _rank(n, p, gaps):
        """How good a holder of partition p node n is, best 0: caught up without a gap
        (ready, then not), with a gap (ready, then not), still filling."""
        if p not in n.caught_up:
            return 4
        return (2 if p in gaps else 0) + (0 if n.ready else 1)

    def _install(self, m):
        owners = {}
        holders = [(n, set(n.partitions), set(n.gap_partitions)) for n in m.nodes]
        for p in range(m.partitions):
            ranked = sorted((self._rank(n, p, gaps), i, n.grpc)
                            for i, (n, held, gaps) in enumerate(holders) if p in held)
            owners[p] = [addr for _, _, addr in ranked]
        with self._lock:
            self._map, self._map_at, self._owners = m, time.monotonic(), owners

    def cluster_map(self):
        return self._map

    def partition(self, user_id):
        return partition_of_user(user_id, self._map.partitions)

    def holders(self, user_id):
        """gRPC addresses holding the user's partition, best first (caught up first)."""
        if time.monotonic() - self._map_at > self.refresh_s:
            try:
                self.refresh()
            except RuntimeError:
                pass
        return list(self._owners.get(self.partition(user_id), []))

    # ---- calls ----

    def _call(self, user_id, method, request, timeout, with_call=False):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        tried, last = [], None
        refreshed = False
        while True:
            cands = [a for a in self.holders(user_id) if a not in tried]
            if not cands and not refreshed:
                refreshed = True
                try:
                    self.refresh()
                except RuntimeError:
                    pass
                continue
            if not cands:
                # nothing left in the map: any node answers any read (it forwards)
                cands = [a for a in self.seeds if a not in tried]
            if not cands:
                raise last if last else RuntimeError("seqd_client: no node holds user %d" % user_id)
            addr = cands[0]
            tried.append(addr)
            left = deadline - time.monotonic()
            if left <= 0:
                raise last if last else RuntimeError("seqd_client: deadline exceeded")
            stub = self.pbg.SequenceServiceStub(self._channel(addr))
            try:
                if with_call:
                    return getattr(stub, method).with_call(request, timeout=left)
                return getattr(stub, method)(request, timeout=left)
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE:
                    raise
                last = e
                if not refreshed:
                    refreshed = True
                    try:
                        self.refresh()
                    except RuntimeError:
                        pass

    def get(self, user_id, sequence, timeout=None, **fields):
        """GetSequence for one user at a holder of its partition."""
        req = self.pb.GetSequenceRequest(user_id=user_id, sequence=sequence, **fields)
        return self._call(user_id, "GetSequence", req, timeout)

    def get_served(self, user_id, sequence, timeout=None, **fields):
        """(GetSequenceResponse, id of the node that read storage): the seqd-served-by
        trailer, e.g. to tell an answer of a holder caught up with a gap."""
        req = self.pb.GetSequenceRequest(user_id=user_id, sequence=sequence, **fields)
        resp, call = self._call(user_id, "GetSequence", req, timeout, with_call=True)
        return resp, dict(call.trailing_metadata()).get("seqd-served-by")

    def get_list(self, user_id, sequence, **kw):
        """The sequence as a list of dicts, newest first."""
        r = self.get(user_id, sequence, **kw)
        cols = {c.name: list(c.values) for c in r.columns}
        return [dict(time_ms=r.timestamps_ms[i], item_id=r.item_ids[i], type=r.event_types[i],
                     **{n: v[i] for n, v in cols.items()}) for i in range(len(r.timestamps_ms))]

    def get_arrays(self, user_id, sequence, **kw):
        """The sequence as NumPy arrays (timestamps_ms int64, item_ids uint64, event_types
        uint32, one float64 array per column), newest first: ready for a model."""
        import numpy as np
        r = self.get(user_id, sequence, **kw)
        out = {"timestamps_ms": np.array(r.timestamps_ms, dtype=np.int64),
               "item_ids": np.array(r.item_ids, dtype=np.uint64),
               "event_types": np.array(r.event_types, dtype=np.uint32)}
        for c in r.columns:
            out[c.name] = np.array(c.values, dtype=np.float64)
        return out

    def batch_get(self, requests, timeout=None):
        """[(user_id, sequence) or GetSequenceRequest, ...] -> responses in that order.
        Entries are grouped by the holder of their partition and asked in parallel."""
        reqs = [r if isinstance(r, self.pb.GetSequenceRequest)
                else self.pb.GetSequenceRequest(user_id=r[0], sequence=r[1]) for r in requests]
        groups = {}
        for i, r in enumerate(reqs):
            h = self.holders(r.user_id)
            groups.setdefault(h[0] if h else None, []).append(i)
        out = [None] * len(reqs)
        errors = []

        def run(idx):
            first = reqs[idx[0]].user_id
            try:
                resp = self._call(first, "BatchGetSequences",
                                  self.pb.BatchGetSequencesRequest(requests=[reqs[i] for i in idx]),
                                  timeout)
                for i, r in zip(idx, resp.responses):
                    out[i] = r
            except Exception as e:  # re-raised below, in the caller's thread
                errors.append(e)
        threads = [threading.Thread(target=run, args=(idx,)) for idx in groups.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return out

    def close(self):
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
