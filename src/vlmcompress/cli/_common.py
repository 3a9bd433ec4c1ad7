"""What several commands run: verbosity, the calibration set, tower lists, the evaluation plan, the before/after evaluation and the finishing lines."""

from __future__ import annotations

import json
import os


def _set_verbosity(args):
    from ..utils import set_verbosity

    set_verbosity(getattr(args, "verbosity", 0))


def _check_local_model(value) -> None:
    """A local model folder that is missing, a file or has no config.json fails at once, before the command imports
    torch and transformers: a typo costs a fraction of a second, not ten seconds of imports. A Hub id is checked where
    the model is loaded (the network call stays in one place). Commands call it after their output check."""
    from pathlib import Path

    from ..utils import looks_local

    if isinstance(value, str) and value.strip() and (looks_local(value) or Path(value).expanduser().exists()):
        from ..loading import resolve_model_path

        resolve_model_path(value, check_hub=False)


def _load_dataset(args):
    if not args.dataset:
        return None
    import datasets

    from ..data.sources import open_dataset
    from ..errors import VlmcompressError

    ds = open_dataset(args.dataset, split=args.split)
    if isinstance(ds, datasets.DatasetDict):
        if args.split not in ds:
            raise VlmcompressError(f"data set {args.dataset!r} has no split {args.split!r} (it has {', '.join(ds)})")
        ds = ds[args.split]
    return ds


def _tower_lists(items, what):
    """["vision:3,5", "text:1", "vision:7"] -> {"vision": [3, 5, 7], "text": [1]}: repeated towers accumulate."""
    from ..errors import VlmcompressError

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
    from ..errors import VlmcompressError

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
    from ..errors import VlmcompressError

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
    from ..evaluation import NO_EVAL, embedded_images_per_number, load_templates, resolve_eval_set
    from ..loading import resolve_model_path

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
    from ..evaluation import evaluate_model

    return lambda model, folder: evaluate_model(model, processor, model_path=folder, **eval_kwargs)


def _stage_kwargs(args, processor, path, before, eval_kwargs) -> dict:
    """What ``workflows.stages`` runners take from a parsed command line."""
    return dict(base_model=path, before=before, evaluate=_evaluator(args, processor, eval_kwargs),
                latency_rounds=args.latency_rounds, latency_batch_size=args.latency_batch_size,
                overwrite=args.overwrite)


def _print_finished(args, before, report):
    from ..checkpoint import load_hint
    from ..report import format_metrics_table

    if not args.no_eval:
        print(format_metrics_table({"before": before, "after": report["after"]}))
    print(f"wrote {args.output_dir}; it loads with {load_hint(report['loading'])}")
