"""Distilling from streamed shards and a teacher store: training throughput and resident memory.

    .venv/bin/python benchmarks/streaming.py --json benchmarks/results/streaming.json
    .venv/bin/python benchmarks/streaming.py --quick        # a test of the script (tiny sets, few steps)

Each row is one ``vlmcompress distill`` process (the default inherited student of the embedded CLIP teacher, the same
seed, batch and steps, no evaluation), run one after another on this machine:

- **throughput**: the embedded split map-style with the in-memory teacher cache (the default path), the same split as
  WebDataset shards streamed with the teacher run on the fly, and streamed with a teacher store (fp16, written first
  by ``vlmcompress cache-teacher``; its writing time is its own row). Samples/s = steps x batch / the Trainer's
  train_runtime. The three rows are timed in interleaved rounds (5; the order reversed every other round): a row shows
  its median, and the store's target is the median of its per-round ratios to map-style, with their range as the
  noise (one run per row could not tell 0.93x from 1x).
- **memory**: streamed shards with the store, one pass over the set, for a set of 1x and of 10x the samples: the
  process's peak resident memory (``ru_maxrss``). Flat means the 10x row's peak is within 10% of the 1x row's.

Training processes run with OMP_WAIT_POLICY=ACTIVE (as ``vlmcompress distill`` sets itself). Figures are from one run
on one machine: compare rows within the page. Writes the JSON (``--json``) that ``render_pages.py`` renders.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
            quality_steps=200, seeds=(42, 43, 44), eval_images_per_number=100, rounds=5)
QUICK = dict(images_per_number=2, tenfold=20, samples_per_shard=60, steps=2, batch=16, threads=1,
             quality_steps=2, seeds=(42, 43), eval_images_per_number=1, rounds=2)
#: the throughput rows, timed in interleaved rounds (the order reversed every other round, so a machine that speeds
#: up or slows down over the run favours no row): name -> the distill options beyond the common ones
THROUGHPUT = {
    "map-style, in-memory teacher cache": lambda s, tmp: ["--train_images_per_number", str(s["images_per_number"])],
    "streamed shards, teacher on the fly": lambda s, tmp: ["--dataset_name", str(tmp / "shards-1x")],
    "streamed shards + teacher store": lambda s, tmp: ["--dataset_name", str(tmp / "shards-1x"),
                                                       "--teacher_store", str(tmp / "store-1x")],
}


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


def distill_row(name: str, extra: list, out: Path, s: dict, steps: int, evaluate: bool = False, tag: str = "") -> dict:
    folder = out / (name.replace(" ", "-").replace(",", "") + tag)
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


def throughput_rows(s: dict, tmp: Path) -> list[dict]:
    """Each throughput row run ``s["rounds"]`` times, the rows taking turns (ABC, CBA, ABC, ...): a row's figures are
    the median over its rounds, and ``rounds`` keeps each round's samples/s for the per-round ratios."""
    names = list(THROUGHPUT)
    runs = {name: [] for name in names}
    for r in range(s["rounds"]):
        print(f"throughput round {r + 1}/{s['rounds']}", flush=True)
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(distill_row(name, THROUGHPUT[name](s, tmp), tmp, s, s["steps"], tag=f"-round{r + 1}"))
    rows = []
    for name in names:
        median = statistics.median(run["samples_per_s"] for run in runs[name])
        middle = min(runs[name], key=lambda run: abs(run["samples_per_s"] - median))
        rows.append({**middle, "samples_per_s": median, "rounds": [run["samples_per_s"] for run in runs[name]],
                     "peak_rss_mib": max(run["peak_rss_mib"] for run in runs[name])})
    return rows


def round_ratios(row: dict, base: dict) -> list[float]:
    """Per-round samples/s of ``row`` over ``base`` (the same round: the two ran one after the other)."""
    return [a / b for a, b in zip(row["rounds"], base["rounds"])]


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
            rows += throughput_rows(s, tmp)
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
    ratios = round_ratios(store, cache)
    ratio = statistics.median(ratios)
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
            {"target": "teacher store: samples/s >= the in-memory cache's (the median of the per-round ratios; the "
                       "rounds' range is the noise)", "measured": ratio,
             "shown": f"{ratio:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} rounds)"
                      + ("; 1x is within the rounds' range" if min(ratios) <= 1 <= max(ratios) else ""),
             "met": None if args.quick else ratio >= 1},
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
