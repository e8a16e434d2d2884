"""Several imgsearchd nodes on one PostgreSQL database (docs/cluster.md):
three nodes, each with its own data dir, answer any request. An add
acknowledged by one node is found by a search through another on the very
next request, with the same ids, scores and order as one node holding the
same items (a SQLite server fed the same calls); deletes, replacements and
instance deletes likewise. kill -9 of a node in the middle of a stream of
adds through two nodes loses no acknowledged add, the other nodes keep
answering, the node is listed dead after node_timeout_ms, and it catches up
when it comes back. An import job of a node killed mid-way is resumed by
another and finishes with every image. Every node lists the others
(/admin/v1/cluster, /healthz).

Sharded (the tests named test_sharded_*, three more nodes with [cluster]
shards = 4 on a database of their own): items added through node 1 are
found through nodes 2 and 3 with the ids, scores and order of the SQLite
node (filters, deletes and replacements too); every node lists the shard
owners; a stopped (SIGSTOP) owner fails a search with 503 ModelArts.4403
within shard_timeout_ms, or with "partial": true answers what the other
shards found and says which are missing; kill -9 of node 2 in the middle of
adds through nodes 1 and 2 loses no acknowledged add, searches answer again
within a bounded time while its shards are taken over, and it comes back.

Runs on the session's PostgreSQL cluster (IMGSEARCH_TEST_PG_DSN, else a
throwaway one), in a fresh database of its own."""
import collections
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid

import pytest
from conftest import Server, pg_cluster
from images import b64, encode, scene

pytestmark = pytest.mark.slow  # three servers: not in the ASan pass

SEARCH_LIMIT = 5


BUCKET = tempfile.mkdtemp(prefix="imgsearch-cluster-bucket-")


def node_config(s):
    # Snapshots often, so the tombstone pruning the nodes share is exercised;
    # one bucket every node reads, for imports.
    with open(s.config, "a") as f:
        f.write("[index]\nsnapshot_changes = 4\nsnapshot_seconds = 1\n"
                "[cluster]\nnode_url = http://127.0.0.1:%d\nnode_timeout_ms = 3000\n"
                "[bucket:shared]\ntype = local\nroot = %s\n" % (s.port, BUCKET))


@pytest.fixture(scope="module")
def db():
    pg = pg_cluster()
    name = "cluster_" + uuid.uuid4().hex[:12]
    pg.create_database(name)
    return pg, name


@pytest.fixture(scope="module")
def nodes(db):
    pg, name = db
    storage = "[storage]\nbackend = postgres\ndsn = %s\n" % pg.dsn_for(name)
    servers = [Server(storage=storage) for _ in range(3)]
    for s in servers:
        node_config(s)
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            if s.proc:
                s.stop()
        shutil.rmtree(BUCKET, ignore_errors=True)


@pytest.fixture(scope="module")
def single():
    """One SQLite node: the answers the cluster must give."""
    s = Server(storage="[storage]\nbackend = sqlite\n").start()
    yield s
    s.stop()


def add(c, svc, item_id, seed, force=False):
    body = {"item_id": item_id, "image_base64": b64(scene(seed)), "custom_tags": {"k": "v"}}
    if force:
        body["force"] = True
    return c.v2(svc, "data/add", body)


def search(c, svc, seed, limit=SEARCH_LIMIT):
    r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)),
                             "limit": limit})
    assert r.status == 200, r
    return [(it["id"], it["score"]) for it in r.json["data"]["items"]]


def both(clients, fn, *args):
    """The same call on every client; each must succeed."""
    for c in clients:
        r = fn(c, *args)
        assert r.status == 200, r


