"""``vlmcompress export``: ONNX graphs (optionally ONNX Runtime int8) of a checkpoint."""

from __future__ import annotations

import argparse

from ._args import _add_eval_and_loading, _add_model_and_output
from ._common import _check_local_model, _eval_plan, _set_verbosity


def add_parser(sub) -> None:
    """Register ``export``."""
    ex = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (separate image and text graphs; BLIP captioner: vision encoder and decoder), "
        "optionally ONNX Runtime int8",
        description="Export a CLIP, SigLIP or BLIP checkpoint (stock, pruned with remote code, distilled) to ONNX with "
        "torch.onnx.export (opset 17): image_encoder.onnx and text_encoder.onnx (dynamic batch and sequence axes), or "
        "for a BLIP captioner vision_encoder.onnx and text_decoder.onnx (no KV cache; greedy captioning recomputes "
        "the prefix). --int8 applies ONNX Runtime's dynamic quantization. Each graph is checked against PyTorch; the "
        "folder gets the processor, compression_report.json and a card with the onnxruntime snippet, and "
        "`vlmcompress evaluate FOLDER` measures it through ONNX Runtime.",
        epilog="examples:\n  vlmcompress export outputs/heads25 --format onnx -o outputs/heads25-onnx\n"
        "  vlmcompress export --int8 -o outputs/teacher-onnx-int8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_and_output(ex, "exported")
    ex.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (the only format for now)")
    ex.add_argument("--int8", action="store_true", help="ONNX Runtime dynamic int8 (weights int8, activations at run time)")
    _add_eval_and_loading(ex)
    ex.set_defaults(func=cmd_export)


def cmd_export(args):
    from ..io import check_output_dir

    _set_verbosity(args)
    check_output_dir(args.output_dir, overwrite=args.overwrite)  # before the evaluation set is opened
    _check_local_model(args.model)  # both before torch is imported
    from ..export import export_onnx
    from ..report import format_metrics_table

    eval_kwargs = None if args.no_eval else _eval_plan(args)
    report = export_onnx(args.model, args.output_dir, int8=args.int8, evaluate=not args.no_eval,
                         latency_rounds=args.latency_rounds, overwrite=args.overwrite, eval_kwargs=eval_kwargs)
    step = report["steps"][-1]
    if not args.no_eval:
        print(format_metrics_table({"pytorch": report["before"], "onnxruntime": report["after"]}))
    parity = ", ".join(f"{role} max |diff| {p['max_abs_diff']:.1e}, min cosine {p['min_cosine']:.5f}"
                       for role, p in step["parity"].items())
    print(f"parity against PyTorch: {parity}")
    print(f"wrote {args.output_dir}: {', '.join(g['file'] for g in step['graphs'].values())}"
          f"{' (int8)' if args.int8 else ''}; run them with onnxruntime (the card shows how) or "
          f"`vlmcompress evaluate {args.output_dir}`")
    return 0
