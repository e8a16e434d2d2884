"""Instances through the v1 API and the admin API: one namespace."""
import uuid


def name():
    return "i" + uuid.uuid4().hex[:12]


def test_v1_create_query_delete(client):
    n = name()
    r = client.v1("POST", "/service", {"name": n, "model": "common-search",
                                       "description": "d", "tags": ["color", "size"]})
    assert r.status == 200, r
    j = r.json
    assert j["instanceName"] == n and j["tags"] == ["color", "size"]
    assert j["level"] == 30000000 and j["status"] == "NORMAL" and j["expiredDate"] == -1
    assert isinstance(j["registerDate"], int) and j["desc"] == "d"
    assert r.headers["content-type"] == "application/json"
    assert len(r.headers["x-request-id"]) == 32
    g = client.v1("GET", f"/service/{n}")
    assert g.status == 200 and g.json == j
    d = client.v1("DELETE", f"/service/{n}")
    assert d.status == 200 and d.json == {"result": "success"}
    g = client.v1("GET", f"/service/{n}")
    assert g.status == 400 and g.json["error_code"] == "IS.0007"


def test_v1_name_rules(client):
    for bad in ["Upper", "1starts-digit", "x" * 17, "sp ace", ""]:
        r = client.v1("POST", "/service", {"name": bad, "model": "common-search"})
        assert r.status == 400 and r.json["error_code"] in ("IS.0007", "IS.0001"), (bad, r)
    ok = client.v1("POST", "/service", {"name": "a" * 16, "model": "common-search"})
    assert ok.status in (200, 400)  # 400 only if a previous run left it


def test_v1_bad_fields(client):
    r = client.v1("POST", "/service", {"name": name(), "model": "no-such-model"})
    assert r.status == 400 and r.json["error_code"] == "IS.0002"
    r = client.v1("POST", "/service", {"name": name()})
    assert r.status == 400 and r.json["error_code"] == "IS.0001"
    r = client.v1("POST", "/service", {"name": name(), "model": "common-search",
                                       "tags": ["UPPER"]})
    assert r.status == 400 and r.json["error_code"] == "IS.0002"
    r = client.v1("POST", "/service", {"name": name(), "model": "common-search",
                                       "tags": [str(i) for i in range(11)]})
    assert r.status == 400
    r = client.v1("POST", "/service", {"name": name(), "model": "common-search", "level": 5})
    assert r.status == 400 and r.json["error_code"] == "IS.0002"


def test_duplicate_names(client):
    n = name()
    assert client.v1("POST", "/service", {"name": n, "model": "common-search"}).status == 200
    r = client.v1("POST", "/service", {"name": n, "model": "common-search"})
    assert r.status == 400 and r.json["error_code"] == "IS.0007"
    r = client.admin("POST", "/instances", {"name": n})
    assert r.status == 400 and r.json == {"error_code": "MMS.1004",
                                          "error_msg": "Instance name is already exists."}


def test_admin_crud_and_shared_namespace(client):
    n = name()
    r = client.admin("POST", "/instances", {"name": n, "description": "shop",
                                            "custom_tags": ["brand"],
                                            "custom_num_tags": ["year"]})
    assert r.status == 201, r
    j = r.json
    assert j["name"] == n and j["custom_tags"] == ["brand"] and j["custom_num_tags"] == ["year"]
    assert j["search_types"] == ["IMAGE", "KEYWORD"] and j["item_count"] == 0
    # The same instance through v1
    g = client.v1("GET", f"/service/{n}")
    assert g.status == 200 and g.json["tags"] == ["brand"]
    lst = client.admin("GET", "/instances").json
    assert n in [i["name"] for i in lst["instances"]] and lst["count"] == len(lst["instances"])
    assert client.admin("GET", f"/instances/{n}").json["name"] == n
    assert client.admin("DELETE", f"/instances/{n}").json == {"result": "success"}
    r = client.admin("GET", f"/instances/{n}")
    assert r.status == 400 and r.json["error_code"] == "MMS.1001"
    r = client.admin("DELETE", f"/instances/{n}")
    assert r.status == 400 and r.json["error_code"] == "MMS.1001"


def test_admin_validation(client):
    r = client.admin("POST", "/instances", {"name": "bad name"})
    assert r.status == 400 and r.json == {"error_code": "MMS.0003",
                                          "error_msg": "Invalid parameter: name"}
    r = client.admin("POST", "/instances", {"name": name(), "description": "x" * 513})
    assert r.status == 400 and r.json["error_code"] == "MMS.1003"
    r = client.admin("POST", "/instances", {"name": name(), "search_types": ["TEXT"]})
    assert r.status == 400 and r.json["error_code"] == "MMS.1018"
    r = client.admin("POST", "/instances", {"name": name(), "search_types": ["NOPE"]})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: search_types"
    r = client.admin("POST", "/instances", {"name": name(), "custom_tags": ["a", "a"]})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: custom_tags"
    r = client.admin("POST", "/instances", {"name": 5})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: name"


def test_projects_are_separate(server):
    a, b = server.client(project="projA"), server.client(project="projB")
    n = name()
    a.create_instance(n)
    assert b.admin("GET", f"/instances/{n}").status == 400
    assert n not in [i["name"] for i in b.admin("GET", "/instances").json["instances"]]
    assert b.admin("POST", "/instances", {"name": n}).status == 201


def test_restart_keeps_instances(make_server):
    s = make_server()
    c = s.client()
    c.create_instance("keepme", tags=["k"])
    c.v1("POST", "/service", {"name": "keepv1", "model": "image-recommend", "tags": ["t"]})
    s.stop()
    s.start()
    c = s.client()
    assert c.admin("GET", "/instances/keepme").json["custom_tags"] == ["k"]
    j = c.v1("GET", "/service/keepv1").json
    assert j["domain"] == "image-recommend" and j["tags"] == ["t"]
