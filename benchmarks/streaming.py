"""Distilling from streamed shards and a teacher store: training throughput and resident memory.

    .venv/bin/python benchmarks/streaming.py --json benchmarks/results/streaming.json
    .venv/bin/python benchmarks/streaming.py --quick        # a test of the script (tiny sets, few steps)

Each row is one ``vlmcompress distill`` process (the default inherited student of the embedded CLIP teacher, the same
seed, batch and steps, no evaluation), run one after another on this machine:

- **throughput**: the embedded split map-style with the in-memory teacher cache (the default path), the same split as
  WebDataset shards streamed with the teacher run on the fly, and streamed with a teacher store (fp16, written first
  by ``vlmcompress cache-teacher``; its writing time is its own row). Samples/s = steps x batch / the Trainer's
  train_runtime.
- **memory**: streamed shards with the store, one pass over the set, for a set of 1x and of 10x the samples: the
  process's peak resident memory (``ru_maxrss``). Flat means the 10x row's peak is within 10% of the 1x row's.

Training processes run with OMP_WAIT_POLICY=ACTIVE (as ``vlmcompress distill`` sets itself). Figures are from one run
on one machine: compare rows within the page. Writes the JSON (``--json``) that ``render_pages.py`` renders.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import environment, hardware
else:  # run as a script: its folder is first on sys.path
    from _common import environment, hardware

CHILD = ("import resource, sys\nfrom vlmcompress.cli import main\nrc = main(sys.argv[1:])\n"
         "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)\nsys.exit(rc)")
FULL = dict(images_per_number=20, tenfold=200, samples_per_shard=300, steps=60, batch=64, threads=2,
            quality_steps=200, seeds=(42, 43, 44), eval_images_per_number=100)
QUICK = dict(images_per_number=2, tenfold=20, samples_per_shard=60, steps=2, batch=16, threads=1,
             quality_steps=2, seeds=(42, 43), eval_images_per_number=1)


def run_cli(argv: list, threads: int) -> tuple[float, int]:
    """(seconds, peak resident KiB) of one vlmcompress command in its own process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), VLMCOMPRESS_NO_PROGRESS="1")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, env=env)
    seconds = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"benchmarks/streaming.py: `vlmcompress {' '.join(argv[:3])} ...` failed:\n{r.stderr[-2000:]}")
    peak = next(int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("MAXRSS_KIB"))
    return seconds, peak


