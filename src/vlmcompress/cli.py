"""``vlmcompress`` command line. Each subcommand is a thin layer over a library function."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _set_verbosity(args):
    from .utils import set_verbosity

    set_verbosity(getattr(args, "verbosity", 0))


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


def _check_output_file(path):
    """``evaluate --output FILE``: checked before the evaluation, so a bad path costs no work."""
    from pathlib import Path

    from .errors import VlmcompressError

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
    from .evaluation import evaluate_model
    from .io import atomic_write_text
    from .loading import load_checkpoint
    from .report import format_metrics_table

    _set_verbosity(args)
    if args.output:
        _check_output_file(args.output)
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


def _tower_lists(items, what):
    """["vision:3,5", "text:1", "vision:7"] -> {"vision": [3, 5, 7], "text": [1]}: repeated towers accumulate."""
    from .errors import VlmcompressError

    out = {}
    for item in items or []:
        tower, _, values = item.partition(":")
        try:
            numbers = [int(v) for v in values.split(",") if v != ""]
        except ValueError:
            raise VlmcompressError(f"{what} takes TOWER:N,N,... (e.g. vision:3,5), got {item!r}") from None
        if not tower or not numbers or any(n < 0 for n in numbers):
            raise VlmcompressError(f"{what} takes TOWER:N,N,... with layer numbers >= 0 (e.g. vision:3,5), got {item!r}")
        out.setdefault(tower, [])
        out[tower] += [n for n in numbers if n not in out[tower]]
    return out


def _tower_counts(items, what):
    """["vision:1", "text:2"] -> {"vision": 1, "text": 2}; a tower given twice is an error (which count?)."""
    from .errors import VlmcompressError

    out = {}
    for item in items or []:
        tower, _, value = item.partition(":")
        if not tower or not value.isdigit() or int(value) < 1:
            raise VlmcompressError(f"{what} takes TOWER:N with N >= 1 (e.g. vision:1), got {item!r}")
        if tower in out:
            raise VlmcompressError(f"{what} names the {tower} tower twice ({tower}:{out[tower]} and {item}): give it once")
        out[tower] = int(value)
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


def _eval_plan(args) -> dict:
    """evaluate_model's keyword arguments for this command: the evaluation set (--eval-dataset; without one the
    embedded benchmark for an embedded model, else accuracy is not measured), templates, task. Opened here, before
    any model is loaded, so a bad evaluation set costs no work."""
    from .evaluation import NO_EVAL, embedded_images_per_number, load_templates, resolve_eval_set
    from .loading import resolve_model_path

    load_templates(args.templates)  # a bad template file fails before the data set is opened
    dataset = resolve_eval_set(args.eval_dataset, resolve_model_path(args.model), split=args.eval_split,
                               config=args.eval_config, image_column=args.eval_image_column,
                               caption_column=args.eval_caption_column, label_column=args.eval_label_column,
                               max_samples=args.max_eval_samples, on_bad_sample=args.on_bad_sample)
    if isinstance(dataset, str) and dataset == NO_EVAL and not args.eval_dataset:
        print("note: no --eval-dataset for this model, so accuracy is not measured (size, memory and latency "
                       "are); name one to measure it")
    elif not isinstance(dataset, str):
        print(f"evaluation set {dataset.describe()}")
    per_number = embedded_images_per_number(dataset, args.images_per_number, args.max_eval_samples)
    return dict(dataset=dataset, images_per_number=per_number, latency_batch_size=args.latency_batch_size,
                templates=args.templates, task=args.eval_task)


def _evaluator(args, processor, eval_kwargs):
    """``evaluate(model, folder)`` for finish_checkpoint, or None with --no-eval."""
    if args.no_eval:
        return None
    from .evaluation import evaluate_model

    return lambda model, folder: evaluate_model(model, processor, model_path=folder, **eval_kwargs)


def _stage_kwargs(args, processor, path, before, eval_kwargs) -> dict:
    """What ``workflows.stages`` runners take from a parsed command line."""
    return dict(base_model=path, before=before, evaluate=_evaluator(args, processor, eval_kwargs),
                latency_rounds=args.latency_rounds, latency_batch_size=args.latency_batch_size,
                overwrite=args.overwrite)


def _print_finished(args, before, report):
    from .checkpoint import load_hint
    from .report import format_metrics_table

    if not args.no_eval:
        print(format_metrics_table({"before": before, "after": report["after"]}))
    print(f"wrote {args.output_dir}; it loads with {load_hint(report['loading'])}")


def pruning_config(args):
    """The PruningConfig a parsed ``prune`` command line runs."""
    from .pruning.config import PruningConfig

    return PruningConfig(
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
    from .data.sources import standard_columns
    from .evaluation import check_dataset, evaluate_model
    from .evaluation.eval_sets import is_embedded_model
    from .io import check_output_dir
    from .loading import load_checkpoint, resolve_model_path
    from .pruning.config import require_calibration
    from .pruning.importance import load_scores, save_scores
    from .workflows.stages import prune_stage

    _set_verbosity(args)
    check_output_dir(args.output_dir, overwrite=args.overwrite)
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


def quantization_config(args):
    """The QuantizationConfig a parsed ``quantize`` command line runs."""
    from .quantization import QuantizationConfig

    return QuantizationConfig(bits=args.bits, quant_type=args.quant_type, double_quant=args.double_quant,
                              compute_dtype=args.compute_dtype, dtype=args.dtype, towers=args.towers,
                              skip=list(args.skip or []), default_skip=not args.no_default_skip, device=args.device)


def cmd_quantize(args):
    from .evaluation import evaluate_model
    from .io import check_output_dir
    from .loading import load_checkpoint
    from .quantization import ensure_not_quantized, plan_skips, require_bitsandbytes
    from .workflows.stages import quantize_stage

    _set_verbosity(args)
    check_output_dir(args.output_dir, overwrite=args.overwrite)
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


def cmd_export(args):
    from .export import export_onnx
    from .report import format_metrics_table

    _set_verbosity(args)
    from .io import check_output_dir

    check_output_dir(args.output_dir, overwrite=args.overwrite)  # before the evaluation set is opened
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


def _parse_targets(items):
    """["max_size_mib=0.7", "batch_size=32"] -> {"max_size_mib": 0.7, "batch_size": 32}."""
    from .errors import VlmcompressError

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
    from .workflows.compress import Pipeline
    from .workflows.recipe import load_recipe

    _set_verbosity(args)
    recipe = load_recipe(args.recipe, output_dir=args.output_dir)  # validated whole before anything runs
    Pipeline(recipe, from_stage=args.from_stage).run()
    return 0


def cmd_plan(args):
    from .errors import VlmcompressError
    from .workflows.compress import Pipeline
    from .workflows.planner import describe, format_plan, plan_pruning
    from .workflows.recipe import check_target, load_recipe, stage_configs, stage_target

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
    from .loading import load_checkpoint

    base = pipeline.base_path()
    eval_kwargs = pipeline.eval_kwargs(base)
    model, processor, _ = load_checkpoint(base)
    config = stage_configs(stage, recipe.family, first=stage.index == 1)
    result = plan_pruning(model, processor, config, target, recipe, stage, calibration=pipeline.calibration(),
                          eval_kwargs=eval_kwargs, log=lambda text: None)
    print(format_plan(result["rows"], target))
    print(f"best: {describe(result['best'])} ({result['record']['proxy']}; {result['record']['seconds']:.0f} s)")
    return 0


def cmd_card(args):
    from .cards import write_card

    path = write_card(args.folder, repo_id=args.repo_id)
    extra = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"wrote {path}" + (f" and {', '.join(extra)}" if extra else ""))
    return 0


def cmd_cache_teacher(args):
    from accelerate import PartialState

    from .distillation.store import write_store
    from .loading import load_checkpoint

    _set_verbosity(args)
    state = PartialState()  # under `accelerate launch`, process i of n writes shards i, i + n, ...
    teacher, processor, path = load_checkpoint(args.teacher, trust_remote_code=args.trust_remote_code,
                                               torch_for="the teacher store")
    meta = write_store(teacher, processor, args.data, args.output_dir, dtype=args.dtype, batch_size=args.batch_size,
                       image_column=args.image_column, caption_column=args.caption_column,
                       process_index=state.process_index, num_processes=state.num_processes)
    if state.is_main_process:
        print(f"wrote the teacher store of {len(meta['shards'])} shard(s) of {args.data} ({meta['dtype']}) to "
              f"{args.output_dir}; distill reads it with --teacher_store {args.output_dir}")
    return 0


def cmd_push(args):
    from .hub import push_folder

    url = push_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                      commit_message=args.commit_message)
    print(f"pushed {args.folder} to {url}")
    return 0


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum``, checked at parse time."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value
    return parse


_positive_int = _whole_number(1)
_nonnegative_int = _whole_number(0)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value}")
    return value


def _names(text):
    """'vision,text' -> ['vision', 'text'] (with action="extend", repeated flags accumulate)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _add_common(parser):
    """Flags every subcommand takes (after the subcommand as well as before it)."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    parser.add_argument("--verbose", "-v", dest="verbosity", action="store_const", const=1, default=argparse.SUPPRESS,
                        help="show the libraries' own logs and warnings too")
    parser.add_argument("--quiet", "-q", dest="verbosity", action="store_const", const=-1, default=argparse.SUPPRESS,
                        help="no progress bars: results and errors only")


def _add_dataset_args(parser, purpose, split):
    parser.add_argument(f"--{purpose}-dataset", "--dataset", dest="dataset", metavar="DATA",
                        help=f"{purpose} data (--dataset is the older spelling): a datasets.save_to_disk folder or Hub "
                        "data set with "
                        f"image/text/label columns (default, for the embedded teachers and folders made from them: "
                        f"the embedded digits {split} split; any other model needs its own, or names "
                        "vlmcompress/digits-train)")
    parser.add_argument("--split", default=split, help=f"split of --dataset (default: {split})")
    parser.add_argument("--image-column", default="image", help="image column of --dataset (default: image)")
    parser.add_argument("--text-column", default="text", help="caption column of --dataset (default: text)")
    parser.add_argument("--label-column", default="label", help="label column of --dataset (default: label)")


OUTPUT_RULE = ("It must be a new or empty folder, or an earlier vlmcompress output (with --overwrite); a folder holding "
               "anything else, the current folder and its parents are refused. It appears whole, or not at all.")


def _add_model_and_output(parser, what):
    parser.add_argument("model", nargs="?", default=None,
                        help="save_pretrained folder or Hub id (default: the embedded teacher)")
    parser.add_argument("--output-dir", "-o", required=True, help=f"folder for the {what} checkpoint. {OUTPUT_RULE}")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output-dir when it holds an earlier vlmcompress result (never anything else)")


def _add_eval_set_args(parser, aliases=False):
    """Where accuracy is measured: the user's evaluation set and its protocol. ``aliases``: the evaluate command also
    takes the older --dataset/--split/--image-column/--text-column/--label-column spellings."""
    from .embedded.digits import DATASET_NAME as EMBEDDED  # not vlmcompress.evaluation: --help must not import torch

    def names(flag, old):
        return (flag, old) if aliases else (flag,)

    g = parser.add_argument_group(
        "evaluation set",
        "Accuracy is measured on --eval-dataset. Without it, the embedded benchmark is used for an embedded model (and "
        "folders made from one); any other model gets size, memory and latency only, and the report says accuracy was "
        "not measured.")
    g.add_argument(*names("--eval-dataset", "--dataset"), dest="eval_dataset", metavar="DATA",
                   help=f"a datasets.save_to_disk folder, an image folder (one subfolder per class), a CSV/JSON(L) file "
                   f"of image paths and captions, a Hub data set name, {EMBEDDED} (the embedded benchmark) or none")
    g.add_argument(*names("--eval-split", "--split"), dest="eval_split", default="test",
                   help="split of --eval-dataset (default: test; a set with one split uses it)")
    g.add_argument("--eval-config", help="configuration name of a Hub --eval-dataset")
    g.add_argument(*names("--eval-image-column", "--image-column"), dest="eval_image_column",
                   help="image column (default: the first of image, img, jpg, png, image_path, file_name)")
    g.add_argument(*names("--eval-caption-column", "--text-column"), dest="eval_caption_column",
                   help="caption column: a string, or a list of strings per image; rows repeating an image are grouped "
                   "(default: the first of captions, caption, text, sentences)")
    g.add_argument(*names("--eval-label-column", "--label-column"), dest="eval_label_column",
                   help="datasets.ClassLabel column whose names are the zero-shot classes (default: label)")
    g.add_argument("--on-bad-sample", dest="on_bad_sample", default="error", choices=["error", "skip"],
                   help="an unreadable image, an empty class folder or an empty caption: error (default: refused "
                   "before any work, naming one) or skip (left out, counted in one warning line)")
    g.add_argument("--eval-task", default="auto", choices=["auto", "zero_shot", "retrieval", "captioning"],
                   help="protocol (default auto: zero-shot when there is a ClassLabel, retrieval when there are "
                   "captions, captioning for a captioner)")
    g.add_argument("--templates", default="default", metavar="SET|FILE",
                   help="zero-shot prompts: default ('a photo of a {}.' and two more), openai_imagenet (CLIP's 80 "
                   "ImageNet templates) or a text file with one template per line, each with {} (default: default)")
    g.add_argument("--max-eval-samples", type=_positive_int, default=None,
                   help="evaluate on at most this many images (a seeded random subset)")
    g.add_argument("--images-per-number", type=_positive_int, default=None,
                   help=f"{EMBEDDED} only: test images per number (default 100, the full test split)")


def _add_eval_and_loading(parser):
    """The before/after evaluation and loading options every command that writes a checkpoint takes."""
    from .report import LATENCY_ROUNDS

    _add_eval_set_args(parser)
    parser.add_argument("--latency-batch-size", type=_positive_int, default=32,
                        help="batch size of the timed forward (default 32)")
    parser.add_argument("--latency-rounds", type=_positive_int, default=LATENCY_ROUNDS,
                        help="interleaved rounds in which the model before and after take turns to be timed; the card "
                        f"shows the median ratio and its range (default {LATENCY_ROUNDS})")
    parser.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code")
    _add_common(parser)


class _Parser(argparse.ArgumentParser):
    """A parse error is one line (what was wrong and where help is), not the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def _kebab_case(parser: argparse.ArgumentParser, argv: list) -> list:
    """``argv`` with snake_case option names (``--head_ratio``, as ``distill`` and recipes spell them) in this parser's
    kebab-case (``--head-ratio``): both spellings are read everywhere. Only names of the command's own options change."""
    command = next((a for a in argv if not a.startswith("-")), None)
    subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    known = set(parser._option_string_actions)
    if subparsers is not None and command in subparsers.choices:
        known |= set(subparsers.choices[command]._option_string_actions)
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and "_" in name and name not in known and name.replace("_", "-") in known:
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="vlmcompress",
        description="Prune, quantize, distill and export CLIP, SigLIP and BLIP models; every command defaults to the embedded teacher "
        "and the embedded digits benchmark, so it runs offline.",
    )
    parser.add_argument("--version", action="version", version=f"vlmcompress {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--verbose", "-v", dest="verbosity", action="store_const", const=1, default=0,
                        help="show the libraries' own logs and warnings too")
    parser.add_argument("--quiet", "-q", dest="verbosity", action="store_const", const=-1,
                        help="no progress bars: results and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    ev.add_argument("--batch-size", type=_positive_int, default=256, help="batch size for encoding (default 256)")
    ev.add_argument("--latency-batch-size", type=_positive_int, default=32, help="batch size of the timed forward (default 32)")
    ev.add_argument("--latency-repeats", type=_nonnegative_int, default=7,
                    help="timed batches after 2 warm-up ones (default 7; 0: no latency)")
    ev.add_argument("--threads", type=_nonnegative_int, default=0, help="torch threads (default: torch's choice)")
    ev.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code")
    _add_common(ev)
    ev.set_defaults(func=cmd_evaluate)

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
    pr.add_argument("--importance", default="ablation", choices=["ablation", "fisher", "taylor", "magnitude", "random"],
                    help="how heads and neurons are ranked: ablation (the default: each head removed alone on "
                    "calibration data, scored by how far the outputs move; neurons by taylor; one forward pass per "
                    "head and batch), fisher (the empirical Fisher of per-sample gates: ablation's quantity to second "
                    "order, one backward pass per batch), taylor (gradients), magnitude (weight norms) or random")
    pr.add_argument("--head-ratio", type=_fraction, default=0.0, help="fraction of attention heads to remove")
    pr.add_argument("--head-scope", default="per_layer", choices=["global", "per_layer"],
                    help="rank heads within each layer (default: every layer keeps the same share) or across the layers of a "
                         "tower (global)")
    pr.add_argument("--head-plan", help='explicit heads as JSON or a JSON file: {"vision": {"0": [1, 3]}}')
    pr.add_argument("--mlp-ratio", type=_fraction, default=0.0, help="fraction of MLP neurons to remove")
    pr.add_argument("--mlp-scope", default="per_layer", choices=["global", "per_layer"],
                    help="per_layer (default) keeps widths uniform, so the stock class can reload")
    pr.add_argument("--hidden-ratio", type=_fraction, default=0.0,
                    help="fraction of each tower's hidden width removed, with as many heads in every layer (head_dim "
                    "kept): a narrow model of the stock class's shape, TinyCLIP-style (CLIP; not with --head-ratio)")
    pr.add_argument("--drop-layers", nargs="+", action="extend", metavar="TOWER:N,N",
                    help="layers to drop, e.g. vision:1,3 text:3 (repeat the flag or list several)")
    pr.add_argument("--layer-strategy", choices=["every_k", "block_influence"],
                    help="choose layers to drop: keep every k-th, or drop those that change their input least")
    pr.add_argument("--keep-every", type=_positive_int, help="for every_k: keep layers 0, k, 2k, ...")
    pr.add_argument("--remove-layers", nargs="+", action="extend", metavar="TOWER:N",
                    help="for block_influence: how many per tower, e.g. vision:1 text:1")
    pr.add_argument("--scores", help="importance scores saved earlier (skip scoring)")
    pr.add_argument("--save-scores", help="write the importance scores to this JSON file")
    pr.add_argument("--calibration-samples", type=_positive_int, default=None,
                    help="samples for scoring (default: 256 for taylor and fisher; 512 for ablation, fewer on a model with "
                         "over 64 heads so that heads x samples stays within 32,768)")
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
    qu.add_argument("--bits", type=int, required=True, choices=[4, 8], help="8 (LLM.int8) or 4 (nf4/fp4)")
    qu.add_argument("--quant-type", choices=["nf4", "fp4"], help="4-bit data type: nf4 (default) or fp4")
    qu.add_argument("--double-quant", action="store_true", help="4-bit: quantize the block scales too")
    qu.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                    help="4-bit matmul dtype (default float32)")
    qu.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
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
    qu.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="cpu (default), cuda or auto")
    _add_eval_and_loading(qu)
    qu.set_defaults(func=cmd_quantize)

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

    sub.add_parser(
        "distill", add_help=False,
        help="distill a teacher into a smaller student inside transformers.Trainer (recipes/distill_clip.py's run)",
        description="Everything after `distill` goes to the distillation run, with the recipe's options "
        "(main() routes it before this parser; listed here for --help): `vlmcompress distill --help` lists them, "
        "`--family blip` picks the captioner defaults. Two processes: accelerate launch -m vlmcompress.cli distill ...",
    )

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

    cd = sub.add_parser(
        "card",
        help="(re)render a checkpoint folder's model card (README.md and plots) from its compression_report.json",
        description="Render README.md (Hub metadata, what was done with its numbers, before/after table, accuracy "
        "against size plot, loading snippet, training log, versions, citations) from the folder's report.",
    )
    cd.add_argument("folder", help="checkpoint folder holding compression_report.json")
    cd.add_argument("--repo-id", help="Hub repo id to name in the loading snippet (default: the folder)")
    _add_common(cd)
    cd.set_defaults(func=cmd_card)

    ct = sub.add_parser(
        "cache-teacher",
        help="write a teacher's image and text embeddings of every sample of a sharded data set (a teacher store)",
        description="One NAME.npz per data shard (the samples' keys and embeddings) and store.json (the teacher's "
        "fingerprint, the preprocessing, the dtype). A shard already written is skipped, so a killed run resumes; "
        "under `accelerate launch` each process writes its own shards. `vlmcompress distill --dataset_name SHARDS "
        "--teacher_store STORE` then reads the embeddings instead of running the teacher.",
        epilog="example:\n  vlmcompress cache-teacher --data shards/ -o teacher-store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ct.add_argument("teacher", nargs="?", default=None,
                    help="teacher: save_pretrained folder or Hub id (default: the embedded CLIP teacher)")
    ct.add_argument("--data", required=True, metavar="SHARDS",
                    help="a folder or glob of WebDataset .tar, .parquet or .arrow shards")
    ct.add_argument("-o", "--output-dir", required=True, help="the store's folder (created; completed if partial)")
    ct.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="stored precision (default float16)")
    ct.add_argument("--batch-size", type=_whole_number(1), default=256, help="teacher batch size (default 256)")
    ct.add_argument("--image-column", default="image", help="image column of .parquet/.arrow shards (WebDataset: found by extension)")
    ct.add_argument("--caption-column", default="text", help="caption column of .parquet/.arrow shards (WebDataset: KEY.txt)")
    ct.add_argument("--trust-remote-code", action="store_true", help="allow the teacher's own modeling code")
    _add_common(ct)
    ct.set_defaults(func=cmd_cache_teacher)

    pu = sub.add_parser(
        "push",
        help="push a checkpoint folder (weights, config, processor, remote code, report, card, plots) to the Hub",
        description="Check the folder (config parses, weights whole, report valid, card renders), then create the repo "
        "if needed and upload the folder in one commit. The token comes from HF_TOKEN or a saved `hf auth login`; "
        "HF_ENDPOINT selects another Hub. The local folder is never changed; a generated card is re-rendered with "
        "the repo id in its loading snippet.",
        epilog="example:\n  vlmcompress push outputs/heads25 --repo-id me/clip-digits-heads25 --private",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pu.add_argument("folder", help="checkpoint folder holding compression_report.json and weights")
    pu.add_argument("--repo-id", required=True, help="'name' (your namespace) or 'namespace/name'")
    pu.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    pu.add_argument("--revision", help="branch to commit to (created from main if missing)")
    pu.add_argument("--commit-message", help="commit message (default: 'Upload NAME compressed with vlmcompress')")
    _add_common(pu)
    pu.set_defaults(func=cmd_push)
    return parser


def _error_line(exc) -> str:
    text = str(exc).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first or type(exc).__name__


def _recipe_trains(path) -> bool:
    """Whether a recipe file has a distillation stage (read before torch is imported; errors come later, in full)."""
    try:
        import yaml

        data = yaml.safe_load(open(path, encoding="utf-8"))
        return any(isinstance(s, dict) and "distill" in s or s == "distill" for s in data.get("stages") or [])
    except Exception:  # noqa: BLE001 - load_recipe reports a bad file with its line and column
        return False


def _distill_argv(argv):
    """(family, the recipe's options) when the command is ``distill``, else None: everything after ``distill`` is the
    recipe's (HfArgumentParser) options, which argparse must not read."""
    for i, token in enumerate(argv):
        if token == "distill":
            rest = argv[i + 1:]
            family = "clip"
            if rest[:1] == ["--family"] and len(rest) > 1:
                family, rest = rest[1], rest[2:]
            elif rest[:1] and rest[0].startswith("--family="):
                family, rest = rest[0].split("=", 1)[1], rest[1:]
            return family, rest
        if not token.startswith("-"):
            return None
    return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    routed = _distill_argv(argv)
    if routed is not None:
        from .threads import use_training_thread_policy

        use_training_thread_policy()  # before torch is imported; a training process only
        family, rest = routed
        if family not in ("clip", "blip"):
            print(f"vlmcompress distill: error: --family takes clip or blip, got {family!r}", file=sys.stderr)
            return 2
        from .workflows.distill import run_distillation

        return run_distillation(rest, family=family, prog="vlmcompress distill")
    parser = build_parser()
    try:
        args = parser.parse_args(_kebab_case(parser, argv))
    except SystemExit as exc:  # --help, --version, a parse error (printed already): its status, also from Python
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "compress" and _recipe_trains(args.recipe):
        from .threads import use_training_thread_policy

        use_training_thread_policy()  # a recipe with a distillation stage is a training process (before torch)
    from .errors import VlmcompressError
    from .io import releasing_outputs
    from .report import ReportError

    try:
        with releasing_outputs():  # the output folders this command locked are free again when it returns
            return args.func(args) or 0
    except KeyboardInterrupt as exc:  # a run that kept work (a recipe's stages) says what: errors.Interrupted
        print(str(exc) or "interrupted; nothing was written", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is one line; --debug shows the traceback
        if args.debug:
            raise
        known = isinstance(exc, (VlmcompressError, ReportError, FileNotFoundError, FileExistsError, PermissionError))
        line = _error_line(exc) if known else f"{type(exc).__name__}: {_error_line(exc)} (rerun with --debug for the traceback)"
        print(f"vlmcompress {args.command}: error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
