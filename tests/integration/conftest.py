"""pytest fixtures for the integration suite: generated stubs, and seqd processes that
are always killed at teardown. `server` is shared by the tests of one module (they use
distinct user ids via helpers.new_user); `seqd_factory` starts private servers for tests
that need their own flags, counters or restarts."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import helpers  # noqa: E402


@pytest.fixture(scope="session")
def stubs():
    return helpers.stubs()


@pytest.fixture
def seqd_factory(tmp_path, stubs):
    started = []

    def start(definition=None, args=(), data_dir=None, brokers=None, expect_ready=True,
              definition_path=None, workdir=None):
        wd = workdir or str(tmp_path / ("s%d" % len(started)))
        os.makedirs(wd, exist_ok=True)
        s = helpers.Seqd(wd, definition=definition, data_dir=data_dir, args=args,
                         brokers=brokers, definition_path=definition_path)
        started.append(s)
        return s.start(expect_ready=expect_ready)

    yield start
    for s in started:
        s.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, stubs):
    s = helpers.Seqd(str(tmp_path_factory.mktemp("seqd")))
    s.start()
    yield s
    s.kill()
