"""The official Huawei Cloud SDK against imgsearchd: @huaweicloud/huaweicloud-
sdk-core (pinned, installed from npm into the cache) signs and sends every v2
operation and the v1 flow; the answers must be what the SDK expects."""
import fcntl
import os
import subprocess

import pytest
from conftest import AK, SK
from images import b64, scene

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SDK_VERSION = "3.1.211"
# The core requires uuid without declaring it (the service packages bring it).
EXTRA = ["uuid@9.0.1"]


def sdk_dir():
    cache = os.environ.get("IMGSEARCH_CACHE", os.path.join(ROOT, ".cache"))
    d = os.path.join(cache, "npm-hwsdk-" + SDK_VERSION)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(d, "node_modules", "uuid", "package.json")):
            subprocess.run(["npm", "install", "--prefix", d, "--no-audit", "--no-fund",
                            "--loglevel=error", "@huaweicloud/huaweicloud-sdk-core@" + SDK_VERSION]
                           + EXTRA, check=True, timeout=600)
    return d


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    from conftest import Server
    s = Server(auth="aksk").start()
    proj = "0123456789abcdef0123456789abcdef"
    c = s.client(("aksk", AK, SK), project=proj)
    assert c.create_instance("sdk-svc", tags=["brand"], num_tags=["year"])["name"] == "sdk-svc"
    tmp = tmp_path_factory.mktemp("sdk")
    img, result = tmp / "img.b64", tmp / "answers.json"
    img.write_text(b64(scene(4242, 400, 300)))
    out = subprocess.run(["node", os.path.join(ROOT, "tests", "e2e", "sdk_check.js"), sdk_dir(),
                          f"http://127.0.0.1:{s.port}", AK, SK, proj, "sdk-svc", "sdkv1",
                          str(img), str(result)], capture_output=True, text=True, timeout=300)
    s.stop()
    assert out.returncode == 0, out.stderr[-3000:]
    import json
    return json.loads(result.read_text())


def test_v2_operations(answers):
    a = answers
    assert a["add"]["ok"] and a["add"]["body"]["result"] == "success", a["add"]
    assert a["add"]["body"]["data"]["image_info"]["objects"][0]["box"] == "0,0,400,300"
    s = a["search"]["body"]["data"]
    assert s["items"][0]["id"] == "sdk-1" and s["items"][0]["score"] > 0.98
    assert s["items"][0]["source"]["custom_num_tags"] == {"year": 2023}
    assert s["search_info"]["return_num"] == 1
    assert a["check"]["body"]["data"]["existed"] is True
    assert a["update"]["ok"] and a["update"]["body"]["result"] == "success"
    assert a["checkAfter"]["body"]["data"]["item_info"]["desc"] == "updated"
    assert a["deleteCond"]["body"]["data"]["delete_info"] == {"total_num": 0, "delete_num": 0}
    assert a["delete"]["ok"] and a["delete"]["body"]["result"] == "success"


def test_errors_as_the_sdk_sees_them(answers):
    a = answers
    assert a["addAgain"] == {**a["addAgain"], "ok": False, "status": 400,
                             "errorCode": "MMS.1013", "type": "ClientRequestException"}
    assert a["badParam"]["errorCode"] == "MMS.0003"
    assert a["badParam"]["errorMsg"] == "Invalid parameter: limit"
    assert a["noService"]["errorCode"] == "MMS.1001"
    w = a["wrongSecret"]
    assert w["status"] == 401 and w["errorCode"] == "APIG.0301"
    assert w["errorMsg"].startswith("Incorrect IAM authentication information: verify aksk")
    assert len(w["requestId"]) == 32  # the SDK read our X-Request-Id


def test_v1_flow(answers):
    a = answers
    assert a["v1create"]["body"]["instanceName"] == "sdkv1"
    assert a["v1query"]["body"]["tags"] == ["color"]
    assert a["v1add"]["body"]["result"] == "success"
    assert a["v1check"]["body"]["exist"] == "true"
    r = a["v1search"]["body"]
    assert r["count"] == 1 and r["result"][0]["path"] == "obs://bucket/a.jpg"
    assert r["result"][0]["tags"] == {"color": "red"}
    assert a["v1modify"]["body"]["result"] == "success"
    assert a["v1delete"]["ok"], a["v1delete"]  # DELETE with a JSON body, signed
    assert a["v1deleteInstance"]["body"]["result"] == "success"
