"""Damaged stored data, end to end (issue 10, item 3): a stopped seqd's stream buckets of one
user are overwritten with bytes that do not decode (tests/tools/dbdamage); after a restart,
that user's reads answer DATA_LOSS naming the user and the sequence (never a wrong OK), the
other users are served, ingest goes on (also into the damaged user's buckets: the consumer
reads nothing to write), and the damage is counted (seqd_storage_corrupt_total) and listed
in /status with where it was found."""
import os
import signal
import subprocess

import grpc
import pytest

from helpers import BUILD, make_event, now_ms, poll
from test_crash import DEFINITION, start_broker

DBDAMAGE = os.path.join(BUILD, "tests", "dbdamage")


def test_damaged_bucket_answers_data_loss(seqd_factory, tmp_path):
    broker, brokers = start_broker()
    try:
        data = str(tmp_path / "data")
        s = seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers)
        base = now_ms() - 3600000
        s.producer().events([make_event(u, base + i, "click", i, "c-%d-%d" % (u, i), {"n": 1.0})
                             for u in (1, 2, 3) for i in range(5)])
        poll(lambda: all(len(s.get(u, "all").item_ids) == 5 for u in (1, 2, 3)), "all visible")
        definition = s.definition_path
        assert s.stop() == 0

        out = subprocess.run([DBDAMAGE, data, definition, "all", "2"], capture_output=True,
                             text=True, check=True)
        assert int(out.stdout) >= 1, out

        s = seqd_factory(definition=DEFINITION, data_dir=data, brokers=brokers)
        with pytest.raises(grpc.RpcError) as e:
            s.get(2, "all")
        assert e.value.code() == grpc.StatusCode.DATA_LOSS, e.value
        assert "user 2" in e.value.details() and "sequence all" in e.value.details()
        assert len(s.get(1, "all").item_ids) == 5
        # ingest goes on, the damaged user's bucket included
        s.producer().events([make_event(2, base + 100, "click", 100, "c-2-new", {"n": 1.0}),
                             make_event(3, base + 100, "click", 100, "c-3-new", {"n": 1.0})])
        poll(lambda: len(s.get(3, "all").item_ids) == 6, "ingest goes on")
        with pytest.raises(grpc.RpcError) as e:
            s.get(2, "all")
        assert e.value.code() == grpc.StatusCode.DATA_LOSS
        assert s.metric("seqd_storage_corrupt_total") >= 1
        kept = poll(lambda: s.status()["storage_corrupt"]["kept"] or None, "damage kept aside")
        assert any("user 2, sequence all" in k["what"] for k in kept), kept
        assert s.http("/readyz")[0] == 200
        assert s.stop() == 0
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
