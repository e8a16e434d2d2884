"""PostgreSQL as the metadata back end ([storage] backend = postgres), on a
throwaway cluster of this module's own (it is stopped and started under the
servers): the backend is chosen by the config and says so on /healthz, and
the metadata lives in the database, not in data_dir; items survive a
restart, and a server on an empty data dir finds them all in the database;
while the database is down every call answers a 5xx error JSON and the
server recovers by itself when it is back; servers starting at once on one
empty database migrate it once; a database that cannot be reached, or an
unknown backend, stops start-up with a clear error."""
import os
import subprocess
import threading

import pytest
from conftest import BINARY, MODEL, ROOT, Server
from images import b64, scene
from services import PgCluster, free_port


@pytest.fixture(scope="module")
def pg():
    with PgCluster() as c:
        yield c


def storage(pg, db, fresh=True):
    pg.create_database(db, fresh=fresh)
    return "[storage]\nbackend = postgres\ndsn = %s\n" % pg.dsn_for(db)


def add(c, svc, item_id, seed):
    r = c.v2(svc, "data/add", {"item_id": item_id, "image_base64": b64(scene(seed)),
                               "custom_tags": {"k": "v%d" % seed}})
    assert r.status == 200, r


def top(c, svc, seed):
    r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)),
                             "limit": 1})
    assert r.status == 200, r
    items = r.json["data"]["items"]
    return items[0]["id"] if items else None


def health(c):
    return c.request("GET", "/healthz").json


def test_backend_chosen_by_config(make_server, pg):
    s = make_server(storage=storage(pg, "choice"))
    c = s.client()
    assert health(c)["backend"] == "postgres"
    assert "metadata in postgres" in s.read_log()
    c.create_instance("cfg", tags=("k",))
    add(c, "cfg", "one", 11)
    assert pg.psql("choice", "SELECT name FROM instances") == "cfg"
    assert pg.psql("choice", "SELECT item_id FROM items") == "one"
    assert not os.path.exists(os.path.join(s.data_dir, "imgsearch.db"))
    # The default is still SQLite, in data_dir.
    lite = make_server(storage="[storage]\nbackend = sqlite\n")
    assert health(lite.client())["backend"] == "sqlite"
    assert os.path.exists(os.path.join(lite.data_dir, "imgsearch.db"))


def test_restart_keeps_items(make_server, pg):
    st = storage(pg, "restart")
    s = make_server(storage=st)
    c = s.client()
    c.create_instance("keep", tags=("k",))
    for i in range(6):
        add(c, "keep", "k%d" % i, 100 + i)
    assert c.v2("keep", "data/delete", {"item_id": "k2"}).status == 200
    s.stop()
    s.start()
    c = s.client()
    assert [top(c, "keep", 100 + i) for i in (0, 1, 3, 4, 5)] == ["k0", "k1", "k3", "k4", "k5"]
    assert top(c, "keep", 102) != "k2"
    assert c.admin("GET", "/instances/keep").json["item_count"] == 5
    s.stop()
    # Another node: an empty data dir, no snapshot; everything comes from
    # the database (the index is rebuilt from its vectors).
    other = make_server(storage=st)
    c = other.client()
    assert c.admin("GET", "/instances/keep").json["item_count"] == 5
    assert top(c, "keep", 104) == "k4"
    r = c.v2("keep", "data/check", {"item_id": "k4"})
    assert r.status == 200 and r.json["data"]["item_info"]["custom_tags"] == {"k": "v104"}, r


def test_database_goes_away_and_comes_back(make_server, pg):
    s = make_server(storage=storage(pg, "away"))
    c = s.client()
    c.create_instance("gone", tags=("k",))
    add(c, "gone", "g0", 200)
    assert top(c, "gone", 200) == "g0"
    pg.pause()
    try:
        calls = [c.admin("GET", "/instances/gone"),
                 c.admin("GET", "/instances"),
                 c.admin("POST", "/instances", {"name": "new"}),
                 c.v2("gone", "data/add", {"item_id": "g1", "image_base64": b64(scene(201))}),
                 c.v2("gone", "data/check", {"item_id": "g0"}),
                 c.v2("gone", "search", {"search_type": "IMAGE",
                                         "image_base64": b64(scene(200)), "limit": 1})]
        for r in calls:
            assert 500 <= r.status < 600, r
            assert r.json.get("error_code") and r.json.get("error_msg"), r
        h = c.request("GET", "/healthz")
        assert h.status == 503 and h.json["database"] is False, h
    finally:
        pg.resume()
    # The same process, no restart: its connections are reopened.
    assert health(c)["database"] is True
    add(c, "gone", "g1", 201)
    assert top(c, "gone", 201) == "g1" and top(c, "gone", 200) == "g0"
    assert c.admin("GET", "/instances/gone").json["item_count"] == 2


def test_servers_starting_at_once_migrate_once(pg):
    st = storage(pg, "race")
    servers = [Server(storage=st) for _ in range(3)]
    errors = []

    def start(s):
        try:
            s.start()
        except Exception as e:  # reported below, with the log
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        n, top_version = pg.psql("race", "SELECT count(*), max(version) FROM schema_migrations") \
            .split("|")
        assert int(n) == int(top_version) >= 7
        for s in servers:
            assert health(s.client())["database"] is True
        # They share the data: one creates, the others see it.
        servers[0].client().create_instance("shared")
        assert servers[2].client().admin("GET", "/instances/shared").status == 200
    finally:
        for s in servers:
            s.stop()


def run_with(config_text):
    """Starts imgsearchd on this config and returns (exit code, output)."""
    srv = Server(storage="")
    with open(srv.config, "a") as f:
        f.write(config_text)
    p = subprocess.run([BINARY, "--config", srv.config], cwd=ROOT, timeout=60,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, IMGSEARCH_MODEL=MODEL))
    return p.returncode, p.stdout.decode(errors="replace")


def test_unreachable_database_stops_startup():
    rc, out = run_with("[storage]\nbackend = postgres\n"
                       "dsn = host=127.0.0.1 port=%d dbname=x user=x connect_timeout=5\n"
                       % free_port())
    assert rc != 0
    assert "cannot connect to PostgreSQL" in out, out


def test_unknown_backend_stops_startup():
    rc, out = run_with("[storage]\nbackend = mysql\n")
    assert rc != 0
    assert "[storage] backend" in out and "mysql" in out, out
    rc, out = run_with("[storage]\nbackend = postgres\n")
    assert rc != 0
    assert "needs dsn" in out, out
