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

Runs on the session's PostgreSQL cluster (IMGSEARCH_TEST_PG_DSN, else a
throwaway one), in a fresh database of its own."""
import os
import shutil
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


def test_kill9_mid_ingest_loses_no_acknowledged_add(nodes):
    n1, n2, n3 = (s.client() for s in nodes)
    n1.create_instance("k9", tags=("k",))
    acked, lock = {}, threading.Lock()
    stop = threading.Event()

    def writer(node, prefix, seed0):
        c = node.client()
        for i in range(40):
            if stop.is_set():
                return
            name, seed = "%s%d" % (prefix, i), seed0 + i
            try:
                r = add(c, "k9", name, seed)
            except Exception:
                return  # the connection died with the node
            if r.status == 200:
                with lock:
                    acked[name] = seed

    w1 = threading.Thread(target=writer, args=(nodes[0], "a", 4000))
    w2 = threading.Thread(target=writer, args=(nodes[1], "b", 5000))
    w1.start()
    w2.start()
    while len([k for k in acked if k.startswith("b")]) < 4:
        time.sleep(0.05)
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
