"""Fixtures that start the real imgsearchd binary on a free loopback port with
its own data dir and config, and stop it after (checking it exits cleanly
and that the sanitizers, in the ASan build, reported nothing).

IMGSEARCH_TEST_BACKEND=postgres runs every server on PostgreSQL instead of
SQLite: a database per data dir (a restarted server, or a second one on the
same data dir, finds its data again) on the cluster IMGSEARCH_TEST_PG_DSN
names, or on a throwaway one started for the session (services.PgCluster).
Modules that read the SQLite file themselves are skipped then."""
import atexit
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from imgsearch_client import Client  # noqa: E402
from services import PgCluster  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.join(ROOT, os.environ.get("IMGSEARCHD", "bin/imgsearchd"))
MODEL = os.environ.get("IMGSEARCH_MODEL", os.path.join(ROOT, "models", "mnv2_140.bin"))
IS_ASAN = BINARY.endswith("-asan")

AK, SK = "TESTAK", "TESTSECRETKEY0123456789"
TOKEN = "test-token-0123456789"


BACKEND = os.environ.get("IMGSEARCH_TEST_BACKEND", "sqlite")
# They open imgsearch.db, fill the disk under SQLite or fake an old data dir.
SQLITE_ONLY = {"test_full_disk.py", "test_upgrade.py", "test_crash_anywhere.py",
               "test_compact.py", "test_import_listing.py",
               "test_overload.py::test_http_thread_free_while_a_commit_waits"}

_pg = None


def pg_cluster():
    """The session's PostgreSQL cluster, started on first use."""
    global _pg
    if _pg is None:
        _pg = PgCluster(os.environ.get("IMGSEARCH_TEST_PG_DSN") or None).__enter__()
        atexit.register(_pg.__exit__, None, None, None)
    return _pg


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests skipped in the ASan pass")


def pytest_collection_modifyitems(config, items):
    if BACKEND != "postgres":
        return
    skip = pytest.mark.skip(reason="reads or breaks the SQLite file; not the postgres pass")
    for item in items:
        module = os.path.basename(str(item.fspath))
        if module in SQLITE_ONLY or module + "::" + item.name in SQLITE_ONLY:
            item.add_marker(skip)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One imgsearchd process. `extra` is INI text appended to the config;
    `storage`, a [storage] section to use instead of the pass's own."""

    def __init__(self, extra="", data_dir=None, auth="none", storage=None):
        self.tmp = tempfile.mkdtemp(prefix="imgsearch-e2e-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.objects_dir = os.path.join(self.tmp, "objects")
        os.makedirs(self.objects_dir, exist_ok=True)
        self.port = free_port()
        self.config = os.path.join(self.tmp, "imgsearchd.conf")
        with open(self.config, "w") as f:
            f.write(f"[server]\nlisten = 127.0.0.1:{self.port}\ndata_dir = {self.data_dir}\n"
                    f"objects_dir = {self.objects_dir}\nmodel = {MODEL}\nthreads = 8\n"
                    f"console_dir = {os.path.join(ROOT, 'console')}\n")
            f.write(f"[auth]\nmode = {auth}\n")
            f.write(f"[credential:test]\naccess_key = {AK}\nsecret_key = {SK}\n")
            f.write(f"[token:test]\ntoken = {TOKEN}\n")
            if storage is not None:
                f.write(storage)
            elif BACKEND == "postgres":
                f.write(self.pg_storage())
            f.write(extra)
        self.log_path = os.path.join(self.tmp, "server.log")
        self.proc = None

    def pg_storage(self):
        """[storage] on the session cluster, one database per data dir."""
        pg = pg_cluster()
        db = "e2e_" + hashlib.sha1(os.path.abspath(self.data_dir).encode()).hexdigest()[:16]
        pg.create_database(db, fresh=False)
        return f"[storage]\nbackend = postgres\ndsn = {pg.dsn_for(db)}\n"

    def start(self, timeout=60):
        env = dict(os.environ, IMGSEARCH_QUIET="0")
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BINARY, "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("imgsearchd exited early:\n" + self.read_log())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("imgsearchd did not come up:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, check=True, timeout=60):
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        log = self.read_log()
        if check:
            assert "ERROR: AddressSanitizer" not in log, log[-5000:]
            assert "ERROR: LeakSanitizer" not in log, log[-5000:]
            assert "runtime error:" not in log, log[-5000:]
            if sig == signal.SIGTERM:
                assert rc == 0, f"exit code {rc}\n{log[-3000:]}"
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL, check=False)

    def client(self, auth=None, project="proj1"):
        return Client("127.0.0.1", self.port, auth, project)


@pytest.fixture
def make_server():
    """Factory: make_server(extra=..., auth=...) -> started Server; all stopped after."""
    started = []

    def make(**kw):
        s = Server(**kw).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def server():
    """A module-wide server in auth mode none."""
    s = Server().start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    return server.client()