def test_writes_through_one_node_are_read_through_the_others(nodes, single):
    n1, n2, n3 = (s.client() for s in nodes)
    ref = single.client()
    for c in (n1, ref):
        c.create_instance("cl", tags=("k",))
    seeds = list(range(3000, 3010))
    for i, seed in enumerate(seeds):
        both((n1 if i % 2 else n2, ref), add, "cl", "c%d" % i, seed)
        # The very next request, through another node, sees it.
        other = n3 if i % 2 else n1
        assert search(other, "cl", seed, 1)[0][0] == "c%d" % i
    expect = {seed: search(ref, "cl", seed) for seed in seeds[::3]}
    for c in (n1, n2, n3):
        assert {seed: search(c, "cl", seed) for seed in seeds[::3]} == expect

    # A delete through node 3, a replacement through node 2, a delete and
    # re-add under the same id through node 1.
    both((n3, ref), lambda c: c.v2("cl", "data/delete", {"item_id": "c3"}))
    assert "c3" not in [i for i, _ in search(n2, "cl", seeds[3])]
    both((n2, ref), add, "cl", "c4", 3050, True)
    assert search(n1, "cl", 3050, 1)[0][0] == "c4"
    both((n1, ref), lambda c: c.v2("cl", "data/delete", {"item_id": "c5"}))
    both((n1, ref), add, "cl", "c5", 3051)
    assert search(n3, "cl", 3051, 1)[0][0] == "c5"
    both((n3, ref), lambda c: c.v2("cl", "data/update", {"item_id": "c6", "desc": "new"}))
    r = n2.v2("cl", "data/check", {"item_id": "c6"})
    assert r.status == 200 and r.json["data"]["item_info"]["desc"] == "new", r
    probe = seeds + [3050, 3051]
    expect = {seed: search(ref, "cl", seed) for seed in probe}
    for c in (n1, n2, n3):
        assert {seed: search(c, "cl", seed) for seed in probe} == expect
    counts = [c.admin("GET", "/instances/cl").json["item_count"] for c in (n1, n2, n3, ref)]
    assert counts == [9] * 4, counts


def test_idle_node_keeps_the_tombstones_it_needs(nodes, single, db):
    """Node 3 loads an index, then stays idle while node 1 deletes and
    replaces items and snapshots twice (each snapshot prunes tombstones):
    pruning stops at node 3's applied seq, so its next search replays the
    deletes instead of keeping deleted items or rebuilding."""
    pg, name = db
    n1, n3 = nodes[0].client(), nodes[2].client()
    ref = single.client()
    for c in (n1, ref):
        c.create_instance("idle", tags=("k",))
    for i in range(6):
        both((n1, ref), add, "idle", "i%d" % i, 3200 + i)
    assert search(n3, "idle", 3200, 1)[0][0] == "i0"  # loaded at seq 6

    def recorded(port):
        v = pg.psql(name, "SELECT a.seq FROM node_applied a JOIN instances i ON"
                          " i.id = a.instance_id JOIN nodes n ON n.id = a.node_id"
                          " WHERE i.name = 'idle' AND n.url = 'http://127.0.0.1:%d'" % port)
        return int(v) if v else -1

    def wait_recorded(port, at_least):
        deadline = time.time() + 15
        while recorded(port) < at_least:
            assert time.time() < deadline, (port, recorded(port))
            time.sleep(0.2)

    wait_recorded(nodes[2].port, 6)
    for i in range(4):  # seq 7..10
        both((n1, ref), lambda c, i=i: c.v2("idle", "data/delete", {"item_id": "i%d" % i}))
    both((n1, ref), add, "idle", "i4", 3250, True)  # seq 11
    wait_recorded(nodes[0].port, 11)  # node 1 snapshotted at 11 (and pruned)
    for i in range(6, 10):  # seq 12..15: another snapshot, another prune
        both((n1, ref), add, "idle", "i%d" % i, 3200 + i)
    wait_recorded(nodes[0].port, 15)
    floor = int(pg.psql(name, "SELECT replay_floor FROM instances WHERE name = 'idle'"))
    assert floor <= 6 == recorded(nodes[2].port), floor  # node 1 alone would prune to 15
    before = nodes[2].read_log().count("no longer reaches")
    for seed in (3200, 3201, 3203, 3250, 3205, 3208):
        assert search(n3, "idle", seed) == search(ref, "idle", seed)
    assert nodes[2].read_log().count("no longer reaches") == before


