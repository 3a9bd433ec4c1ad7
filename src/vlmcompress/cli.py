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

    from .data.sources import open_dataset
    from .errors import VlmcompressError

    ds = open_dataset(args.dataset, split=args.split)
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


def _tower_lists(items, what):
    """["vision:3,5", "text:1"] -> {"vision": [3, 5], "text": [1]}"""
    from .errors import VlmcompressError

    out = {}
    for item in items or []:
        tower, _, values = item.partition(":")
        try:
            out[tower] = [int(v) for v in values.split(",") if v != ""]
        except ValueError:
            raise VlmcompressError(f"{what} takes TOWER:N,N,... (e.g. vision:3,5), got {item!r}") from None
        if not tower or not out[tower]:
            raise VlmcompressError(f"{what} takes TOWER:N,N,... (e.g. vision:3,5), got {item!r}")
    return out


def _json_arg(value, what):
    from .errors import VlmcompressError

    if value is None:
        return None
    try:
        text = open(value).read() if os.path.isfile(value) else value
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise VlmcompressError(f"{what} must be JSON or a JSON file: {exc}") from None


def cmd_prune(args):
    from .data.sources import standard_columns
    from .evaluation import check_dataset, evaluate_model
    from .io import atomic_output_dir
    from .loading import load_model
    from .modeling import save_compressed
    from .pruning.config import PruningConfig, prune_model
    from .pruning.importance import load_scores, save_scores
    from .report import format_metrics_table, new_report, write_report

    _quiet_transformers()
    config = PruningConfig(
        towers=args.towers.split(",") if args.towers else None,
        importance=args.importance,
        head_ratio=args.head_ratio,
        head_scope=args.head_scope,
        head_plan=_json_arg(args.head_plan, "--head-plan"),
        mlp_ratio=args.mlp_ratio,
        mlp_scope=args.mlp_scope,
        drop_layers=_tower_lists(args.drop_layers, "--drop-layers") or None,
        layer_strategy=args.layer_strategy,
        keep_every=args.keep_every,
        remove_layers={k: v[0] for k, v in _tower_lists(args.remove_layers, "--remove-layers").items()} or None,
        calibration_samples=args.calibration_samples,
        seed=args.seed,
    )
    config.validate()
    calibration = _load_dataset(args)
    if calibration is not None:
        check_dataset(calibration, args.image_column, args.text_column, args.text_column)
        calibration = standard_columns(calibration, args.image_column, args.text_column, args.label_column)
    model, processor, path = load_model(args.model, trust_remote_code=args.trust_remote_code)
    eval_kw = dict(images_per_number=args.images_per_number, latency_batch_size=args.latency_batch_size)
    before = None if args.no_eval else evaluate_model(model, processor, model_path=path, **eval_kw)
    scores = load_scores(args.scores) if args.scores else None
    on_scores = (lambda s: save_scores(s, args.save_scores)) if args.save_scores else None
    steps = prune_model(model, config, processor, dataset=calibration, scores=scores, on_scores=on_scores)
    with atomic_output_dir(args.output_dir) as tmp:
        loading = save_compressed(model, processor, tmp)
        after = None if args.no_eval else evaluate_model(model, processor, model_path=tmp, **eval_kw)
        config.save(tmp)
        report = new_report(base_model=str(path), model_family=_family(model), steps=steps, before=before, after=after)
        report["loading"] = loading
        write_report(report, tmp)
        _write_card(tmp, report)
    if not args.no_eval:
        print(format_metrics_table({"before": before, "after": after}))
    print(f"wrote {args.output_dir}; it loads with {_load_hint(loading)}")
    return 0


def _load_hint(loading: dict) -> str:
    """How a folder written by ``save_compressed`` loads, from what it recorded."""
    if loading["loading"] == "remote_code":
        return "AutoModel.from_pretrained(path, trust_remote_code=True) or vlmcompress.loading.load_model(path)"
    return f"{loading['class']}.from_pretrained(path), no remote code"


def _write_card(folder, report):
    """The card is part of the checkpoint; a card that fails to render never costs the checkpoint itself."""
    from .cards import write_card

    try:
        write_card(folder, report)
    except Exception as exc:  # noqa: BLE001 - reported, and `vlmcompress card DIR` can render it again
        print(f"warning: model card not written ({type(exc).__name__}: {exc}); run `vlmcompress card DIR` to retry",
              file=sys.stderr)


def cmd_card(args):
    from .cards import write_card

    path = write_card(args.folder, repo_id=args.repo_id)
    extra = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"wrote {path}" + (f" and {', '.join(extra)}" if extra else ""))
    return 0


def cmd_push(args):
    from .hub import push_folder

    url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(f"pushed {args.folder} to {url}")
    return 0


