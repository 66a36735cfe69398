#!/usr/bin/env python3
"""Measures what `ponder eval` costs on top of the work it cannot avoid.

For each instance (environments and warm instances built by a first run, test-run cache off),
ponder's wall time for the instance is compared with the reference: the same install command
and the same test command run bare (no sandbox, no ponder) in the very checkout and environment
layer ponder used (the instance's warm instance, as the harness reruns install and the tests in
a container of its instance image). The ratio ponder / bare is printed per instance, with the
median over all of them, and each warm instance's build time and size.

Then: each base environment's build time and disk size (from `ponder env list --json`), and
the peak resident memory of the ponder process itself while grading with 4 workers.

Usage:
  bench/eval_overhead.py --dataset D --instances a,b,c [--repos R] [--ponder BIN] [--cache DIR]
With no --dataset it uses the bundled example task, copied under ten instance ids.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ponder_eval(args, dataset, instances, run_dir, workers, extra=()):
    cmd = [args.ponder, "eval", "--dataset", str(dataset), "--gold", "--quiet",
           "--run-dir", str(run_dir), "--cache-dir", args.cache, "--workers", str(workers),
           *extra]
    if instances:
        cmd += ["--instances", ",".join(instances)]
    if args.repos:
        cmd += ["--repos", args.repos]
    return cmd


def peak_rss_of(cmd):
    """Runs cmd, sampling the peak resident set (VmHWM) of that process alone."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    return peak / 1024.0, proc.returncode


def layer_env(layer_dir):
    venv = layer_dir / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def warm_slot(cache, base_commit):
    """The warm instance (tree, layer, metadata) of base_commit used last."""
    best = None
    for meta_path in Path(cache, "instances").glob("*/*/warm.json"):
        meta = json.loads(meta_path.read_text())
        if meta["base_commit"] == base_commit and (best is None or meta["last_used_unix"] >= best[0]["last_used_unix"]):
            best = (meta, meta_path.parent)
    if best is None:
        raise SystemExit(f"no warm instance for {base_commit} under {cache}/instances")
    return best[0], best[1] / "tree", best[1] / "layer"


def bare_seconds(cmd, cwd, env):
    started = time.monotonic()
    subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def example_dataset(tmp, copies=10):
    row = json.loads((ROOT / "examples/tasks/tasks.jsonl").read_text().splitlines()[0])
    path = tmp / "tasks.jsonl"
    ids = []
    with path.open("w") as f:
        for i in range(copies):
            r = dict(row, instance_id=f"bench__copy-{i}")
            ids.append(r["instance_id"])
            f.write(json.dumps(r) + "\n")
    shutil.copy(ROOT / "examples/tasks/python_specs.json", tmp / "python_specs.json")
    return path, ids


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset")
    ap.add_argument("--instances", default="")
    ap.add_argument("--repos")
    ap.add_argument("--specs")
    ap.add_argument("--ponder", default=str(ROOT / "target/release/ponder"))
    ap.add_argument("--cache", default=os.environ.get("PONDER_CACHE", str(Path.home() / ".cache/ponder")))
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if not Path(args.ponder).exists():
        run(["cargo", "build", "--release", "-p", "ponder-cli"], cwd=ROOT)

    tmp = Path(tempfile.mkdtemp(prefix="ponder-bench-", dir=ROOT / "target"))
    if args.dataset:
        dataset = Path(args.dataset)
        instances = [i for i in args.instances.split(",") if i]
    else:
        dataset, instances = example_dataset(tmp)
    rows = {}
    for line in dataset.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["instance_id"]] = r
    specs_path = Path(args.specs) if args.specs else dataset.parent / "python_specs.json"
    specs = json.loads(specs_path.read_text())

    # 1. Build the environments and warm instances (and check the instances resolve at all).
    #    The test-run cache is off, or a cached run would skip building the warm instance.
    warm = tmp / "warm"
    run(ponder_eval(args, dataset, instances, warm, 2, ["--no-cache"]))
    results = {p.parent.name: json.loads(p.read_text()) for p in warm.glob("*/result.json")}
    usable = [i for i, r in results.items() if r["outcome"] in ("resolved", "unresolved")]

    # 2. Measured run, one worker, cache off, on the warm instances run 1 left.
    measured = tmp / "measured"
    run(ponder_eval(args, dataset, usable, measured, 1, ["--no-cache"]))
    print(f"{'instance':<42} {'ponder s':>9} {'bare s':>8} {'ratio':>6}  (setup, tests, overhead in ponder)  warm build s, MB")
    ratios = []
    for iid in sorted(usable):
        r = json.loads((measured / iid / "result.json").read_text())
        row = rows[iid]
        spec = specs[row["repo"]][row["version"]]
        meta, checkout, layer = warm_slot(args.cache, row["base_commit"])
        env = layer_env(layer)
        test_cmd = None
        script = row.get("eval_script") or ""
        lines = script.splitlines()
        if ": '>>>>> Start Test Output'" in lines:
            start = lines.index(": '>>>>> Start Test Output'")
            test_cmd = lines[start + 1]
        if not test_cmd:
            files = [l.split(" b/", 1)[1] for l in row["test_patch"].splitlines() if l.startswith("diff --git a/")]
            test_cmd = " ".join([spec["test_cmd"], *files])
        bare = bare_seconds(spec.get("install", "true").replace("/testbed", "."), checkout, env)
        bare += bare_seconds(test_cmd, checkout, env)
        total = r["total_seconds"]
        ratio = total / bare if bare > 0 else float("nan")
        ratios.append(ratio)
        overhead = total - r["setup_seconds"] - r["test_seconds"]
        print(f"{iid:<42} {total:9.2f} {bare:8.2f} {ratio:6.2f}  ({r['setup_seconds']:.2f}, {r['test_seconds']:.2f}, {overhead:.2f})"
              f"  {meta['built_secs']:.1f}, {meta['bytes'] / 1e6:.0f}")
    if ratios:
        print(f"median ratio ponder / bare over {len(ratios)} instances: {statistics.median(ratios):.3f} (goal <= 1.1)")

    # 3. Environment builds.
    listing = subprocess.run([args.ponder, "env", "list", "--json", "--cache-dir", args.cache],
                             check=True, capture_output=True, text=True).stdout
    by_hash = {}
    for r in results.values():
        if r.get("env_hash"):
            by_hash.setdefault(r["env_hash"], set()).add(f"{r['repo']} {r['version']}")
    print(f"\n{'environment':<36} {'python':>7} {'build s':>8} {'size MB':>8}")
    for line in listing.splitlines():
        e = json.loads(line)
        if e["hash"] in by_hash:
            print(f"{', '.join(sorted(by_hash[e['hash']])):<36} {e.get('python') or '?':>7} "
                  f"{e.get('build_secs') or 0:8.1f} {e['size_bytes'] / 1e6:8.1f}")

    # 4. Peak memory of ponder itself with 4 workers.
    if not args.skip_memory:
        peak, code = peak_rss_of(ponder_eval(args, dataset, usable, tmp / "memory", 4, ["--no-cache"]))
        print(f"\npeak RSS of the ponder process, 4 workers, {len(usable)} instances: {peak:.1f} MiB (exit {code})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
