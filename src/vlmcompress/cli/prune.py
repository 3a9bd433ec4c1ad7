"""``vlmcompress prune``: structural pruning of heads, neurons, width and layers into a checkpoint that reloads."""

from __future__ import annotations

import argparse

from ..pruning.config import (HEAD_SAMPLE_BUDGET, IMPORTANCE_NAMES, LAYER_STRATEGIES, SCOPES, PruningConfig as P,
                              describe_calibration_samples)
from ._args import _add_dataset_args, _add_eval_and_loading, _add_model_and_output, _fraction, _names, _positive_int
from ._common import (_check_local_model, _eval_plan, _json_arg, _load_dataset, _print_finished, _set_verbosity,
                      _stage_kwargs, _tower_counts, _tower_lists)


def add_parser(sub) -> None:
    """Register ``prune``."""
    pr = sub.add_parser(
        "prune",
        help="remove attention heads, MLP neurons and whole layers; save a checkpoint that reloads",
        description="Structurally prune a CLIP, SigLIP or BLIP model and save it with its processor, compression_report.json "
        "(metrics before and after, what was removed in the original numbering) and pruning_config.json. "
        "Uniform shapes reload with the stock class; per-layer shapes carry modeling_vlmcompress.py and load with "
        "AutoModel.from_pretrained(path, trust_remote_code=True) or vlmcompress.",
        epilog="examples:\n  vlmcompress prune --head-ratio 0.25 --output-dir outputs/heads25\n"
        "  vlmcompress prune --drop-layers vision:1,3 --drop-layers text:1,3 --output-dir outputs/half-depth\n"
        "  vlmcompress prune --layer-strategy block_influence --remove-layers vision:1 text:1 --mlp-ratio 0.25 -o out",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_model_and_output(pr, "pruned")
    pr.add_argument("--towers", type=_names, action="extend", default=None,
                    help="towers to prune, comma-separated: vision, text, text_decoder (default: every tower the "
                    "model has); their layers, MLP neurons and, unless --head-sites says otherwise, their heads")
    pr.add_argument("--head-sites", type=_names, action="extend", default=None,
                    help="attention-head sites whose heads may go, comma-separated: a tower's self-attention (vision, "
                    "text, text_decoder) or BLIP's cross-attention (text_cross, text_decoder_cross); default: every "
                    "head site of --towers")
    pr.add_argument("--importance", default=P.importance, choices=IMPORTANCE_NAMES,
                    help=f"how heads and neurons are ranked (default {P.importance}): ablation (each head removed alone on "
                    "calibration data, scored by how far the outputs move; neurons by taylor; one forward pass per "
                    "head and batch), fisher (the empirical Fisher of per-sample gates: ablation's quantity to second "
                    "order, one backward pass per batch), taylor (gradients), magnitude (weight norms) or random")
    pr.add_argument("--head-ratio", type=_fraction, default=P.head_ratio, help="fraction of attention heads to remove")
    pr.add_argument("--head-scope", default=P.head_scope, choices=SCOPES,
                    help="rank heads within each layer (per_layer: every layer keeps the same share) or across the "
                    f"layers of a tower (global); default {P.head_scope}")
    pr.add_argument("--head-plan", help='explicit heads as JSON or a JSON file: {"vision": {"0": [1, 3]}}')
    pr.add_argument("--mlp-ratio", type=_fraction, default=P.mlp_ratio, help="fraction of MLP neurons to remove")
    pr.add_argument("--mlp-scope", default=P.mlp_scope, choices=SCOPES,
                    help="per_layer keeps widths uniform, so the stock class can reload; global ranks across a "
                    f"tower's layers (default {P.mlp_scope})")
    pr.add_argument("--hidden-ratio", type=_fraction, default=P.hidden_ratio,
                    help="fraction of each tower's hidden width removed, with as many heads in every layer (head_dim "
                    "kept): a narrow model of the stock class's shape, TinyCLIP-style (CLIP; not with --head-ratio)")
    pr.add_argument("--drop-layers", nargs="+", action="extend", metavar="TOWER:N,N",
                    help="layers to drop, e.g. vision:1,3 text:3 (repeat the flag or list several)")
    pr.add_argument("--layer-strategy", choices=LAYER_STRATEGIES,
                    help="choose layers to drop: keep every k-th, or drop those that change their input least")
    pr.add_argument("--keep-every", type=_positive_int, help="for every_k: keep layers 0, k, 2k, ...")
    pr.add_argument("--remove-layers", nargs="+", action="extend", metavar="TOWER:N",
                    help="for block_influence: how many per tower, e.g. vision:1 text:1")
    pr.add_argument("--scores", help="importance scores saved earlier (skip scoring)")
    pr.add_argument("--save-scores", help="write the importance scores to this JSON file")
    pr.add_argument("--calibration-samples", type=_positive_int, default=None,
                    help=f"samples for scoring (default: {describe_calibration_samples()}; ablation takes fewer on a "
                         f"model with many heads, so that heads x samples stays within {HEAD_SAMPLE_BUDGET:,})")
    _add_dataset_args(pr, "calibration", "train")
    pr.add_argument("--seed", type=int, default=P.seed, help=f"seed of the calibration sample and of random importance (default {P.seed})")
    _add_eval_and_loading(pr)
    pr.set_defaults(func=cmd_prune)


def pruning_config(args):
    """The PruningConfig a parsed ``prune`` command line runs."""
    return P(
        towers=args.towers,
        head_sites=args.head_sites,
        importance=args.importance,
        head_ratio=args.head_ratio,
        head_scope=args.head_scope,
        head_plan=_json_arg(args.head_plan, "--head-plan"),
        mlp_ratio=args.mlp_ratio,
        mlp_scope=args.mlp_scope,
        hidden_ratio=args.hidden_ratio,
        drop_layers=_tower_lists(args.drop_layers, "--drop-layers") or None,
        layer_strategy=args.layer_strategy,
        keep_every=args.keep_every,
        remove_layers=_tower_counts(args.remove_layers, "--remove-layers") or None,
        calibration_samples=args.calibration_samples,
        seed=args.seed,
    )


def cmd_prune(args):
    from ..io import check_output_dir

    _set_verbosity(args)
    check_output_dir(args.output_dir, overwrite=args.overwrite)
    _check_local_model(args.model)  # both before torch is imported
    from ..data.sources import standard_columns
    from ..evaluation import check_dataset, evaluate_model
    from ..evaluation.eval_sets import is_embedded_model
    from ..loading import load_checkpoint, resolve_model_path
    from ..pruning.config import require_calibration
    from ..pruning.importance import load_scores, save_scores
    from ..workflows.stages import prune_stage

    config = pruning_config(args)
    calibration = _load_dataset(args)
    if calibration is not None:
        check_dataset(calibration, args.image_column, args.text_column, args.text_column)
        calibration = standard_columns(calibration, args.image_column, args.text_column, args.label_column)
    scores = load_scores(args.scores) if args.scores else None
    if calibration is None and not is_embedded_model(resolve_model_path(args.model)):
        require_calibration(config, args.model, "--calibration-dataset", scores)  # before the model is loaded
    eval_kwargs = None if args.no_eval else _eval_plan(args)
    model, processor, path = load_checkpoint(args.model, trust_remote_code=args.trust_remote_code, torch_for="pruning")
    before = None if args.no_eval else evaluate_model(model, processor, model_path=path, **eval_kwargs)
    on_scores = (lambda s: save_scores(s, args.save_scores)) if args.save_scores else None
    report = prune_stage(model, processor, args.output_dir, config, calibration=calibration, scores=scores,
                         on_scores=on_scores, **_stage_kwargs(args, processor, path, before, eval_kwargs))
    _print_finished(args, before, report)
    return 0