def cmd_quantize(args):
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # an optional-kernel notice on every import
    from .evaluation import evaluate_model
    from .io import atomic_output_dir
    from .loading import load_model
    from .quantization import (QuantizationConfig, ensure_not_quantized, plan_skips, quantize, require_bitsandbytes,
                               save_quantized)
    from .report import format_metrics_table, new_report, write_report

    _quiet_transformers()
    config = QuantizationConfig(bits=args.bits, quant_type=args.quant_type or "nf4", double_quant=args.double_quant,
                                compute_dtype=args.compute_dtype, towers=None if args.towers is None else [t for t in args.towers.split(",") if t],
                                skip=list(args.skip or []), device=args.device)
    if args.bits == 8 and args.quant_type:
        config.quant_type = args.quant_type  # let validate() name the mistake
    config.validate()
    require_bitsandbytes()
    model, processor, path = load_model(args.model, trust_remote_code=args.trust_remote_code)
    ensure_not_quantized(model)
    plan_skips(model, config)  # a --skip that matches nothing fails before the evaluation
    eval_kw = dict(images_per_number=args.images_per_number, latency_batch_size=args.latency_batch_size)
    before = None if args.no_eval else evaluate_model(model, processor, model_path=path, **eval_kw)
    quantized = quantize(model, config)
    with atomic_output_dir(args.output_dir) as tmp:
        loading = save_quantized(quantized, processor, tmp, config)
        after = None if args.no_eval else evaluate_model(quantized, processor, model_path=tmp, **eval_kw)
        report = new_report(base_model=str(path), model_family=_family(quantized),
                            steps=[quantized.vlmcompress_quantization], before=before, after=after)
        report["loading"] = loading
        write_report(report, tmp)
        _write_card(tmp, report)
    if not args.no_eval:
        print(format_metrics_table({"before": before, "after": after}))
    print(f"wrote {args.output_dir}; it loads with {_load_hint(loading)} (bitsandbytes installed; quantization_config "
          "is in config.json)")
    return 0


def _family(model):
    from .adapters import get_adapter

    return get_adapter(model).family


def _add_dataset_args(parser, purpose, split):
    parser.add_argument("--dataset", help=f"{purpose} data: a datasets.save_to_disk folder or Hub data set with "
                        f"image/text/label columns (default: the embedded digits {split} split)")
    parser.add_argument("--split", default=split, help=f"split of --dataset (default: {split})")
    parser.add_argument("--image-column", default="image")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")


def _add_model_and_output(parser, what):
    parser.add_argument("model", nargs="?", default=None,
                        help="save_pretrained folder or Hub id (default: the embedded teacher)")
    parser.add_argument("--output-dir", "-o", required=True, help=f"folder for the {what} checkpoint (replaced atomically)")


