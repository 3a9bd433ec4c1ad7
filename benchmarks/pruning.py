#!/usr/bin/env python
"""Accuracy, size and latency of one-shot pruned variants of a model, side by side in one run.

    python benchmarks/pruning.py                       # the embedded teacher, embedded test split
    python benchmarks/pruning.py --images-per-number 20 --threads 2 --json benchmarks/results/pruning.json

Accuracy and size: ``evaluate_model`` on each variant right after pruning (no recovery training). Latency: the base
model and every variant take turns over --latency-rounds interleaved rounds (``interleaved_latency``: each turn the
median of timed image+text forwards at --latency-batch-size, fp32, on CPU, after warm-up), so load from other
processes on a shared machine hits all of them alike; ``x base`` is the median over rounds of the per-round ratio to
the base model. Each variant's single-run figure from ``evaluate_model`` is kept as ``latency_ms_single_run``.
``--json`` also records ``environment`` (``vlmcompress.report.environment()``), ``settings`` and each variant's
``PruningConfig.to_dict()``. Refuses to run with OMP_WAIT_POLICY=ACTIVE.
"""

from __future__ import annotations

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import environment, hardware, refuse_active_wait_policy
else:  # run as a script: its folder is first on sys.path
    from _common import environment, hardware, refuse_active_wait_policy

from vlmcompress.evaluation import evaluate_model  # noqa: E402
from vlmcompress.evaluation.harness import interleaved_latency  # noqa: E402
from vlmcompress.loading import load_checkpoint  # noqa: E402
from vlmcompress.pruning.config import PruningConfig, prune_model  # noqa: E402

VARIANTS = {
    "heads -25% (taylor)": PruningConfig(head_ratio=0.25, importance="taylor"),
    "heads -50% (taylor)": PruningConfig(head_ratio=0.5, importance="taylor"),
    "heads -50% (magnitude)": PruningConfig(head_ratio=0.5, importance="magnitude"),
    "heads -50% (random)": PruningConfig(head_ratio=0.5, importance="random"),
    "mlp -50% (taylor)": PruningConfig(mlp_ratio=0.5, importance="taylor"),
    "layers keep 0,2": PruningConfig(layer_strategy="every_k", keep_every=2),
    "layers -1 (block influence)": PruningConfig(layer_strategy="block_influence", remove_layers={"vision": 1, "text": 1}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=None, help="default: the embedded teacher")
    parser.add_argument("--images-per-number", type=int, default=100, help="test images per number (100 numbers)")
    parser.add_argument("--latency-batch-size", type=int, default=32)
    parser.add_argument("--latency-rounds", type=int, default=5, help="interleaved rounds (base included)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="also write the rows, environment and settings as JSON")
    args = parser.parse_args()
    refuse_active_wait_policy("benchmarks/pruning.py")
    if args.threads:
        torch.set_num_threads(args.threads)
    base, processor, path = load_checkpoint(args.model)
    kw = dict(images_per_number=args.images_per_number, latency_batch_size=args.latency_batch_size)
    rows = {"base": evaluate_model(base, processor, model_path=path, **kw)}
    models, configs = {"base": base}, {"base": None}
    for name, config in VARIANTS.items():
        model = copy.deepcopy(base)
        prune_model(model, config, processor)
        rows[name] = evaluate_model(model, processor, **kw)
        models[name], configs[name] = model, config.to_dict()
    medians, per_round = interleaved_latency(models, processor, args.latency_batch_size, args.latency_rounds)
    for name, m in rows.items():
        ratios = [t / b for t, b in zip(per_round[name], per_round["base"])]
        m["latency_ms_single_run"] = m["latency_ms"]
        m["latency_ms"] = medians[name]
        m["latency_rounds"] = per_round[name]
        m["latency_vs_base"] = {"ratio": statistics.median(ratios), "ratio_min": min(ratios),
                                "ratio_max": max(ratios), "rounds": len(ratios)}
        m["pruning_config"] = configs[name]
    b = rows["base"]
    model_label = "embedded teacher" if args.model is None else str(path)
    settings = {"model": model_label, "images_per_number": args.images_per_number, "eval_images": b["eval_images"],
                "threads": torch.get_num_threads(), "latency_batch_size": args.latency_batch_size,
                "latency_rounds": args.latency_rounds, "latency_repeats": b["latency_repeats"], "dtype": "float32",
                "hardware": hardware(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "recovery_training": "none (one-shot pruning)"}
    print(f"model: {model_label}; {hardware()}, {torch.get_num_threads()} threads, fp32, latency batch "
          f"{args.latency_batch_size} (image+text forward; median over {args.latency_rounds} interleaved rounds of "
          f"the median of {b['latency_repeats']}), {b['eval_images']} test images; no recovery training; torch "
          f"{torch.__version__}")
    header = (f"{'variant':30s} {'params':>10s} {'MiB':>7s} {'lat ms':>8s} {'x base':>7s} {'(min-max)':>11s} "
              f"{'single':>8s} {'seen':>7s} {'held-out':>9s}")
    print(header)
    print("-" * len(header))
    for name, m in rows.items():
        r = m["latency_vs_base"]
        print(f"{name:30s} {m['params']:>10,d} {m['size_bytes'] / 2**20:>7.2f} {m['latency_ms']:>8.2f} "
              f"{r['ratio']:>7.2f} {r['ratio_min']:>5.2f}-{r['ratio_max']:<5.2f} {m['latency_ms_single_run']:>8.2f} "
              f"{100 * m['zero_shot_accuracy']:>6.1f}% {100 * m['zero_shot_accuracy_heldout']:>8.1f}%")
    print("lat ms: median over interleaved rounds; x base: median (min-max) over rounds of the per-round ratio to "
          "base; single: the variant's own evaluate_model run")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        data = {"model": model_label, "environment": environment(), "settings": settings, **rows}
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
