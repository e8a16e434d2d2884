"""Starts the real bin/imgsearchd through tests/e2e/conftest.py's Server class, plus small
helpers shared by bench-quality and bench-ingest."""
import atexit
import base64
import datetime
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))


def _snapshot_binary():
    """Other developers rebuild bin/imgsearchd in this tree: run a private copy (taken once the
    file has been stable for 3 s) so a relink cannot break a long benchmark."""
    if os.environ.get("IMGSEARCHD"):
        return
    src = os.path.join(REPO, "bin", "imgsearchd")
    dst_dir = os.path.join(REPO, ".cache", "bench-bin")
    os.makedirs(dst_dir, exist_ok=True)
    dst = os.path.join(dst_dir, f"imgsearchd.{os.getpid()}")
    for _ in range(120):
        try:
            st = os.stat(src)
            if time.time() - st.st_mtime > 3 and os.access(src, os.X_OK):
                shutil.copy2(src, dst)
                if os.stat(src).st_mtime == st.st_mtime:
                    break
        except OSError:
            pass
        time.sleep(1)
    os.environ["IMGSEARCHD"] = dst
    atexit.register(lambda: os.path.exists(dst) and os.unlink(dst))


_snapshot_binary()

from conftest import Server  # noqa: E402,F401
from imgsearch_client import Client  # noqa: E402,F401


def b64(data):
    return base64.b64encode(data).decode()


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine_line():
    load = os.getloadavg()
    return (f"{cpu_model()}, {os.cpu_count()} CPUs (shared; load average at start "
            f"{load[0]:.2f}), {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")


def git_rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_server(extra=""):
    if not os.path.exists(os.environ["IMGSEARCHD"]):
        sys.exit("bin/imgsearchd missing: run `make -j2 bin/imgsearchd`")
    if not os.path.exists(os.path.join(REPO, "models", "mnv2_140.bin")) and \
            not os.environ.get("IMGSEARCH_MODEL"):
        sys.exit("model missing: run scripts/fetch-model.sh")
    return Server(extra=extra).start()


class Timer:
    def __init__(self):
        self.t0 = time.time()

    def __call__(self):
        return time.time() - self.t0
