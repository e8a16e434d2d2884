"""The server's own descriptors outside the server: scripts/embed_dump.c linked with
build/release/libimgsearch.a (the same decode and extractor as v2 data/add), run on image
files in two processes. Shared by the offline quality experiments."""
import os
import subprocess
import tempfile

import numpy as np

from bench_lib import harness

LIBS = ("-lmicrohttpd -ljansson -lsqlite3 -lpq -lcurl -lssl -lcrypto -lturbojpeg -ljpeg -lpng "
        "-lwebp -linih -lfaiss -lopenblas -llapack -fopenmp -lstdc++ -lm -lpthread").split()


def build_tool():
    out = os.path.join(harness.REPO, ".cache", "bench-bin", "embed_dump")
    src = os.path.join(harness.REPO, "scripts", "embed_dump.c")
    lib = os.path.join(harness.REPO, "build", "release", "libimgsearch.a")
    if not os.path.exists(out) or os.path.getmtime(out) < max(os.path.getmtime(src),
                                                               os.path.getmtime(lib)):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + harness.REPO, src, lib]
                       + LIBS + ["-o", out], check=True)
    return out


def embed(tool, paths, procs=2):
    """Runs `procs` embed_dump processes on interleaved slices (files, not pipes)."""
    tmp = tempfile.mkdtemp(prefix="bench-embed-")
    ps = []
    for i in range(procs):
        lst = os.path.join(tmp, f"list{i}")
        open(lst, "w").write("\n".join(paths[i::procs]) + "\n")
        ps.append(subprocess.Popen([tool], stdin=open(lst), stdout=open(lst + ".f32", "wb"),
                                   cwd=harness.REPO))
    res = np.zeros((len(paths), 1792), np.float32)
    for i, p in enumerate(ps):
        p.wait()
        res[i::procs] = np.fromfile(os.path.join(tmp, f"list{i}.f32"), np.float32).reshape(-1, 1792)
    subprocess.run(["rm", "-rf", tmp])
    return res


def l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