def test_instance_deleted_through_another_node(nodes):
    n1, n2, n3 = (s.client() for s in nodes)
    n1.create_instance("gone", tags=("k",))
    assert add(n1, "gone", "g0", 3100).status == 200
    assert search(n2, "gone", 3100, 1)[0][0] == "g0"  # node 2 loads its index
    assert n3.admin("DELETE", "/instances/gone").status in (200, 204)
    r = n2.v2("gone", "search", {"search_type": "IMAGE", "image_base64": b64(scene(3100))})
    assert r.json["error_code"] == "MMS.1001", r  # the cloud's "instance not found"
    # Re-created under the same name (a new id): node 2 serves the new one.
    n3.create_instance("gone", tags=("k",))
    assert add(n3, "gone", "g1", 3101).status == 200
    assert [i for i, _ in search(n2, "gone", 3100)] == ["g1"]
    deadline = time.time() + 10
    while "was deleted by another node" not in nodes[1].read_log():
        assert time.time() < deadline, "node 2 kept the deleted instance's index"
        time.sleep(0.2)


def cluster_view(c):
    r = c.request("GET", "/admin/v1/cluster")
    assert r.status == 200, r
    return r.json


def states(c):
    """url -> states of the nodes at that url (a restarted node is a new one)."""
    out = {}
    for n in cluster_view(c)["nodes"]:
        out.setdefault(n["url"], []).append(n["state"])
    return out


def test_membership_is_listed_by_every_node(nodes, single):
    urls = sorted("http://127.0.0.1:%d" % s.port for s in nodes)
    for s in nodes:
        view = cluster_view(s.client())
        assert view["mode"] == "shared" and view["node_timeout_ms"] == 3000
        assert view["node_url"] == "http://127.0.0.1:%d" % s.port
        assert sorted(n["url"] for n in view["nodes"] if n["state"] == "alive") == urls
        assert [n["url"] for n in view["nodes"] if n["self"]] == [view["node_url"]]
        health = s.client().request("GET", "/healthz").json
        assert sorted(n["url"] for n in health["nodes"]) == urls
    assert cluster_view(single.client()) == {"mode": "single", "nodes": []}
    assert "nodes" not in single.client().request("GET", "/healthz").json


def test_import_of_a_killed_node_resumes_on_another(nodes, db):
    pg, name = db
    n1 = nodes[0].client()
    n1.create_instance("imp", tags=("k",))
    folder = os.path.join(BUCKET, "imp")
    os.makedirs(folder, exist_ok=True)
    seeds = range(6000, 6024)
    for seed in seeds:
        with open(os.path.join(folder, "img%05d.jpg" % seed), "wb") as f:
            f.write(encode(scene(seed)))
    r = n1.admin("POST", "/instances/imp/imports", {"source": "obs://shared/imp/"})
    assert r.status == 202, r
    job = r.json["job_id"]
    # Kill whichever node runs it, a few images in.
    deadline = time.time() + 60
    while True:
        j = n1.admin("GET", "/instances/imp/imports/" + job).json
        runner = pg.psql(name, "SELECT n.url FROM import_jobs j JOIN nodes n"
                               " ON n.id = j.claimed_by WHERE j.job_id = '%s'" % job)
        if runner and j["done"] >= 3:
            break
        assert time.time() < deadline and j["status"] in ("QUEUED", "RUNNING"), j
        time.sleep(0.05)
    victim = [s for s in nodes if "http://127.0.0.1:%d" % s.port == runner][0]
    victim.kill9()
    alive = [s for s in nodes if s is not victim][0].client()
    deadline = time.time() + 90
    while True:
        j = alive.admin("GET", "/instances/imp/imports/" + job).json
        if j["status"] not in ("QUEUED", "RUNNING"):
            break
        assert time.time() < deadline, j
        time.sleep(0.2)
    assert j["status"] == "SUCCEEDED" and (j["total"], j["done"], j["failed"]) == (24, 24, 0), j
    assert alive.admin("GET", "/instances/imp").json["item_count"] == 24
    assert search(alive, "imp", 6005, 1)[0][0] == "imp/img06005.jpg"
    # It went on where it stopped, on a node that was alive.
    assert any("import %s: obs://shared/imp/" % job in s.read_log() and ", resumed)" in
               s.read_log() for s in nodes if s is not victim)
    victim.start()


