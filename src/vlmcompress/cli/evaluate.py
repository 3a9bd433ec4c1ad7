"""``vlmcompress evaluate``: accuracy, size, memory and latency of one model."""

from __future__ import annotations

import argparse
import json
import os

from ..report import EVAL_BATCH_SIZE, LATENCY_BATCH_SIZE, LATENCY_REPEATS
from ._args import _add_common, _add_eval_set_args, _nonnegative_int, _positive_int
from ._common import _check_local_model, _eval_plan, _set_verbosity


def add_parser(sub) -> None:
    """Register ``evaluate``."""
    ev = sub.add_parser(
        "evaluate",
        help="measure zero-shot accuracy, recall@k, size, memory and latency of a model",
        description="Measure a CLIP, SigLIP or BLIP model on your evaluation set with CLIP_benchmark's protocols: "
        "zero-shot top-1/top-5 accuracy and mean per-class recall (class names from the ClassLabel, prompt ensembling "
        "over --templates), image->text and text->image recall@1/5/10 (ground truth by image, several captions per "
        "image), or for a captioner (BLIP) BLEU-4 and ROUGE-L of its greedy captions; on the embedded benchmark, "
        "100-way accuracy on seen and held-out numbers. Also parameters, bytes on disk, memory footprint and latency "
        "(median of timed batches after warm-up). Prints a table; --output writes JSON.",
        epilog="examples:\n  vlmcompress evaluate                                   # the embedded teacher and benchmark\n"
        "  vlmcompress evaluate outputs/heads25 --eval-dataset photos/ --templates openai_imagenet\n"
        "  vlmcompress evaluate my-clip --eval-dataset captions.csv --eval-task retrieval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("model", nargs="?", default=None,
                    help="save_pretrained folder or Hub id (default: the embedded teacher)")
    ev.add_argument("--output", "-o", help="write the metrics as JSON to this file (checked before the evaluation)")
    _add_eval_set_args(ev, aliases=True)
    ev.add_argument("--batch-size", type=_positive_int, default=EVAL_BATCH_SIZE,
                    help=f"batch size for encoding (default {EVAL_BATCH_SIZE})")
    ev.add_argument("--latency-batch-size", type=_positive_int, default=LATENCY_BATCH_SIZE,
                    help=f"batch size of the timed forward (default {LATENCY_BATCH_SIZE})")
    ev.add_argument("--latency-repeats", type=_nonnegative_int, default=LATENCY_REPEATS,
                    help=f"timed batches after 2 warm-up ones (default {LATENCY_REPEATS}; 0: no latency)")
    ev.add_argument("--threads", type=_nonnegative_int, default=0, help="torch threads (default: torch's choice)")
    ev.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code")
    _add_common(ev)
    ev.set_defaults(func=cmd_evaluate)


def _check_output_file(path):
    """``evaluate --output FILE``: checked before the evaluation, so a bad path costs no work."""
    from pathlib import Path

    from ..errors import VlmcompressError

    target = Path(path).expanduser()
    if not str(path).strip():
        raise VlmcompressError("--output is empty: name a JSON file, e.g. --output metrics.json")
    if target.is_dir():
        raise VlmcompressError(f"--output {path} is a folder: name a JSON file, e.g. {Path(path) / 'metrics.json'}")
    parent = target.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VlmcompressError(f"cannot write --output {path}: permission denied in {parent}")


def cmd_evaluate(args):
    _set_verbosity(args)
    if args.output:
        _check_output_file(args.output)
    _check_local_model(args.model)  # both before torch is imported
    from ..evaluation import evaluate_model
    from ..io import atomic_write_text
    from ..loading import load_checkpoint
    from ..report import format_metrics_table

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    eval_kwargs = _eval_plan(args)  # the evaluation set is opened (and checked) before the model is loaded
    model, processor, path = load_checkpoint(args.model, trust_remote_code=args.trust_remote_code)
    metrics = evaluate_model(model, processor, model_path=path, batch_size=args.batch_size,
                             latency_repeats=args.latency_repeats, **eval_kwargs)
    metrics["model"] = path
    print(format_metrics_table({os.path.basename(str(path).rstrip("/")) or str(path): metrics}))
    if args.output:
        atomic_write_text(args.output, json.dumps(metrics, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0
