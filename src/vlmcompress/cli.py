"""``vlmcompress`` command line. Each subcommand is a thin layer over a library function."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # see FACTS: sleeping torch threads cost ~3.5 ms per op

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def _quiet_transformers():
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*torchvision.*")


def _load_dataset(args):
    if not args.dataset:
        return None
    import datasets

    from .errors import VlmcompressError

    try:
        if os.path.isdir(args.dataset):
            ds = datasets.load_from_disk(args.dataset)
        else:
            ds = datasets.load_dataset(args.dataset, split=args.split)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line
        raise VlmcompressError(f"cannot load data set {args.dataset!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if isinstance(ds, datasets.DatasetDict):
        if args.split not in ds:
            raise VlmcompressError(f"data set {args.dataset!r} has no split {args.split!r} (it has {', '.join(ds)})")
        ds = ds[args.split]
    return ds


def cmd_evaluate(args):
    from .evaluation import check_dataset, evaluate_model
    from .io import atomic_write_text
    from .loading import load_model
    from .report import format_metrics_table

    _quiet_transformers()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    dataset = _load_dataset(args)
    if dataset is not None:
        check_dataset(dataset, args.image_column, args.text_column, args.label_column)
    model, processor, path = load_model(args.model, trust_remote_code=args.trust_remote_code)
    metrics = evaluate_model(
        model,
        processor,
        dataset,
        images_per_number=args.images_per_number,
        model_path=path,
        image_column=args.image_column,
        text_column=args.text_column,
        label_column=args.label_column,
        batch_size=args.batch_size,
        latency_batch_size=args.latency_batch_size,
        latency_repeats=args.latency_repeats,
    )
    metrics["model"] = path
    print(format_metrics_table({os.path.basename(str(path).rstrip("/")) or str(path): metrics}))
    if args.output:
        atomic_write_text(args.output, json.dumps(metrics, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmcompress",
        description="Prune, quantize and distill CLIP-like models; every command defaults to the embedded teacher "
        "and the embedded digits benchmark, so it runs offline.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ev = sub.add_parser(
        "evaluate",
        help="measure zero-shot accuracy, recall@k, size, memory and latency of a model",
        description="Measure a CLIP-like model: 100-way zero-shot accuracy with prompt ensembling (seen and held-out "
        "numbers separately), image->text and text->image recall@1/@5, parameters, bytes on disk, memory "
        "footprint and latency (median of timed batches after warm-up). Prints a table; --output writes JSON.",
    )
    ev.add_argument("model", nargs="?", default=None,
                    help="save_pretrained folder or Hub id (default: the embedded teacher)")
    ev.add_argument("--output", "-o", help="write the metrics as JSON to this file")
    ev.add_argument("--dataset", help="a datasets.save_to_disk folder or Hub data set with image/text/label columns "
                    "(default: the embedded digits test split)")
    ev.add_argument("--split", default="test", help="split of --dataset (default: test)")
    ev.add_argument("--image-column", default="image")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--label-column", default="label")
    ev.add_argument("--images-per-number", type=int, default=None,
                    help="embedded data only: test images per number (default 100, the full test split)")
    ev.add_argument("--batch-size", type=int, default=256, help="batch size for encoding (default 256)")
    ev.add_argument("--latency-batch-size", type=int, default=32, help="batch size of the timed forward (default 32)")
    ev.add_argument("--latency-repeats", type=int, default=7, help="timed batches after 2 warm-up ones (default 7)")
    ev.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ev.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code")
    ev.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .errors import VlmcompressError
    from .report import ReportError

    try:
        return args.func(args) or 0
    except (VlmcompressError, ReportError, FileNotFoundError, FileExistsError) as exc:
        if args.debug:
            raise
        print(f"vlmcompress {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