def _add_eval_and_loading(parser):
    """The before/after evaluation and loading options every command that writes a checkpoint takes."""
    parser.add_argument("--images-per-number", type=int, default=None,
                        help="embedded test images per number for evaluation")
    parser.add_argument("--latency-batch-size", type=int, default=32)
    parser.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmcompress",
        description="Prune, quantize and distill CLIP, SigLIP and BLIP models; every command defaults to the embedded teacher "
        "and the embedded digits benchmark, so it runs offline.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ev = sub.add_parser(
        "evaluate",
        help="measure zero-shot accuracy, recall@k, size, memory and latency of a model",
        description="Measure a CLIP, SigLIP or BLIP model: 100-way zero-shot accuracy with prompt ensembling (seen and "
        "held-out numbers separately) and image->text and text->image recall@1/@5, or for a captioner (BLIP) how often "
        "its greedy caption names the right number; parameters, bytes on disk, memory footprint and latency (median "
        "of timed batches after warm-up). Prints a table; --output writes JSON.",
    )
    ev.add_argument("model", nargs="?", default=None,
                    help="save_pretrained folder or Hub id (default: the embedded teacher)")
    ev.add_argument("--output", "-o", help="write the metrics as JSON to this file")
    _add_dataset_args(ev, "evaluation", "test")
    ev.add_argument("--images-per-number", type=int, default=None,
                    help="embedded data only: test images per number (default 100, the full test split)")
    ev.add_argument("--batch-size", type=int, default=256, help="batch size for encoding (default 256)")
    ev.add_argument("--latency-batch-size", type=int, default=32, help="batch size of the timed forward (default 32)")
    ev.add_argument("--latency-repeats", type=int, default=7, help="timed batches after 2 warm-up ones (default 7)")
    ev.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ev.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code")
    ev.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "prune",
        help="remove attention heads, MLP neurons and whole layers; save a checkpoint that reloads",
        description="Structurally prune a CLIP, SigLIP or BLIP model and save it with its processor, compression_report.json "
        "(metrics before and after, what was removed in the original numbering) and pruning_config.json. "
        "Uniform shapes reload with the stock class; per-layer shapes carry modeling_vlmcompress.py and load with "
        "AutoModel.from_pretrained(path, trust_remote_code=True) or vlmcompress.",
        epilog="examples:\n  vlmcompress prune --head-ratio 0.25 --output-dir outputs/heads25\n"
        "  vlmcompress prune --drop-layers vision:1,3 text:1,3 --output-dir outputs/half-depth\n"
        "  vlmcompress prune --layer-strategy block_influence --remove-layers vision:1 text:1 --mlp-ratio 0.25 -o out",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_and_output(pr, "pruned")
    pr.add_argument("--towers", default=None, help="comma-separated towers to prune: vision, text, text_decoder, and "
                    "BLIP's cross-attention heads text_cross, text_decoder_cross (default: all the model has)")
    pr.add_argument("--importance", default="taylor", choices=["taylor", "magnitude", "random"],
                    help="how heads and neurons are ranked (default: taylor, on calibration data)")
    pr.add_argument("--head-ratio", type=float, default=0.0, help="fraction of attention heads to remove")
    pr.add_argument("--head-scope", default="global", choices=["global", "per_layer"],
                    help="rank heads across the layers of a tower (default) or within each layer")
    pr.add_argument("--head-plan", help='explicit heads as JSON or a JSON file: {"vision": {"0": [1, 3]}}')
    pr.add_argument("--mlp-ratio", type=float, default=0.0, help="fraction of MLP neurons to remove")
    pr.add_argument("--mlp-scope", default="per_layer", choices=["global", "per_layer"],
                    help="per_layer (default) keeps widths uniform, so the stock class can reload")
    pr.add_argument("--drop-layers", nargs="*", metavar="TOWER:N,N", help="layers to drop, e.g. vision:1,3 text:3")
    pr.add_argument("--layer-strategy", choices=["every_k", "block_influence"],
                    help="choose layers to drop: keep every k-th, or drop those that change their input least")
    pr.add_argument("--keep-every", type=int, help="for every_k: keep layers 0, k, 2k, ...")
    pr.add_argument("--remove-layers", nargs="*", metavar="TOWER:N", help="for block_influence: how many per tower")
    pr.add_argument("--scores", help="importance scores saved earlier (skip scoring)")
    pr.add_argument("--save-scores", help="write the importance scores to this JSON file")
    pr.add_argument("--calibration-samples", type=int, default=256, help="samples for scoring (default 256)")
    _add_dataset_args(pr, "calibration", "train")
    pr.add_argument("--seed", type=int, default=0)
    _add_eval_and_loading(pr)
    pr.set_defaults(func=cmd_prune)

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
    qu.add_argument("--bits", type=int, required=True, help="8 (LLM.int8) or 4 (nf4/fp4)")
    qu.add_argument("--quant-type", help="4-bit data type: nf4 (default) or fp4")
    qu.add_argument("--double-quant", action="store_true", help="4-bit: quantize the block scales too")
    qu.add_argument("--compute-dtype", default="float32", help="4-bit matmul dtype: float32 (default), bfloat16, float16")
    qu.add_argument("--towers", default=None, help="comma-separated towers to quantize: vision, text, text_decoder "
                    "(default: every tower the model has)")
    qu.add_argument("--skip", nargs="*", metavar="MODULE",
                    help="more Linears to keep in full precision: name prefix, regex or suffix (e.g. fc2, "
                    "vision_model.encoder.layers.0); each must match a Linear")
    qu.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    _add_eval_and_loading(qu)
    qu.set_defaults(func=cmd_quantize)

    cd = sub.add_parser(
        "card",
        help="(re)render a checkpoint folder's model card (README.md and plots) from its compression_report.json",
        description="Render README.md (Hub metadata, what was done with its numbers, before/after table, accuracy "
        "against size plot, loading snippet, training log, versions, citations) from the folder's report.",
    )
    cd.add_argument("folder", help="checkpoint folder holding compression_report.json")
    cd.add_argument("--repo-id", help="Hub repo id to name in the loading snippet (default: a placeholder path)")
    cd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    cd.set_defaults(func=cmd_card)

    pu = sub.add_parser(
        "push",
        help="push a checkpoint folder (weights, config, processor, remote code, report, card, plots) to the Hub",
        description="Create the repo if needed and upload the folder in one commit. The token comes from HF_TOKEN or "
        "a saved `hf auth login`; HF_ENDPOINT selects another Hub. The local folder is never changed; a generated "
        "card is re-rendered with the repo id in its loading snippet.",
        epilog="example:\n  vlmcompress push outputs/heads25 --repo-id me/clip-digits-heads25 --private",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pu.add_argument("folder", help="checkpoint folder holding compression_report.json and weights")
    pu.add_argument("--repo-id", required=True, help="'name' (your namespace) or 'namespace/name'")
    pu.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    pu.add_argument("--revision", help="branch to commit to (created from main if missing)")
    pu.add_argument("--commit-message", help="commit message (default: 'Upload NAME compressed with vlmcompress')")
    pu.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    pu.set_defaults(func=cmd_push)
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
