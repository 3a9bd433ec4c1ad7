"""The shipped recipes over seeds: what `vlmcompress compress recipes/NAME.yaml` keeps, run as a user runs it.

    .venv/bin/python benchmarks/recipes.py --recipes clip_small clip_budget --json benchmarks/results/recipes.json
    .venv/bin/python benchmarks/recipes.py --quick               # a test of the script (tiny sets, 2 steps)

Each run is the recipe file as committed, with only the distill stages' ``seed`` set (the seed sets the training data
order and the dropout; pruning, planning and quantization do not draw), one ``vlmcompress compress`` process per run,
one run after another. The final stage's report gives seen and held-out accuracy and bytes; the first stage's report
gives the teacher's. Rows are kept in ``--work``: a rerun with the same work folder skips the stages that finished
(the pipeline's own resume), so seeds can be added later.

Headline figures are the mean and sd over the seeds. Each run's wall seconds include evaluating every stage and the
side-by-side latency of each stage's checkpoint. Writes the JSON (``--json``) that ``render_pages.py`` renders.
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
ROOT = HERE.parent

if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import environment, hardware
else:  # run as a script: its folder is first on sys.path
    from _common import environment, hardware

SEEDS = (42, 43, 44)
#: --quick: the recipe shrunk to a test of the script (tiny sets, 2 steps): the figures mean nothing
QUICK_DATA = {"images_per_number": 1, "train_images_per_number": 2}
QUICK_STAGE = {"distill": {"max_steps": 2, "per_device_train_batch_size": 8, "logging_steps": 1}}
QUICK_EVAL = {"latency_rounds": 1, "latency_batch_size": 4}


def seeded(recipe: dict, seed: int, *, quick: bool = False) -> dict:
    """The recipe a run executes: the committed one, its distill stages' seed set (and shrunk with ``quick``)."""
    out = json.loads(json.dumps(recipe))
    for stage in out["stages"]:
        (kind, options), = stage.items()
        options = dict(options or {})
        if kind == "distill":
            options["seed"] = seed
        if quick:
            options.update(QUICK_STAGE.get(kind, {}))
        stage[kind] = options
    if quick:
        out["data"] = {**(out.get("data") or {}), **QUICK_DATA}
        out["eval"] = {**(out.get("eval") or {}), **QUICK_EVAL}
    return out


def _stage_summary(folder: Path, report: dict) -> dict:
    from vlmcompress.workflows.compress import STAGE_FILE

    stage_file = json.loads((folder / STAGE_FILE).read_text()) if (folder / STAGE_FILE).is_file() else {}
    return {"stage": folder.name, "seconds": stage_file.get("seconds"),
            "effective": report.get("effective_settings"), "after": report.get("after") or {}}


def run_one(name: str, seed: int, work: Path, *, quick: bool) -> dict:
    """One recipe run in its own process; its stages' reports summarised."""
    import yaml

    source = ROOT / "recipes" / f"{name}.yaml"
    recipe = yaml.safe_load(source.read_text())
    run = seeded(recipe, seed, quick=quick)
    out = work / f"{name}-seed{seed}"
    run["output_dir"] = str(out)
    path = work / f"{name}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(run, sort_keys=False))
    print(f"$ vlmcompress compress recipes/{name}.yaml (distill seed {seed}) -> {out}", flush=True)
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)  # the command sets it for its training processes only
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "vlmcompress", "compress", str(path)], env=env)
    if r.returncode != 0:
        raise SystemExit(f"benchmarks/recipes.py: recipes/{name}.yaml (seed {seed}) failed (exit {r.returncode}); "
                         f"its stages so far are in {out}: rerun to resume")
    reports = [(d, json.loads((d / "compression_report.json").read_text())) for d in sorted(out.iterdir())
               if d.is_dir() and (d / "compression_report.json").is_file()]
    stages = [_stage_summary(d, report) for d, report in reports]
    teacher = reports[0][1].get("before") or {}  # the first stage measured the teacher
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None  # > cores: something ran beside it
    return {"recipe": name, "seed": seed, "stages_run": run["stages"], "process_s": round(time.time() - t0, 1),
            "load_average": load, "teacher": teacher, "stages": stages}