def distill_row(name: str, extra: list, out: Path, s: dict, steps: int, evaluate: bool = False) -> dict:
    folder = out / name.replace(" ", "-").replace(",", "")
    argv = ["distill", "--max_steps", str(steps), "--per_device_train_batch_size", str(s["batch"]),
            "--disable_tqdm", "true", "--logging_steps", str(max(1, steps // 4)), "--save_strategy", "no",
            "--threads", str(s["threads"]), "--output_dir", str(folder), *extra,
            *(["--eval_images_per_number", str(s["eval_images_per_number"]), "--latency_rounds", "1"] if evaluate
              else ["--skip_eval", "true"])]
    seconds, peak = run_cli(argv, s["threads"])
    report = json.loads((folder / "compression_report.json").read_text())
    step = report["steps"][-1]
    runtime = step["training"]["train_runtime_s"]
    print(f"  {name}: {steps * s['batch'] / runtime:.1f} samples/s, peak {peak / 1024:.0f} MiB, {seconds:.0f} s",
          flush=True)
    return {"name": name, "steps": steps, "batch_size": s["batch"], "train_runtime_s": runtime,
            "samples_per_s": steps * s["batch"] / runtime, "peak_rss_mib": peak / 1024, "process_s": seconds,
            "data": step.get("data"), "cache_teacher": step.get("cache_teacher"),
            "accuracy": (report["after"] or {}).get("zero_shot_accuracy"),
            "accuracy_heldout": (report["after"] or {}).get("zero_shot_accuracy_heldout"),
            "final_loss": next((r["loss"] for r in reversed(step["training"]["loss_log"]) if "loss" in r), None)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sets and 2 steps: a test of the script")
    parser.add_argument("--json", help="write the results here (e.g. benchmarks/results/streaming.json)")
    args = parser.parse_args(argv)
    s = dict(QUICK if args.quick else FULL, quick=args.quick)
    from vlmcompress.embedded import digits

    rows, memory, quality = [], [], []
    with tempfile.TemporaryDirectory(prefix="vlmcompress-streaming-") as tmp:
        tmp = Path(tmp)
        one = digits.write_shards(tmp / "shards-1x", images_per_number=s["images_per_number"],
                                  samples_per_shard=s["samples_per_shard"])
        samples = 90 * s["images_per_number"]
        print(f"shards: {samples} samples in {len(one)} shards", flush=True)
        seconds, peak = run_cli(["cache-teacher", "--data", str(tmp / "shards-1x"), "-o", str(tmp / "store-1x")],
                                s["threads"])
        rows.append({"name": "cache-teacher (writes the fp16 store of the 1x shards)", "process_s": seconds,
                     "samples": samples, "samples_per_s": samples / seconds, "peak_rss_mib": peak / 1024})
        print(f"  cache-teacher: {samples / seconds:.1f} samples/s (whole process)", flush=True)
        env_policy = os.environ.get("OMP_WAIT_POLICY")
        os.environ["OMP_WAIT_POLICY"] = "ACTIVE"  # the training processes only; restored below
        try:
            rows.append(distill_row("map-style, in-memory teacher cache",
                                    ["--train_images_per_number", str(s["images_per_number"])], tmp, s, s["steps"]))
            rows.append(distill_row("streamed shards, teacher on the fly", ["--dataset_name", str(tmp / "shards-1x")],
                                    tmp, s, s["steps"]))
            rows.append(distill_row("streamed shards + teacher store", ["--dataset_name", str(tmp / "shards-1x"),
                                                                        "--teacher_store", str(tmp / "store-1x")],
                                    tmp, s, s["steps"]))
            for seed in s["seeds"]:  # the student each way, over seeds: equal within the noise?
                common = ["--seed", str(seed), "--train_images_per_number", str(s["images_per_number"])]
                quality.append({"seed": seed, "way": "map-style", **distill_row(
                    f"quality map-style seed {seed}", common, tmp, s, s["quality_steps"], evaluate=True)})
                quality.append({"seed": seed, "way": "streamed + store", **distill_row(
                    f"quality streamed seed {seed}", [*common, "--dataset_name", str(tmp / "shards-1x"),
                                                      "--teacher_store", str(tmp / "store-1x"),
                                                      "--eval_dataset_name", "vlmcompress/digits-test"],
                    tmp, s, s["quality_steps"], evaluate=True)})
            ten = digits.write_shards(tmp / "shards-10x", images_per_number=s["tenfold"],
                                      samples_per_shard=s["samples_per_shard"])
            run_cli(["cache-teacher", "--data", str(tmp / "shards-10x"), "-o", str(tmp / "store-10x")], s["threads"])
            for label, folder, n in (("1x", "1x", samples), ("10x", "10x", 90 * s["tenfold"])):
                steps = max(1, n // s["batch"])  # one pass over the set
                row = distill_row(f"memory, {label} set ({n} samples, one pass)",
                                  ["--dataset_name", str(tmp / f"shards-{folder}"), "--teacher_store",
                                   str(tmp / f"store-{folder}")], tmp, s, steps)
                memory.append({**row, "samples": n, "shards": len(one) if label == "1x" else len(ten)})
        finally:
            if env_policy is None:
                os.environ.pop("OMP_WAIT_POLICY", None)
            else:
                os.environ["OMP_WAIT_POLICY"] = env_policy
    import statistics

    ways = {}
    for way in ("map-style", "streamed + store"):
        runs = [q for q in quality if q["way"] == way]
        ways[way] = {k: (statistics.mean(r[k] for r in runs), statistics.stdev(r[k] for r in runs))
                     for k in ("accuracy", "accuracy_heldout")}
    # 2 standard errors of the difference of two means over the seeds, from the pooled sd
    bars = {k: 2 * ((ways["map-style"][k][1] ** 2 + ways["streamed + store"][k][1] ** 2) / len(s["seeds"])) ** 0.5
            for k in ("accuracy", "accuracy_heldout")}
    gaps = {k: ways["streamed + store"][k][0] - ways["map-style"][k][0] for k in bars}
    by = {r["name"]: r for r in rows}
    cache, store = by["map-style, in-memory teacher cache"], by["streamed shards + teacher store"]
    growth = memory[1]["peak_rss_mib"] / memory[0]["peak_rss_mib"]
    result = {
        "environment": environment(), "hardware": hardware(), "settings": s,
        "rows": rows, "memory": memory, "quality": quality, "quality_summary": {"ways": ways, "bars": bars, "gaps": gaps},
        "targets": [
            {"target": "streamed shards + teacher store vs map-style with the cache, same steps and seeds: the same "
                       "student within the noise (seen and held-out mean accuracy apart by at most 2 standard errors)",
             "measured": max(abs(gaps[k]) - bars[k] for k in bars),
             "shown": f"seen {100 * gaps['accuracy']:+.1f} points (bar {100 * bars['accuracy']:.1f}), held-out "
                      f"{100 * gaps['accuracy_heldout']:+.1f} (bar {100 * bars['accuracy_heldout']:.1f})",
             "met": None if args.quick else all(abs(gaps[k]) <= bars[k] for k in bars)},
            {"target": "teacher store: samples/s >= the in-memory cache's", "measured": store["samples_per_s"] / cache["samples_per_s"],
             "shown": f"{store['samples_per_s'] / cache['samples_per_s']:.2f}x",
             "met": None if args.quick else store["samples_per_s"] >= cache["samples_per_s"]},
            {"target": "peak resident memory streaming a 10x set within 10% of the 1x set's", "measured": growth,
             "shown": f"{growth:.2f}x",
             "met": None if args.quick else growth <= 1.10},
        ],
    }
    for t in result["targets"]:
        print(f"{t['target']}: {t['shown']}, {t['met']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
