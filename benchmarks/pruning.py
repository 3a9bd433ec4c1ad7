#!/usr/bin/env python
"""Accuracy, size and latency of one-shot pruned variants of a model, side by side in one run.

    python benchmarks/pruning.py                       # the embedded teacher, embedded test split
    python benchmarks/pruning.py --images-per-number 20 --threads 2 --json outputs/bench_pruning.json

Every variant is measured in the same process right after the base model, so ratios are comparable on a noisy
machine. Latency: median of timed image+text forwards at --latency-batch-size, fp32, on CPU, after warm-up.
"""

from __future__ import annotations

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402

import torch  # noqa: E402

from vlmcompress.evaluation import evaluate_model  # noqa: E402
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
    parser.add_argument("model", nargs="?", default=None)
    parser.add_argument("--images-per-number", type=int, default=100)
    parser.add_argument("--latency-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base, processor, path = load_checkpoint(args.model)
    kw = dict(images_per_number=args.images_per_number, latency_batch_size=args.latency_batch_size)
    rows = {"base": evaluate_model(base, processor, model_path=path, **kw)}
    for name, config in VARIANTS.items():
        model = copy.deepcopy(base)
        prune_model(model, config, processor)
        rows[name] = evaluate_model(model, processor, **kw)
    b = rows["base"]
    print(f"model: {path}; CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, fp32, "
          f"latency batch {args.latency_batch_size}, {b['eval_images']} test images; no recovery training")
    header = f"{'variant':30s} {'params':>10s} {'MiB':>7s} {'lat ms':>8s} {'x base':>7s} {'seen':>7s} {'held-out':>9s}"
    print(header)
    print("-" * len(header))
    for name, m in rows.items():
        print(f"{name:30s} {m['params']:>10,d} {m['size_bytes'] / 2**20:>7.2f} {m['latency_ms']:>8.2f} "
              f"{m['latency_ms'] / b['latency_ms']:>7.2f} {100 * m['zero_shot_accuracy']:>6.1f}% "
              f"{100 * m['zero_shot_accuracy_heldout']:>8.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