def _mean_sd(values: list) -> list:
    values = [v for v in values if v is not None]
    if not values:
        return [None, None]
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def summarise(runs: list) -> dict:
    """Per recipe: the final checkpoint's seen / held-out accuracy and bytes, mean and sd over its seeds, and the
    share of the teacher's figures kept."""
    out = {}
    for name in dict.fromkeys(r["recipe"] for r in runs):
        rows = [r for r in runs if r["recipe"] == name]
        finals = [r["stages"][-1]["after"] for r in rows]
        teacher = rows[0]["teacher"]
        seen = _mean_sd([f.get("zero_shot_accuracy") for f in finals])
        held = _mean_sd([f.get("zero_shot_accuracy_heldout") for f in finals])
        size = _mean_sd([f.get("size_bytes") for f in finals])
        wall = _mean_sd([sum(s["seconds"] or 0 for s in r["stages"]) for r in rows])

        def kept(value, key):
            base = teacher.get(key)
            return None if value is None or not base else value / base

        out[name] = {"seeds": [r["seed"] for r in rows], "seen": seen, "heldout": held, "size_bytes": size,
                     "stage_seconds": wall, "teacher_seen": teacher.get("zero_shot_accuracy"),
                     "teacher_heldout": teacher.get("zero_shot_accuracy_heldout"),
                     "teacher_size_bytes": teacher.get("size_bytes"),
                     "kept_seen": kept(seen[0], "zero_shot_accuracy"),
                     "kept_heldout": kept(held[0], "zero_shot_accuracy_heldout"),
                     "size_share": kept(size[0], "size_bytes")}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["clip_small", "clip_budget"],
                        help="names of recipes/NAME.yaml to run (default: clip_small clip_budget)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="distill seeds (default: 42 43 44)")
    parser.add_argument("--work", help="folder for the runs (kept; a rerun resumes from it); default: a temp folder")
    parser.add_argument("--json", help="write the results here (benchmarks/results/recipes.json for the page)")
    parser.add_argument("--quick", action="store_true", help="a test of the script: tiny sets and 2 distill steps")
    args = parser.parse_args(argv)
    missing = [n for n in args.recipes if not (ROOT / "recipes" / f"{n}.yaml").is_file()]
    if missing:
        parser.error(f"no recipe recipes/{missing[0]}.yaml: name one of "
                     f"{', '.join(sorted(p.stem for p in (ROOT / 'recipes').glob('*.yaml')))}")
    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vlmc-recipes-")
        work = Path(tmp.name)
    runs = []
    try:
        for name in args.recipes:
            for seed in args.seeds:
                runs.append(run_one(name, seed, work, quick=args.quick))
                data = results(runs, quick=args.quick, seeds=args.seeds)
                if args.json:  # after every run: a long run cut short keeps what it measured (marked partial)
                    write(data, Path(args.json), partial=len(runs) < len(args.recipes) * len(args.seeds))
    finally:
        if tmp is not None:
            tmp.cleanup()
    for name, s in data["summary"].items():
        print(f"{name}: seen {100 * s['seen'][0]:.2f} ± {100 * s['seen'][1]:.2f}, held-out "
              f"{100 * s['heldout'][0]:.2f} ± {100 * s['heldout'][1]:.2f}, {s['size_bytes'][0]:,.0f} bytes", flush=True)
    if args.json:
        print(f"wrote {args.json}")
    return 0


def results(runs: list, *, quick: bool, seeds: list) -> dict:
    env = environment()
    return {"benchmark": "recipes", "quick": quick, "hardware": hardware(), "environment": env,
            "settings": {"threads": env.get("threads"), "seeds": list(seeds)}, "runs": runs,
            "summary": summarise(runs)}


def write(data: dict, path: Path, *, partial: bool) -> None:
    from vlmcompress.io import atomic_write_text

    atomic_write_text(path, json.dumps({**data, "partial": partial}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
