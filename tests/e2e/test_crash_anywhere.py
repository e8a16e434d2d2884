"""kill -9 at random moments of an ingest, restarting each time: two client
threads add items while the server is killed after a random delay (seeded;
the seed is printed, IMGSEARCH_CRASH_SEED=N replays a failure). After each
restart: every add that got a 200 is there and its image finds it; an add
that got no answer is either whole (row, every vector, searchable) or
absent; the index holds exactly the vectors of the rows; and the next
round's adds work. At the end, offline: PRAGMA integrity_check is "ok"."""
import os
import random
import signal
import sqlite3
import threading
import time

import pytest

from conftest import IS_ASAN
from images import b64, scene

THREADS = 2


class Round:
    """One ingest burst of THREADS writers, cut short by a kill -9."""

    def __init__(self, c, svc, rnd_no):
        self.c, self.svc, self.no = c, svc, rnd_no
        self.acked, self.unanswered, self.refused = {}, {}, {}  # item_id -> seed
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def writer(self, t):
        for i in range(1000):
            if self.stop.is_set():
                return
            name, seed = "r%dt%di%d" % (self.no, t, i), 20000 + self.no * 1000 + t * 500 + i
            body = {"item_id": name, "image_base64": IMAGES.get(seed)}
            try:
                r = self.c.v2(self.svc, "data/add", body)
            except Exception:  # killed under this request (or refused at connect)
                with self.lock:
                    self.unanswered[name] = seed
                return
            with self.lock:
                if r.status == 200:
                    self.acked[name] = seed
                else:
                    self.refused[name] = (seed, r.status, r.json.get("error_code"))

    def run(self, server, delay, term_delay=None):
        """kill -9 after `delay`; with `term_delay`, a SIGTERM first and the
        kill -9 that much later, somewhere in the shutdown (draining
        requests, writing index snapshots)."""
        threads = [threading.Thread(target=self.writer, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(delay)
        if term_delay is not None:
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(term_delay)
        server.kill9()
        self.stop.set()
        for t in threads:
            t.join()


class Images:
    """base64 JPEGs by seed, made once (Pillow is slower than an add)."""

    def __init__(self):
        self.cache = {}

    def get(self, seed):
        if seed not in self.cache:
            self.cache[seed] = b64(scene(seed))
        return self.cache[seed]


IMAGES = Images()


def search_ids(c, svc, seed, limit=1):
    r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": IMAGES.get(seed),
                             "limit": limit})
    assert r.status == 200, r
    return [it["id"] for it in r.json["data"]["items"]]


def db_check(data_dir, per_item):
    db = sqlite3.connect("file:%s/imgsearch.db?mode=ro" % data_dir, uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # No item without its views (a half-written add), none with extra.
        bad = db.execute("SELECT i.item_id, count(r.k) FROM items i LEFT JOIN item_regions r"
                         " ON r.item = i.id GROUP BY i.id HAVING count(r.k) != ?",
                         (per_item - 1,)).fetchall()
        assert not bad, bad
        return {r[0] for r in db.execute("SELECT item_id FROM items")}
    finally:
        db.close()


def crash_rounds(make_server, kills, delay_range):
    seed = int(os.environ.get("IMGSEARCH_CRASH_SEED", "0")) or random.randrange(1, 1 << 31)
    print("\ncrash test seed %d (replay: IMGSEARCH_CRASH_SEED=%d)" % (seed, seed))
    rnd = random.Random(seed)
    s = make_server()
    c = s.client()
    c.create_instance("crash")
    info = c.admin("GET", "/instances/crash").json
    per_item = 4 if info["views"] else 1
    acked = {}  # every acknowledged add so far, across rounds
    present = {}  # every item known to be stored (acked + whole unanswered)
    for k in range(kills):
        delay = rnd.uniform(*delay_range)
        # Every third round the kill lands in a shutdown instead.
        term_delay = rnd.uniform(0, 1.0) if k % 3 == 2 else None
        rd = Round(c, "crash", k)
        rd.run(s, delay, term_delay)
        how = "killed" if term_delay is None else "SIGTERM, killed %.3f s later" % term_delay
        print("round %d: after %.3f s %s: %d acked, %d unanswered, %d refused"
              % (k, delay, how, len(rd.acked), len(rd.unanswered), len(rd.refused)))
        # Nothing but the kill may stop an add, except that a server told to
        # stop refuses new work with 500 APIG.0601 (and stores none of it).
        stopping = ("APIG.0601",) if term_delay is not None else ()
        assert all(code in stopping for _, _, code in rd.refused.values()), rd.refused
        acked.update(rd.acked)
        present.update(rd.acked)
        s.start()
        c = s.client()
        for name, img in acked.items():
            assert search_ids(c, "crash", img) == [name], (k, name)
        whole = 0
        for name, img in rd.unanswered.items():
            if c.existed("crash", name):
                assert search_ids(c, "crash", img) == [name], (k, name)
                present[name] = img
                whole += 1
            else:
                assert name not in search_ids(c, "crash", img, limit=5), (k, name)
        for name, (img, _, _) in rd.refused.items():
            assert not c.existed("crash", name), (k, name)
        print("  after restart: %d of the unanswered adds were stored whole, %d absent"
              % (whole, len(rd.unanswered) - whole))
        n = c.admin("GET", "/instances/crash").json["item_count"]
        assert n == len(present), (k, n, len(present))
        # The only instance: the index holds exactly the rows' vectors.
        assert c.metric("imgsearch_index_vectors") == n * per_item, k
        idx = os.path.join(s.data_dir, "index")
        assert not [f for f in os.listdir(idx) if f.endswith(".tmp")], k
    # The ingest keeps working after the last crash.
    r = c.v2("crash", "data/add", {"item_id": "after", "image_base64": IMAGES.get(1)})
    assert r.status == 200, r
    present["after"] = 1
    assert search_ids(c, "crash", 1) == ["after"]
    s.stop()
    assert db_check(s.data_dir, per_item) == set(present)


def test_kill9_anywhere_short(make_server):
    """Cheap enough for the ASan pass: 3 kills (later ones under ASan, whose
    adds take seconds, so that some are acknowledged first)."""
    crash_rounds(make_server, 3, (3.0, 8.0) if IS_ASAN else (0.5, 3.0))


@pytest.mark.slow
def test_kill9_anywhere(make_server):
    crash_rounds(make_server, 10, (0.05, 2.0))
