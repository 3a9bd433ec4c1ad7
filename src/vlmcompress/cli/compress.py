"""``vlmcompress compress`` and ``vlmcompress plan``: run a recipe file, or show its planner's candidates."""

from __future__ import annotations

import argparse

from ._args import _add_common, _positive_int
from ._common import _set_verbosity


def add_parser(sub) -> None:
    """Register ``compress`` and ``plan``."""
    co = sub.add_parser(
        "compress",
        help="run a recipe file: prune -> distill -> quantize -> export -> card -> push, each stage in its own folder",
        description="Run the stages of a recipe (YAML or JSON: model, data, stages, output_dir, optional push and "
        "target) into output_dir/01-prune, 02-distill, ...: each a self-describing checkpoint whose report names the "
        "previous one, so the last one's card shows the whole chain; recipe.yaml is saved beside it. The recipe is "
        "validated whole before anything runs. A rerun skips stages whose folder is complete and whose options and "
        "inputs hash the same; an interrupted stage is redone (a distillation resumes from its last Trainer "
        "checkpoint). A target (max_size_mib, max_latency_ms with batch_size, max_params) lets the planner choose "
        "the prune stage's ratios. Recipes with a distillation stage run under `accelerate launch "
        "recipes/compress.py --recipe FILE` too (1 or 2 processes).",
        epilog="examples:\n  vlmcompress compress recipes/clip_small.yaml\n"
        "  vlmcompress compress recipes/clip_small.yaml --from-stage 2\n"
        "  vlmcompress plan recipes/clip_budget.yaml --target max_size_mib=0.7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    co.add_argument("recipe", help="recipe file (YAML or JSON; see recipes/*.yaml)")
    co.add_argument("--from-stage", type=_positive_int, help="rerun from this stage (1-based) even if complete")
    co.add_argument("--output-dir", "-o", help="replace the recipe's output_dir")
    _add_common(co)
    co.set_defaults(func=cmd_compress)
    pl = sub.add_parser(
        "plan",
        help="print the candidate plans for a recipe's budget (a table, best first) without running the pipeline",
        description="Build every candidate of the planner's grid (layer pattern, head and MLP ratios) on a copy of the "
        "recipe's model: exact size after the recipe's quantize stage, latency measured here when the target has one, "
        "one-shot accuracy on a slice of the evaluation set. Nothing is written.",
    )
    pl.add_argument("recipe", help="recipe file with a prune stage (its target, or the recipe's, or --target)")
    pl.add_argument("--target", nargs="+", action="extend", metavar="KEY=VALUE",
                    help="budget: max_size_mib=0.7, max_latency_ms=10 batch_size=32, max_params=0.25 (a fraction "
                    "of the base model's parameters, or a count)")
    _add_common(pl)
    pl.set_defaults(func=cmd_plan)


def _parse_targets(items):
    """["max_size_mib=0.7", "batch_size=32"] -> {"max_size_mib": 0.7, "batch_size": 32}."""
    from ..errors import VlmcompressError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value) if sep else None
        except ValueError:
            out[key.strip()] = None
        if out[key.strip()] is None:
            raise VlmcompressError(f"--target takes KEY=NUMBER (max_size_mib, max_latency_ms, batch_size, max_params), "
                                   f"got {item!r}")
    return out


def cmd_compress(args):
    from ..workflows.compress import Pipeline
    from ..workflows.recipe import load_recipe

    _set_verbosity(args)
    recipe = load_recipe(args.recipe, output_dir=args.output_dir)  # validated whole before anything runs
    Pipeline(recipe, from_stage=args.from_stage).run()
    return 0


def cmd_plan(args):
    from ..errors import VlmcompressError
    from ..workflows.compress import Pipeline
    from ..workflows.planner import describe, format_plan, plan_pruning
    from ..workflows.recipe import check_target, load_recipe, stage_configs, stage_target

    _set_verbosity(args)
    recipe = load_recipe(args.recipe)
    overrides = _parse_targets(args.target)
    if overrides:
        recipe.target = check_target("--target", {**(recipe.target or {}), **overrides})
    stage = next((s for s in recipe.stages if s.kind == "prune"), None)
    target = stage_target(recipe, stage) if stage is not None else None
    if stage is None or not target:
        raise VlmcompressError("nothing to plan: the recipe needs a prune stage and a target (in the recipe, the prune "
                               "stage or --target max_size_mib=...)")
    pipeline = Pipeline(recipe, inputs_only=True, log=lambda text: None)  # nothing is written
    from ..loading import load_checkpoint

    base = pipeline.base_path()
    eval_kwargs = pipeline.eval_kwargs(base)
    model, processor, _ = load_checkpoint(base)
    config = stage_configs(stage, recipe.family, first=stage.index == 1)
    result = plan_pruning(model, processor, config, target, recipe, stage, calibration=pipeline.calibration(),
                          eval_kwargs=eval_kwargs, log=lambda text: None)
    print(format_plan(result["rows"], target))
    print(f"best: {describe(result['best'])} ({result['record']['proxy']}; {result['record']['seconds']:.0f} s)")
    return 0


def _recipe_trains(path) -> bool:
    """Whether a recipe file has a distillation stage (read before torch is imported; errors come later, in full)."""
    try:
        import yaml

        data = yaml.safe_load(open(path, encoding="utf-8"))
        return any(isinstance(s, dict) and "distill" in s or s == "distill" for s in data.get("stages") or [])
    except Exception:  # noqa: BLE001 - load_recipe reports a bad file with its line and column
        return False
