"""Authentication in every mode: tokens, SDK-HMAC-SHA256 signatures (good,
tampered, stale, unknown key), project limits, and the spec's test vector
sent byte for byte."""
import http.client
import json
import time

import pytest
from conftest import AK, SK, TOKEN
from imgsearch_client import sdk_date


@pytest.fixture(scope="module")
def servers():
    """One server per mode, sharing nothing."""
    from conftest import Server
    extra = ("[credential:limited]\naccess_key = LIMITEDAK\nsecret_key = LIMITEDSECRET0\n"
             "project_id = projA\n"
             "[token:limited]\ntoken = limited-token-000\nproject_id = projA\n")
    made = {m: Server(auth=m, extra=extra).start() for m in ("token", "aksk", "any")}
    yield made
    for s in made.values():
        s.stop()


def test_token_mode(servers):
    s = servers["token"]
    c = s.client()
    r = c.admin("GET", "/instances")
    assert r.status == 401 and r.json == {"error_code": "ModelArts.4101",
                                          "error_msg": "Token header cannot be empty."}
    r = c.v1("GET", "/service/x")
    assert r.status == 401 and r.json["error_code"] == "IS.0013"
    r = c.with_auth(("token", "wrong-token-xyz")).admin("GET", "/instances")
    assert r.status == 401 and r.json["error_code"] == "APIG.0301"
    assert r.json["error_msg"] == ("Incorrect IAM authentication information: "
                                   "decrypt token fail")
    assert len(r.json["request_id"]) == 32
    r = c.with_auth(("token", TOKEN)).admin("GET", "/instances")
    assert r.status == 200
    # A signed request is not a token.
    r = c.with_auth(("aksk", AK, SK)).admin("GET", "/instances")
    assert r.status == 401 and r.json["error_code"] == "ModelArts.4101"
    # The cluster view is ours, of no project, and needs auth like the rest.
    assert c.request("GET", "/admin/v1/cluster").status == 401
    r = c.with_auth(("token", TOKEN)).request("GET", "/admin/v1/cluster")
    assert r.status == 200 and r.json["mode"] in ("single", "shared"), r
    # Health stays open for load balancers.
    assert c.request("GET", "/healthz").status == 200


def test_aksk_good_and_tampered(servers):
    s = servers["aksk"]
    c = s.client(("aksk", AK, SK))
    r = c.admin("POST", "/instances", {"name": "signed1"})
    assert r.status == 201, r
    assert c.admin("GET", "/instances/signed1").status == 200
    # Sign one body, send another.
    from imgsearch_client import sign
    body = json.dumps({"name": "signed2"}).encode()
    h = {"Content-Type": "application/json", "Host": f"127.0.0.1:{s.port}",
         "X-Sdk-Date": sdk_date(), "X-Project-Id": "proj1"}
    sign("POST", "/admin/v1/proj1/instances", h, body, AK, SK)
    tampered = body.replace(b"signed2", b"signed3")
    r = c.with_auth(None).request("POST", "/admin/v1/proj1/instances", raw=tampered, headers=h)
    assert r.status == 401 and r.json["error_code"] == "APIG.0301"
    assert r.json["error_msg"].startswith(
        "Incorrect IAM authentication information: verify aksk signature fail")
    # The same headers with the signed body pass.
    r = c.with_auth(None).request("POST", "/admin/v1/proj1/instances", raw=body, headers=h)
    assert r.status == 201
    # A tampered signed header fails too.
    h2 = dict(h, **{"Content-Type": "application/json;charset=utf-8"})
    r = c.with_auth(None).request("POST", "/admin/v1/proj1/instances", raw=body, headers=h2)
    assert r.status == 401


