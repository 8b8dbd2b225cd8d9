#!/usr/bin/env python3
"""Tidemark vs VictoriaMetrics on the peers dataset, measured in one run.

Runs ../shared/peers (copied to a writable folder) for VictoriaMetrics's line
protocol and remote-write ingest and its query latencies, then the same
drivers against `tidemark serve` (release build), and prints one table with
ratios. Answers are compared with Prometheus 2.42's when they are on file
(`run_peers.sh ... --phases prom-query` saves them).

    python3 benches/peers/compare.py [--size default] [--skip-vm]

Writes benches/peers/last-run.json (not committed). Everything binds to
127.0.0.1; servers are stopped by PID.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = "/tmp/tidemark-peers"


def load_peers(src):
    """Copies the read-only peers folder somewhere writable and imports it."""
    if not os.path.isdir(WORK):
        shutil.copytree(src, WORK)
        for dirpath, dirnames, filenames in os.walk(WORK):
            for n in dirnames + filenames:
                os.chmod(os.path.join(dirpath, n), 0o755)
    sys.path.insert(0, WORK)
    import run_peers  # noqa: E402

    return run_peers


def ensure_rw(rp, ds):
    """The remote-write file is optional in cached datasets: generate it beside."""
    if os.path.exists(os.path.join(ds, "data.rw")):
        return
    side = ds + "-rw"
    if not os.path.exists(os.path.join(side, "data.rw")):
        params = json.load(open(os.path.join(ds, "meta.json")))["params"]
        subprocess.run([rp.PY, os.path.join(WORK, "gen_dataset.py"), "--size", params["size"],
                        "--seed", str(params["seed"]), "--formats", "rw", "--out", side], check=True)
    os.symlink(os.path.join(side, "data.rw"), os.path.join(ds, "data.rw"))


def tidemark_phase(rp, args, ds, meta, method, expected_dir):
    binary = os.path.join(ROOT, "target", "release", "tidemark")
    d = os.path.join(args.workdir, "tidemark-" + method)
    shutil.rmtree(d, ignore_errors=True)
    port = rp.free_port()
    base = "http://127.0.0.1:%d" % port
    srv = rp.Server("tidemark-" + method, [binary, "serve", "--listen", "127.0.0.1:%d" % port,
                                           "--data-dir", d, "--retention", "100y"],
                    os.path.join(args.workdir, "tidemark-%s.log" % method))
    res = {"peer": "tidemark", "method": method}
    try:
        res["startup_s"] = round(rp.wait_http(base + "/-/ready", proc=srv.p), 2)
        cpu0 = rp.proc_cpu_s(srv.pid)
        data = os.path.join(ds, "data.lp" if method == "lp" else "data.rw")
        res["ingest"] = rp.run_json([rp.PY, os.path.join(WORK, "ingest.py"), "--url", base, "--format", method,
                                     "--file", data, "--samples", str(meta["samples"]),
                                     "--concurrency", str(args.concurrency)])
        res["server_cpu_s_ingest"] = round(rp.proc_cpu_s(srv.pid) - cpu0, 2)
        t0 = time.time()
        req = urllib.request.Request(base + "/api/v1/admin/compact", method="POST")
        urllib.request.urlopen(req, timeout=600).read()
        res["compact_s"] = round(time.time() - t0, 2)
        res["rss_after_ingest"] = rp.proc_status(srv.pid)
        res["disk"] = rp.du(d)
        res["bytes_per_sample"] = round(res["disk"]["apparent_bytes"] / meta["samples"], 3)
        res["count"] = rp.count_query(base, meta)
        if method == "lp":
            save = os.path.join(args.workdir, "tidemark-answers")
            shutil.rmtree(save, ignore_errors=True)
            res["queries"] = rp.run_json([rp.PY, os.path.join(WORK, "query.py"), "--url", base,
                                          "--meta", os.path.join(ds, "meta.json"), "--repeats", str(args.repeats),
                                          "--save-dir", save])
            prom = os.path.join(expected_dir, "prometheus")
            if os.path.isdir(prom):
                r = subprocess.run([rp.PY, os.path.join(WORK, "compare.py"), "--summary", prom, save],
                                   capture_output=True, text=True)
                res["vs_prometheus"] = r.stdout.strip()
    finally:
        srv.stop()
    return res


def median(q, qid):
    for x in (q or {}).get("queries", []):
        if x["id"] == qid:
            return x.get("median_ms")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="default")
    ap.add_argument("--peers-dir", default=os.path.join(ROOT, "..", "shared", "peers"))
    ap.add_argument("--workdir", default="/tmp/peers-data")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-vm", action="store_true")
    args = ap.parse_args()
    args.seed, args.jitter_ms, args.regen = 42, 0, False

    rp = load_peers(args.peers_dir)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    tag, ds, meta = rp.ensure_dataset(args)
    ensure_rw(rp, ds)
    expected_dir = os.path.join(WORK, "expected", tag)
    os.makedirs(expected_dir, exist_ok=True)

    results = {}
    if not args.skip_vm:
        results["vm-lp"] = rp.phase_vm(args, ds, meta, "lp", True, expected_dir)
        results["vm-rw"] = rp.phase_vm(args, ds, meta, "rw", False, expected_dir)
    results["tm-lp"] = tidemark_phase(rp, args, ds, meta, "lp", expected_dir)
    results["tm-rw"] = tidemark_phase(rp, args, ds, meta, "rw", expected_dir)
    with open(os.path.join(ROOT, "benches", "peers", "last-run.json"), "w") as f:
        json.dump(results, f, indent=1)

    def rate(r):
        return (r or {}).get("ingest", {}).get("samples_per_s")

    def rss(r):
        return (r or {}).get("rss_after_ingest", {}).get("VmHWM")

    def ratio(a, b):
        return "%.2fx" % (a / b) if a and b else "-"

    print("\n%s: %d series, %d samples" % (tag, meta["series"], meta["samples"]))
    print("%-34s %14s %14s %8s" % ("metric", "tidemark", "victoria", "ratio"))
    rows = []
    for m in ("lp", "rw"):
        t, v = results.get("tm-" + m), results.get("vm-" + m)
        rows.append(("ingest %s samples/s" % m, rate(t), rate(v)))
        cpu_t = t and t.get("server_cpu_s_ingest")
        cpu_v = v and v.get("server_cpu_s_ingest")
        rows.append(("server CPU-s per M samples (%s)" % m,
                     cpu_t and cpu_t / meta["samples"] * 1e6, cpu_v and cpu_v / meta["samples"] * 1e6))
        rows.append(("peak RSS MiB (%s)" % m, rss(t) and rss(t) / 2 ** 20, rss(v) and rss(v) / 2 ** 20))
    rows.append(("bytes/sample on disk", results["tm-lp"].get("bytes_per_sample"),
                 results.get("vm-lp", {}).get("bytes_per_sample")))
    for qid in ("rate_requests", "sum_rate_by_service", "max_over_time_cpu_1h", "p99_recovery"):
        rows.append(("query %s ms" % qid, median(results["tm-lp"].get("queries"), qid),
                     median(results.get("vm-lp", {}).get("queries"), qid)))
    for name, a, b in rows:
        fa = "%.3f" % a if isinstance(a, float) else str(a if a is not None else "-")
        fb = "%.3f" % b if isinstance(b, float) else str(b if b is not None else "-")
        print("%-34s %14s %14s %8s" % (name, fa, fb, ratio(a, b)))
    print("stored samples counted by query: lp %s, rw %s (expected %d)" % (
        results["tm-lp"].get("count"), results["tm-rw"].get("count"), meta["samples"]))
    if results["tm-lp"].get("vs_prometheus"):
        lines = results["tm-lp"]["vs_prometheus"].splitlines()
        same = sum(1 for line in lines if line.strip().endswith("identical"))
        print("answers identical to Prometheus 2.42: %d of %d queries" % (same, len(lines)))
        for line in lines:
            if not line.strip().endswith("identical"):
                print("  " + line.strip())


if __name__ == "__main__":
    main()