def start_writers(svc, node_a, node_b, seed_a, seed_b):
    """Two threads adding up to 40 items each ("a0".., "b0"..) through two
    nodes until stopped or their node dies; returns once node b has 4
    acknowledged. acked maps every acknowledged name to its seed."""
    acked, lock = {}, threading.Lock()
    stop = threading.Event()

    def writer(node, prefix, seed0):
        c = node.client()
        for i in range(40):
            if stop.is_set():
                return
            name, seed = "%s%d" % (prefix, i), seed0 + i
            try:
                r = add(c, svc, name, seed)
            except Exception:
                return  # the connection died with the node
            if r.status == 200:
                with lock:
                    acked[name] = seed

    w1 = threading.Thread(target=writer, args=(node_a, "a", seed_a))
    w2 = threading.Thread(target=writer, args=(node_b, "b", seed_b))
    w1.start()
    w2.start()
    while len([k for k in acked if k.startswith("b")]) < 4:
        time.sleep(0.05)
    return acked, stop, w1, w2


def test_kill9_mid_ingest_loses_no_acknowledged_add(nodes):
    n1, n2, n3 = (s.client() for s in nodes)
    n1.create_instance("k9", tags=("k",))
    acked, stop, w1, w2 = start_writers("k9", nodes[0], nodes[1], 4000, 5000)
    nodes[1].kill9()
    w2.join()
    # Nodes 1 and 3 keep answering searches meanwhile.
    t0 = time.time()
    for seed in (4000, 5000, 5001):
        search(n3, "k9", seed, 1)
        search(n1, "k9", seed, 1)
    assert time.time() - t0 < 30
    # Node 2 is taken for dead once its heartbeat is node_timeout_ms old.
    url2 = "http://127.0.0.1:%d" % nodes[1].port
    deadline = time.time() + 3 + 5
    while states(n3)[url2] != ["dead"]:
        assert time.time() < deadline, states(n3)
        time.sleep(0.2)
    stop.set()
    w1.join()
    assert any(k.startswith("b") for k in acked) and any(k.startswith("a") for k in acked)
    for name, seed in sorted(acked.items()):
        r = n3.v2("k9", "data/check", {"item_id": name})
        assert r.status == 200, (name, r)
        assert search(n1 if seed % 2 else n3, "k9", seed, 1)[0][0] == name
    # Back on its data dir: it catches up with everything it missed.
    nodes[1].start()
    n2 = nodes[1].client()
    for seed in sorted(acked.values())[::4]:
        assert search(n2, "k9", seed) == search(n1, "k9", seed)
    count = n1.admin("GET", "/instances/k9").json["item_count"]
    assert count >= len(acked)
    assert sorted(states(n1)[url2]) == ["alive", "dead"]  # a new node id
    # A clean stop leaves the table at once.
    nodes[2].stop()
    assert "http://127.0.0.1:%d" % nodes[2].port not in states(n1)



# --- shards ---------------------------------------------------------------------

SHARDS = 4
SHARD_TIMEOUT_MS = 800
SHARD_NODE_TIMEOUT_MS = 5000
SECRET = "s3cret-between-the-nodes"


def sharded_config(s):
    with open(s.config, "a") as f:
        f.write("[index]\nsnapshot_changes = 8\nsnapshot_seconds = 1\n"
                "[cluster]\nnode_url = http://127.0.0.1:%d\nnode_timeout_ms = %d\n"
                "shards = %d\nsecret = %s\nshard_timeout_ms = %d\n"
                % (s.port, SHARD_NODE_TIMEOUT_MS, SHARDS, SECRET, SHARD_TIMEOUT_MS))


@pytest.fixture(scope="module")
def shard_db():
    pg = pg_cluster()
    name = "shards_" + uuid.uuid4().hex[:12]
    pg.create_database(name)
    return pg, name