def test_aksk_failures(servers):
    s = servers["aksk"]
    base = s.client()
    r = base.admin("GET", "/instances")
    assert r.status == 401 and r.json["error_code"] == "APIG.0301"
    r = base.with_auth(("aksk", "NOSUCHAK", SK)).admin("GET", "/instances")
    assert r.status == 401 and r.json["error_msg"].endswith("Get secretKey failed")
    r = base.with_auth(("aksk", AK, "wrong-secret")).admin("GET", "/instances")
    assert r.status == 401 and "verify aksk signature fail" in r.json["error_msg"]
    stale = sdk_date(time.time() - 16 * 60)
    r = base.with_auth(("aksk", AK, SK)).admin("GET", "/instances", sign_date=stale)
    assert r.status == 401 and r.json["error_msg"].endswith("signature expired")
    future = sdk_date(time.time() + 16 * 60)
    r = base.with_auth(("aksk", AK, SK)).admin("GET", "/instances", sign_date=future)
    assert r.status == 401
    ok = sdk_date(time.time() - 10 * 60)
    r = base.with_auth(("aksk", AK, SK)).admin("GET", "/instances", sign_date=ok)
    assert r.status == 200
    r = base.request("GET", "/admin/v1/proj1/instances",
                     headers={"Authorization": "SDK-HMAC-SHA256 Access=TESTAK, "
                                               "SignedHeaders=host, Signature=" + "0" * 64})
    assert r.status == 401


def test_project_limits(servers):
    for mode, auth in (("aksk", ("aksk", "LIMITEDAK", "LIMITEDSECRET0")),
                       ("token", ("token", "limited-token-000"))):
        s = servers[mode]
        a = s.client(auth, project="projA")
        assert a.admin("GET", "/instances").status == 200
        b = s.client(auth, project="projB")
        r = b.admin("GET", "/instances")
        assert r.status == 403 and r.json["error_code"] == "APIG.0302", (mode, r)
    # X-Project-Id must match the path.
    c = servers["aksk"].client(("aksk", AK, SK), project="projA")
    r = c.request("GET", "/admin/v1/projB/instances")
    assert r.status == 403 and r.json["error_code"] == "APIG.0302"


def test_any_mode(servers):
    s = servers["any"]
    assert s.client(("token", TOKEN)).admin("GET", "/instances").status == 200
    assert s.client(("aksk", AK, SK)).admin("GET", "/instances").status == 200
    r = s.client().admin("GET", "/instances")
    assert r.status == 401 and r.json["error_code"] == "ModelArts.4101"
    assert s.client(("aksk", AK, "bad")).admin("GET", "/instances").status == 401


def test_none_mode_warns(make_server):
    s = make_server()
    assert "mode = none" in s.read_log()
    assert s.client().admin("GET", "/instances").status == 200


def test_spec_test_vector_byte_for_byte(make_server):
    """The exact request of api-spec §2.2, dated 2024-01-01, accepted with a
    skew window wide enough; the same request with one body byte changed is
    rejected."""
    s = make_server(auth="aksk", extra="[auth]\nmax_skew_seconds = 600000000\n")
    proj = "0123456789abcdef0123456789abcdef"
    s.client(project=proj)  # instances need no auth in the vector; create one signed:
    c = s.client(("aksk", AK, SK), project=proj)
    assert c.admin("POST", "/instances", {"name": "my-svc"}).status == 201
    body = b'{"item_id": "electronics_01"}'
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "test-agent",
        "X-Project-Id": proj,
        "X-Sdk-Date": "20240101T000000Z",
        "Host": "127.0.0.1:18080",
        "Authorization": "SDK-HMAC-SHA256 Access=TESTAK, SignedHeaders=content-type;host;"
                         "user-agent;x-project-id;x-sdk-date, Signature=aa11d176f99461ad9873c4"
                         "9893250b540b11cf803bc16e8c35c3351d319400cb",
    }
    path = f"/v2/{proj}/mms/my-svc/data/check"

    def send(b):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(b)))
        conn.endheaders(b)
        r = conn.getresponse()
        out = (r.status, json.loads(r.read()))
        conn.close()
        return out

    status, j = send(body)
    assert status == 200, j
    assert j == {"result": "success", "data": {"existed": False}}
    status, j = send(body.replace(b"01", b"02"))
    assert status == 401 and j["error_code"] == "APIG.0301"
