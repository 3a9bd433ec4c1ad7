"""``vlmcompress quantize``: bitsandbytes 8-bit or 4-bit of a model's Linears into a checkpoint that reloads."""

from __future__ import annotations

import argparse

from ..quantization.config import COMPUTE_DTYPES, DEVICES, QUANT_TYPES, QuantizationConfig as Q
from ._args import _add_eval_and_loading, _add_model_and_output, _names
from ._common import _check_local_model, _eval_plan, _print_finished, _set_verbosity, _stage_kwargs


def add_parser(sub) -> None:
    """Register ``quantize``."""
    qu = sub.add_parser(
        "quantize",
        help="bitsandbytes 8-bit (LLM.int8) or 4-bit (nf4/fp4) quantization; save a checkpoint that reloads",
        description="Quantize a CLIP, SigLIP or BLIP model's Linear layers with bitsandbytes through transformers' "
        "BitsAndBytesConfig and save it with its processor, compression_report.json (metrics before and after) and "
        "quantization_config.json. config.json names every Linear kept in full precision (the family's projection "
        "heads, towers not asked for, --skip), so CLIPModel.from_pretrained(path) reloads it as it was.",
        epilog="examples:\n  vlmcompress quantize --bits 8 --output-dir outputs/int8\n"
        "  vlmcompress quantize --bits 4 --quant-type nf4 --double-quant -o outputs/nf4\n"
        "  vlmcompress quantize outputs/heads25 --bits 4 --towers vision --skip fc2 -o outputs/heads25-nf4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_and_output(qu, "quantized")
    qu.add_argument("--bits", type=int, required=True, choices=[4, 8], help="8 (LLM.int8) or 4 (nf4/fp4)")
    qu.add_argument("--quant-type", choices=QUANT_TYPES,
                    help=f"4-bit data type: {' or '.join(QUANT_TYPES)} (default {QUANT_TYPES[0]})")
    qu.add_argument("--double-quant", action="store_true", help="4-bit: quantize the block scales too")
    qu.add_argument("--compute-dtype", default=Q.compute_dtype, choices=COMPUTE_DTYPES,
                    help=f"4-bit matmul dtype (default {Q.compute_dtype})")
    qu.add_argument("--dtype", choices=COMPUTE_DTYPES, default=Q.dtype,
                    help="dtype of what stays unquantized: embeddings, LayerNorms, the Linears kept in full precision "
                    "(default: the model's); bfloat16 halves their bytes, most of a small 4-bit checkpoint")
    qu.add_argument("--towers", type=_names, action="extend", default=None,
                    help="comma-separated towers to quantize: vision, text, text_decoder (default: every tower the "
                    "model has)")
    qu.add_argument("--skip", nargs="+", action="extend", metavar="MODULE",
                    help="more Linears to keep in full precision: name prefix, regex or suffix (e.g. fc2, "
                    "vision_model.encoder.layers.0); each must match a Linear")
    qu.add_argument("--no-default-skip", action="store_true",
                    help="quantize the layers the family keeps in full precision by default too (CLIP's projections, "
                    "BLIP's projection and ITM heads): smaller, at some accuracy")
    qu.add_argument("--device", default=Q.device, choices=DEVICES, help=f"{', '.join(DEVICES)} (default {Q.device})")
    _add_eval_and_loading(qu)
    qu.set_defaults(func=cmd_quantize)


def quantization_config(args):
    """The QuantizationConfig a parsed ``quantize`` command line runs."""
    from ..quantization import QuantizationConfig

    return QuantizationConfig(bits=args.bits, quant_type=args.quant_type, double_quant=args.double_quant,
                              compute_dtype=args.compute_dtype, dtype=args.dtype, towers=args.towers,
                              skip=list(args.skip or []), default_skip=not args.no_default_skip, device=args.device)


def cmd_quantize(args):
    from ..io import check_output_dir

    _set_verbosity(args)
    check_output_dir(args.output_dir, overwrite=args.overwrite)
    _check_local_model(args.model)  # both before torch is imported
    from ..evaluation import evaluate_model
    from ..loading import load_checkpoint
    from ..quantization import ensure_not_quantized, plan_skips, require_bitsandbytes
    from ..workflows.stages import quantize_stage

    config = quantization_config(args)
    require_bitsandbytes()
    eval_kwargs = None if args.no_eval else _eval_plan(args)
    model, processor, path = load_checkpoint(args.model, trust_remote_code=args.trust_remote_code,
                                             torch_for="quantization")
    ensure_not_quantized(model)
    plan_skips(model, config)  # a --skip that matches nothing fails before the evaluation
    before = None if args.no_eval else evaluate_model(model, processor, model_path=path, **eval_kwargs)
    report = quantize_stage(model, processor, args.output_dir, config,
                            **_stage_kwargs(args, processor, path, before, eval_kwargs))
    _print_finished(args, before, report)
    return 0
