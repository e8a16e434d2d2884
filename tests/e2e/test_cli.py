"""bin/imgsearch, the CLI, against a real server in aksk and token mode:
every subcommand, --help everywhere, exit codes, and an import with a
progress line per poll (stdout is not a terminal here)."""
import os
import subprocess

import pytest
from conftest import AK, IS_ASAN, ROOT, SK, TOKEN
from images import encode, scene

# The ASan pass checks the ASan build of the CLI too.
CLI = os.path.join(ROOT, os.environ.get("IMGSEARCH_CLI",
                                        "bin/imgsearch-asan" if IS_ASAN else "bin/imgsearch"))


def run(args, check=None, **kw):
    p = subprocess.run([CLI] + args, capture_output=True, text=True, timeout=120, **kw)
    if check is not None:
        assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
    return p


def test_help_everywhere():
    for args in (["--help"], ["instance", "--help"], ["instance", "create", "--help"],
                 ["import", "--help"], ["import", "start", "--help"], ["add", "--help"],
                 ["search", "--help"], ["check", "--help"]):
        p = run(args, check=0)
        assert "usage: imgsearch" in p.stdout, args
    assert run([], check=2).stderr.startswith("usage")
    assert run(["frobnicate"], check=2)
    assert run(["instance", "create"], check=2)
    assert run(["search", "x", "y", "--bogus"], check=2)


@pytest.mark.parametrize("mode", ["aksk", "token"])
def test_every_command(make_server, mode, tmp_path):
    srv = make_server(auth=mode)
    # Credentials come from the server's own config file by default...
    base = ["--config", srv.config, "--project", "proj1"]
    if mode == "token":
        # ...or from the command line.
        base = ["--server", f"http://127.0.0.1:{srv.port}", "--project", "proj1",
                "--token", TOKEN]
    p = run(base + ["instance", "create", "cli", "--tags", "color", "--desc", "from cli"],
            check=0)
    assert "created cli" in p.stdout
    assert "cli" in run(base + ["instance", "list"], check=0).stdout
    p = run(base + ["instance", "show", "cli"], check=0)
    assert '"custom_tags": [\n    "color"' in p.stdout or '"color"' in p.stdout
    p = run(base + ["instance", "create", "cli"], check=1)
    assert "MMS.1004" in p.stderr
    assert "created lean" in run(base + ["instance", "create", "lean", "--no-views",
                                         "--regions"], check=0).stdout
    p = run(base + ["instance", "show", "lean"], check=0)
    assert '"views": false' in p.stdout and '"regions": true' in p.stdout, p.stdout
    assert '"views": true' in run(base + ["instance", "show", "cli"], check=0).stdout

    # import start --wait: a folder becomes searchable.
    d = os.path.join(srv.objects_dir, "cli")
    os.makedirs(d)
    for i in range(6):
        with open(os.path.join(d, "p%d.jpg" % i), "wb") as f:
            f.write(encode(scene(300 + i)))
    p = run(base + ["import", "start", "cli", "obs://local/cli/", "--wait"], check=0)
    assert "queued (listing the source)" in p.stdout
    assert "SUCCEEDED" in p.stdout and "done=6" in p.stdout, p.stdout
    assert "img/s" in p.stdout  # one progress line per poll off a terminal
    job = p.stdout.split()[1]
    p = run(base + ["import", "status", "cli", job], check=0)
    assert "SUCCEEDED total=6 done=6 failed=0" in p.stdout
    p = run(base + ["import", "list", "cli"], check=0)
    assert job in p.stdout
    p = run(base + ["import", "cancel", "cli", job], check=0)
    assert "SUCCEEDED" in p.stdout  # finished jobs stay finished
    p = run(base + ["import", "status", "cli", "imp-nope"], check=1)
    assert "MMS.1014" in p.stderr

    # search by file and by object URL: ids and scores.
    q = tmp_path / "q.jpg"
    q.write_bytes(encode(scene(303)))
    p = run(base + ["search", "cli", str(q), "--limit", "3"], check=0)
    first = p.stdout.splitlines()[0].split("\t")
    assert first[0] == "cli/p3.jpg" and float(first[1]) > 0.98, p.stdout
    p = run(base + ["search", "cli", "obs://local/cli/p4.jpg", "--limit", "1"], check=0)
    assert p.stdout.startswith("cli/p4.jpg\t")

    # add a file, then check it.
    a = tmp_path / "new.png"
    a.write_bytes(encode(scene(999), "PNG"))
    p = run(base + ["add", "cli", str(a), "--desc", "added", "--tags-json", '{"color":"red"}'],
            check=0)
    assert "added new.png" in p.stdout
    p = run(base + ["check", "cli", "new.png"], check=0)
    assert "exists" in p.stdout and '"red"' in p.stdout
    assert run(base + ["check", "cli", "nope.png"], check=1)
    p = run(base + ["add", "cli", str(a)], check=1)
    assert "MMS.1013" in p.stderr

    p = run(base + ["instance", "delete", "cli"], check=0)
    assert "deleted cli" in p.stdout
    assert "MMS.1001" in run(base + ["instance", "show", "cli"], check=1).stderr


def test_bad_credentials_and_unreachable(make_server):
    srv = make_server(auth="aksk")
    p = run(["--server", f"http://127.0.0.1:{srv.port}", "--project", "proj1", "--ak", AK,
             "--sk", SK + "x", "instance", "list"], check=1)
    assert "APIG.0301" in p.stderr
    p = run(["--server", "http://127.0.0.1:1", "instance", "list"], check=1)
    assert p.stderr
