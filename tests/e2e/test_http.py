"""HTTP core: routing, body limits, malformed JSON, headers, health."""
import json
import socket
import time


def test_unknown_path_and_method(client):
    r = client.request("GET", "/v2/proj1/mms/x/nope")
    assert r.status == 404 and r.json["error_code"] == "APIG.0101"
    assert len(r.json["request_id"]) == 32
    r = client.request("GET", "/v1/proj1/service")
    assert r.status == 404 and r.json["error_msg"] == "The API does not exist."
    r = client.request("PATCH", "/v1/proj1/service/x")
    assert r.status == 404 and r.json["error_code"] == "APIG.0101"


def test_malformed_json_by_family(client):
    client.create_instance("jsonfam")
    r = client.request("POST", "/v1/proj1/service", raw=b"{not json")
    assert r.status == 400 and r.json == {
        "error_code": "IS.0008", "error_msg": "The JSON format of the input data is incorrect."}
    r = client.request("POST", "/admin/v1/proj1/instances", raw=b"[1,2]")
    assert r.status == 400 and r.json["error_code"] == "ModelArts.4105"
    r = client.request("POST", "/v1/proj1/service", raw=b'{"name":"a","name":"b"}')
    assert r.status == 400 and r.json["error_code"] == "IS.0008"
    r = client.request("POST", "/v1/proj1/service", raw=b"")
    assert r.status == 400 and r.json["error_code"] == "IS.0008"


def test_body_too_large_with_length(server):
    # Announce 13 MB but send nothing: the server must answer without reading.
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"POST /v1/proj1/service HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 13000000\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413")
    j = json.loads(body)
    assert j["error_code"] == "APIG.0201" and j["error_msg"] == "Request entity too large."


def test_body_too_large_chunked(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.sendall(b"POST /v1/proj1/service HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 1048576
    try:
        for _ in range(13):
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    data = b""
    while True:
        try:
            c = s.recv(65536)
        except OSError:
            break
        if not c:
            break
        data += c
        if data.rstrip().endswith(b"}"):
            break
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"APIG.0201" in data


def test_body_at_limit_is_read(make_server):
    s = make_server(extra="")
    c = s.client()
    # 12 MiB exactly is allowed (it is then malformed JSON, so 400 not 413).
    r = c.request("POST", "/v1/proj1/service", raw=b" " * (12 * 1024 * 1024))
    assert r.status == 400 and r.json["error_code"] == "IS.0008"


def test_max_body_bytes_config(make_server):
    s = make_server(extra="")
    with open(s.config, "a") as f:
        f.write("")
    small = make_server(extra="")
    small.stop()
    with open(small.config) as f:
        text = f.read().replace("[server]\n", "[server]\nmax_body_bytes = 1K\n", 1)
    with open(small.config, "w") as f:
        f.write(text)
    small.start()
    r = small.client().request("POST", "/v1/proj1/service", raw=b"x" * 2048)
    assert r.status == 413 and r.json["error_code"] == "APIG.0201"


def test_health_and_metrics(client):
    r = client.request("GET", "/healthz")
    assert r.status == 200 and r.json["status"] == "ok" and r.json["database"] is True
    r = client.request("GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    assert b'imgsearch_requests_total{route="healthz",status="200"}' in r.body


def test_invalid_project_id(client):
    r = client.request("GET", "/admin/v1/bad-project!/instances")
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: project_id"


def test_every_response_has_request_id_and_json(client):
    for method, path in [("GET", "/healthz"), ("GET", "/nope"), ("POST", "/v1/proj1/service")]:
        r = client.request(method, path)
        assert len(r.headers["x-request-id"]) == 32
        assert r.headers["content-type"] == "application/json"
        r.json


def _cpu_has_vnni():
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512_vnni"))


def _log_has(s, text, seconds=10):
    """The "listening" line is written just after the port opens, which is
    when the fixture returns: under ASan on a loaded machine, a moment later."""
    deadline = time.time() + seconds
    while text not in s.read_log() and time.time() < deadline:
        time.sleep(0.05)
    return text in s.read_log()


def test_cnn_path_in_the_log(make_server):
    """[index] int8 (on by default) runs the CNN's 1x1 convolutions in int8
    where the CPU has AVX-512 VNNI; off, or on other CPUs, the float path."""
    s = make_server()
    assert _log_has(s, "int8 CNN" if _cpu_has_vnni() else "float CNN")
    s = make_server(extra="[index]\nint8 = off\n")
    assert _log_has(s, "float CNN")