@pytest.fixture(scope="module")
def snodes(shard_db):
    pg, name = shard_db
    storage = "[storage]\nbackend = postgres\ndsn = %s\n" % pg.dsn_for(name)
    servers = [Server(storage=storage) for _ in range(3)]
    for s in servers:
        sharded_config(s)
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            if s.proc:
                try:
                    os.kill(s.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
                s.stop()


def shard_of(item_id):
    """storage/shard.h: FNV-1a 64 of the id's bytes, mod shards."""
    h = 0xcbf29ce484222325
    for byte in item_id.encode():
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % SHARDS


def add_tagged(c, svc, item_id, seed, tag):
    return c.v2(svc, "data/add", {"item_id": item_id, "image_base64": b64(scene(seed)),
                                  "custom_tags": {"k": tag}})


def search_full(c, svc, seed, limit=10, **extra):
    body = {"search_type": "IMAGE", "image_base64": b64(scene(seed)), "limit": limit}
    body.update(extra)
    return c.v2(svc, "search", body)


def hits(r):
    assert r.status == 200, r
    return [(it["id"], it["score"]) for it in r.json["data"]["items"]]


def wait_owners(c, svc, timeout=15):
    """The shard map as every node records it, once all SHARDS are owned."""
    deadline = time.time() + timeout
    while True:
        rows = [r for r in cluster_view(c)["shard_owners"] if r["instance"] == svc]
        if len(rows) == SHARDS and all(r["owner_url"] for r in rows):
            return rows
        assert time.time() < deadline, rows
        time.sleep(0.2)


def test_sharded_search_matches_one_node(snodes, single, shard_db):
    pg, name = shard_db
    n1, n2, n3 = (s.client() for s in snodes)
    ref = single.client()
    for c in (n1, ref):
        c.create_instance("sh", tags=("k",))
    assert n1.admin("GET", "/instances/sh").json["shards"] == SHARDS
    assert "shards" not in ref.admin("GET", "/instances/sh").json
    seeds = list(range(7000, 7024))
    for i, seed in enumerate(seeds):
        tag = "w" if i % 3 == 0 else "v"
        for c in (n1, ref):
            r = add_tagged(c, "sh", "s%d" % i, seed, tag)
            assert r.status == 200, r
        # Read-your-writes: the very next search, through another node.
        assert hits(search_full(n2 if i % 2 else n3, "sh", seed, 1))[0][0] == "s%d" % i
    # The items are spread over the shards, each owned by one node.
    stored = pg.psql(name, "SELECT i.item_id || '=' || i.shard FROM items i JOIN instances n"
                           " ON n.id = i.instance_id WHERE n.name = 'sh'")
    stored = dict(line.split("=") for line in stored.split())
    assert {k: int(v) for k, v in stored.items()} == {k: shard_of(k) for k in stored}
    assert len(set(stored.values())) == SHARDS
    owners = wait_owners(n1, "sh")
    urls = {"http://127.0.0.1:%d" % s.port for s in snodes}
    assert {r["owner_url"] for r in owners} <= urls
    # Balanced: 4 shards over 3 nodes, one or two each (a real fan-out).
    per_node = collections.Counter(r["owner_url"] for r in owners)
    assert set(per_node) == urls and set(per_node.values()) <= {1, 2}, owners
    for c in (n2, n3):
        assert sorted((r["shard"], r["owner_url"]) for r in wait_owners(c, "sh")) == \
            sorted((r["shard"], r["owner_url"]) for r in owners)

    def same(probe, **extra):
        for seed in probe:
            want = hits(search_full(ref, "sh", seed, 20, **extra))
            for c in (n2, n3):
                assert hits(search_full(c, "sh", seed, 20, **extra)) == want, (seed, extra)

    same(seeds[::4])
    same(seeds[1::6], custom_tags={"k": ["w"]})  # the filter travels to the shards
    # Deletes, a replacement and a re-add through other nodes.
    for c in (n3, ref):
        assert c.v2("sh", "data/delete", {"item_id": "s3"}).status == 200
    for c in (n2, ref):
        r = c.v2("sh", "data/add", {"item_id": "s4", "image_base64": b64(scene(7050)),
                                    "custom_tags": {"k": "v"}, "force": True})
        assert r.status == 200, r
    assert "s3" not in [i for i, _ in hits(search_full(n1, "sh", seeds[3]))]
    assert hits(search_full(n1, "sh", 7050, 1))[0][0] == "s4"
    same([seeds[3], seeds[4], 7050, seeds[10]])
    counts = [c.admin("GET", "/instances/sh").json["item_count"] for c in (n1, n2, n3, ref)]
    assert counts == [23] * 4, counts
    # Opting in changes nothing while every shard answers.
    r = search_full(n2, "sh", seeds[5], partial=True)
    assert r.json["data"]["search_info"]["partial"] is False, r
    assert r.json["data"]["search_info"]["missing_shards"] == []
    assert search_full(n2, "sh", seeds[5], partial="yes").status == 400


def test_sharded_internal_api_needs_the_secret(snodes):
    c = snodes[0].client()
    path = "/internal/v1/instances/1/shards/0/search"
    r = c.request("POST", path, raw=b"ISQ1")
    assert r.status == 401, r
    r = c.request("POST", path, raw=b"garbage", headers={"X-Imgsearch-Cluster-Secret": SECRET})
    assert r.status == 400, r
    r = c.request("POST", "/v2/proj1/mms/internal/v1/instances/1/shards/0/search", {})
    assert r.status != 200


def test_sharded_stopped_owner_gives_503_or_partial(snodes, single):
    n1 = snodes[0].client()
    owners = wait_owners(n1, "sh")
    # Stop a node that owns a shard, and ask a node that does not own all.
    victim = None
    for s in snodes[1:]:
        mine = [r["shard"] for r in owners if r["owner_url"] == "http://127.0.0.1:%d" % s.port]
        if mine:
            victim, missing = s, sorted(mine)
            break
    assert victim, owners
    receiver = [s for s in snodes if s is not victim][0].client()
    want = hits(search_full(single.client(), "sh", 7001, 20))
    everything = hits(search_full(single.client(), "sh", 7001, 100))
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.time()
        r = search_full(receiver, "sh", 7001, 20)
        took = time.time() - t0
        assert r.status == 503 and r.json["error_code"] == "ModelArts.4403", r
        assert r.json["error_msg"] == "Backend service unavailable error.", r
        assert took < SHARD_TIMEOUT_MS / 1000 + 2, took
        r = search_full(receiver, "sh", 7001, 20, partial=True)
        assert r.status == 200, r
        info = r.json["data"]["search_info"]
        assert info["partial"] is True and info["missing_shards"] == missing, info
        got = hits(r)
        # What the other shards hold.
        # (An exact duplicate is found by its perceptual hash in the database
        # whatever its shard: s1 is the query's own image.)
        assert got and all(shard_of(i) not in missing or i == "s1" for i, _ in got), got
        # Best first. (Scores may differ from the full answer's: with the
        # best match missing, the weak-match retries add view scores.)
        assert [sc for _, sc in got] == sorted((sc for _, sc in got), reverse=True)
        assert {i for i, _ in got} <= {i for i, _ in everything}
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    deadline = time.time() + 10
    while hits(search_full(receiver, "sh", 7001, 20)) != want:
        assert time.time() < deadline
        time.sleep(0.2)


def test_sharded_kill9_mid_ingest_takeover(snodes):
    n1, n2, n3 = (s.client() for s in snodes)
    n1.create_instance("sk", tags=("k",))
    wait_owners(n1, "sk")
    acked, stop, w1, w2 = start_writers("sk", snodes[0], snodes[1], 8000, 8100)
    url2 = "http://127.0.0.1:%d" % snodes[1].port
    dead_id = [n["id"] for n in cluster_view(n1)["nodes"] if n["url"] == url2][0]
    snodes[1].kill9()
    t_kill = time.time()
    w2.join()
    # Searches through nodes 1 and 3 answer again within a bounded time:
    # at once (a refused connection is served by the asking node), and for
    # good once node 2's shards have new owners.
    for c in (n1, n3):
        deadline = time.time() + 10
        while search_full(c, "sk", 8000, 1).status != 200:
            assert time.time() < deadline
            time.sleep(0.1)
    first_answer = time.time() - t_kill
    deadline = t_kill + SHARD_NODE_TIMEOUT_MS / 1000 + 10
    while True:
        rows = [r for r in cluster_view(n3)["shard_owners"] if r["instance"] == "sk"]
        if len(rows) == SHARDS and all(r["node_id"] != dead_id and r["owner_url"] != url2
                                       for r in rows):
            break
        assert time.time() < deadline, rows
        time.sleep(0.2)
    takeover = time.time() - t_kill
    assert any("took shard" in s.read_log() for s in (snodes[0], snodes[2]))
    stop.set()
    w1.join()
    assert any(k.startswith("b") for k in acked) and any(k.startswith("a") for k in acked)
    for name, seed in sorted(acked.items()):
        r = n3.v2("sk", "data/check", {"item_id": name})
        assert r.status == 200, (name, r)
        assert hits(search_full(n1 if seed % 2 else n3, "sk", seed, 1))[0][0] == name
    print("first answer %.2f s after kill -9, shards taken over after %.2f s"
          % (first_answer, takeover))
    # Back: it gets shards again and answers like the others.
    snodes[1].start()
    n2 = snodes[1].client()
    for seed in sorted(acked.values())[::4]:
        assert hits(search_full(n2, "sk", seed)) == hits(search_full(n1, "sk", seed))
    # It is a new node (a new id, so new rendezvous weights: it may or may
    # not win shards); soon every node computes the same map again, over
    # the live nodes, and the owners have recorded it.
    deadline = time.time() + 15
    while True:
        views = [cluster_view(c) for c in (n1, n2, n3)]
        alive = {n["id"] for n in views[0]["nodes"] if n["state"] == "alive"}
        maps = [sorted((r["shard"], r["owner_url"], r["node_id"]) for r in v["shard_owners"]
                       if r["instance"] == "sk") for v in views]
        if len(alive) == 3 and maps[0] == maps[1] == maps[2] and len(maps[0]) == SHARDS and \
                all(node in alive for _, _, node in maps[0]):
            break
        assert time.time() < deadline, maps
        time.sleep(0.2)
    count = n1.admin("GET", "/instances/sk").json["item_count"]
    assert count >= len(acked)
    # The nodes that took node 2's shards over let go of those it owns again
    # once they have been idle two node timeouts: each holds its own.
    deadline = time.time() + 2 * SHARD_NODE_TIMEOUT_MS / 1000 + 15
    while True:
        held = {}
        for s in snodes:
            rows = [r for r in cluster_view(s.client())["shard_owners"] if r["instance"] == "sk"]
            held[s.port] = sorted((r["shard"], r["loaded_here"]) for r in rows)
            mine = sorted((r["shard"], r["owner_url"] == "http://127.0.0.1:%d" % s.port)
                          for r in rows)
            if held[s.port] != mine:
                break
        else:
            break
        assert time.time() < deadline, held
        time.sleep(0.5)


def test_sharded_instance_made_compact_through_one_node(snodes):
    """Compaction through node 1 rewrites every shard's vectors in the
    database; the other nodes' float shard indexes are stale then, and are
    reloaded in the new space by the next search or add that meets them."""
    n1, n2, n3 = (s.client() for s in snodes)
    n1.create_instance("shc", tags=("k",))
    seeds = range(7400, 7472)  # 72 items x 4 views = 288 vectors > 256 dimensions
    for seed in seeds:
        assert add(n1, "shc", "c%d" % seed, seed).status == 200
    probe = list(seeds)[::9]
    for c in (n2, n3):  # both load their shards, as floats
        assert [hits(search_full(c, "shc", seed, 1))[0][0] for seed in probe] == \
            ["c%d" % seed for seed in probe]
    r = n1.admin("POST", "/instances/shc/compact")
    assert r.status == 200, r
    assert n2.admin("GET", "/instances/shc").json["descriptor"] == "compact"
    want = {seed: hits(search_full(n1, "shc", seed)) for seed in probe}
    assert all(want[seed][0][0] == "c%d" % seed for seed in probe), want
    for c in (n2, n3):
        assert {seed: hits(search_full(c, "shc", seed)) for seed in probe} == want
    # Adds through the other nodes go into the new space too.
    assert add(n3, "shc", "new3", 7480).status == 200
    assert add(n2, "shc", "new2", 7481).status == 200
    for c in (n1, n2, n3):
        assert hits(search_full(c, "shc", 7480, 1))[0][0] == "new3"
        assert hits(search_full(c, "shc", 7481, 1))[0][0] == "new2"
