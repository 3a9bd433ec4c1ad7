#!/usr/bin/env python
"""Run a recipe file (prune -> distill -> quantize -> export -> card -> push), each stage in its own folder.

    accelerate launch recipes/compress.py --recipe recipes/clip_small.yaml
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \\
        recipes/compress.py --recipe recipes/clip_small.yaml      # two processes: distillation stages run on both
    python recipes/compress.py --recipe recipes/clip_small.yaml --from-stage 2

The same run as ``vlmcompress compress RECIPE``. Distillation stages run under accelerate exactly as
``recipes/distill_clip.py`` does; the other stages run on the main process while the others wait.
"""

import argparse
import sys

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # a training process: spin OpenMP threads (before torch is imported)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, help="recipe file (YAML or JSON)")
    parser.add_argument("--from-stage", type=int, help="rerun from this stage (1-based) even if complete")
    parser.add_argument("--output-dir", help="replace the recipe's output_dir")
    args = parser.parse_args(argv)
    from vlmcompress.errors import VlmcompressError
    from vlmcompress.workflows.compress import run_recipe

    try:
        run_recipe(args.recipe, from_stage=args.from_stage, output_dir=args.output_dir)
    except VlmcompressError as exc:
        print(f"compress: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
