"""``compression_report.json``: the one format every command and recipe writes.

Model cards, plots and benchmarks read it. Schema (format_version 1)::

    {"format_version": 1, "vlmcompress_version": "...", "base_model": "..." | null, "model_family": "clip",
     "steps": [{"method": "...", ...method's own fields...}],
     "before": METRICS | null, "after": METRICS | null,
     "environment": {"device": "...", "threads": 2, "torch": "...", "transformers": "...",
                     "bitsandbytes": "..." | null, ...}}

    METRICS = {"params": int, "size_bytes": int, "memory_bytes": int, "latency_ms": float,
               "latency_batch_size": int, "zero_shot_accuracy": float, "zero_shot_accuracy_heldout": float,
               "recall_at_1_i2t": float, "recall_at_1_t2i": float, "recall_at_5_i2t": float,
               "recall_at_5_t2i": float, "caption_accuracy": float, "caption_accuracy_heldout": float}

Every METRICS key is present; a metric that was not measured is ``null``, never guessed. The protocols on a user's
evaluation set add OPTIONAL_METRICS (checked when present, not required, so older reports stay valid):
``zero_shot_top5_accuracy``, ``zero_shot_mean_per_class_recall``, ``recall_at_10_i2t``, ``recall_at_10_t2i``,
``bleu_4``, ``rouge_l``; a run without an evaluation set has ``eval_dataset: null`` and an ``accuracy_note``. Extra keys
are allowed (the harness adds ``latency_threads``, ``latency_dtype``, ``latency_device``, ``eval_dataset`` ...).
Accuracies and recalls are fractions in [0, 1].

Pruning steps record what they removed in the base model's original numbering::

    {"method": "head_pruning", "removed_heads": {"vision": {"0": [1, 3]}, "text": {...}}}
    {"method": "layer_pruning", "removed_layers": {"vision": [3, 5]}}
    {"method": "mlp_pruning", "removed_neurons": {"vision": {"0": [...]}}}

Head and MLP steps chosen by a ratio add ``importance``, ``ratio``, ``scope`` and, when scores were computed on
calibration data in the run, ``calibration_samples``.

Quantization steps say what ``config.json``'s ``quantization_config`` does, and why each Linear kept full precision::

    {"method": "quantization", "backend": "bitsandbytes", "bits": 4, "quant_type": "nf4" | "fp4" | "llm_int8",
     "double_quant": true, "compute_dtype": "float32", "dtype": "float32", "towers": ["vision", "text"],
     "skipped_modules": [...llm_int8_skip_modules...], "skipped_by_default": [...], "skipped_by_user": [...],
     "skipped_for_shape": [...], "quantized_linears": 32, "full_precision_linears": 2, "quantize_embeddings": false}
    {"method": "qlora", "r": 8, "alpha": 16, "dropout": 0.0, "adapted_linears": 48, "trainable_params": 73728,
     "max_steps": 150, "loss": "contrastive", "kept": "adapter" | "merged"}

Any step may also carry ``"metrics": METRICS`` (measured right after it: an intermediate point of the model card's
plot) and ``"training": TRAINING`` (what ``cards.ModelCardCallback.training_record()`` collected from a Trainer run,
or a training loop of our own wrote in the same shape; the validator checks it, and ``upgrade_report`` moves older
reports' top-level ``loss_log`` and ``[step, loss]`` pairs into it)::

    TRAINING = {"hyperparameters": {name: value},        # non-default TrainingArguments + what the recipe passed in
                "loss_log": [{"step": int, "loss": float, ...}],   # every logged key, e.g. "loss_logit", "learning_rate"
                "eval_log": [{"step": int, "eval_loss": float, ...}],
                "train_runtime_s": float | null, "global_step": int | null}

A top-level ``"loading": {"kind": "stock" | "remote_code" | "bitsandbytes", "class": "...", "adapter": "lora"?}``
(from ``modeling.save_compressed``) says how the checkpoint loads; the model card's snippet follows it (reports
before 0.1 wrote the kind under ``"loading"``; ``upgrade_report`` renames it).

A top-level ``"effective_settings": {kind: {setting: value}}`` (``JsonConfig.effective()`` of each method config the
command ran, e.g. ``"pruning"``, with the library's defaults filled in) lets a committed result be checked against
today's defaults (tests/test_staleness.py); reports written before it have none.

Readers must accept older reports: ``read_report`` fills keys added since with ``null``.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

FORMAT_VERSION = 1
from .io import REPORT_FILENAME  # noqa: E402 - defined once, in the module below this one
from .steps import step_kind  # noqa: E402 - looked up by method; the kinds load on first use

METRIC_TYPES = {
    "params": int,
    "size_bytes": int,
    "memory_bytes": int,
    "latency_ms": float,
    "latency_batch_size": int,
    "zero_shot_accuracy": float,
    "zero_shot_accuracy_heldout": float,
    "recall_at_1_i2t": float,
    "recall_at_1_t2i": float,
    "recall_at_5_i2t": float,
    "recall_at_5_t2i": float,
    "caption_accuracy": float,
    "caption_accuracy_heldout": float,
}
OPTIONAL_METRICS = {
    "zero_shot_top5_accuracy": float,
    "zero_shot_mean_per_class_recall": float,
    "recall_at_10_i2t": float,
    "recall_at_10_t2i": float,
    "bleu_4": float,
    "rouge_l": float,
}
FRACTION_KEYS = {k for k in (*METRIC_TYPES, *OPTIONAL_METRICS) if k.startswith(("zero_shot", "recall", "caption"))
                 or k in ("bleu_4", "rouge_l")}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")


class ReportError(ValueError):
    """A report that does not follow the schema."""


def empty_metrics() -> dict:
    return {k: None for k in METRIC_TYPES}


def environment() -> dict:
    import torch
    import transformers

    try:
        import bitsandbytes

        bnb = bitsandbytes.__version__
    except Exception:  # noqa: BLE001 - missing or without a backend: not measured
        bnb = None
    device = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bitsandbytes": bnb,
        "python": platform.python_version(),
    }


def new_report(*, base_model, model_family, steps, before, after, model_name=None) -> dict:
    from . import __version__

    report = {
        "format_version": FORMAT_VERSION,
        "vlmcompress_version": __version__,
        "base_model": base_model,
        "model_family": model_family,
        "steps": list(steps),
        "before": before,
        "after": after,
        "environment": environment(),
    }
    if model_name:
        report["model_name"] = model_name
    return report


def _check_metrics(name, metrics, problems):
    if metrics is None:
        return
    if not isinstance(metrics, dict):
        problems.append(f"{name} must be an object or null")
        return
    for key, typ in (*METRIC_TYPES.items(), *OPTIONAL_METRICS.items()):
        if key not in metrics:
            if key in METRIC_TYPES:
                problems.append(f"{name}.{key} is missing (use null when not measured)")
            continue
        value = metrics[key]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name}.{key} must be a number or null, got {type(value).__name__}")
            continue
        if typ is int and not float(value).is_integer():
            problems.append(f"{name}.{key} must be an integer, got {value}")
        if value < 0:
            problems.append(f"{name}.{key} must not be negative, got {value}")
        if key in FRACTION_KEYS and value > 1:
            problems.append(f"{name}.{key} is a fraction in [0, 1], got {value}")


def known_sites() -> tuple:
    """Tower and head-site names of every registered family (the adapters own them)."""
    from .adapters import known_head_sites

    return known_head_sites()


def check_int_list(where, value, problems):
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
        problems.append(f"{where} must be a list of non-negative integers")


def check_per_layer(where, value, problems):
    if not isinstance(value, dict):
        problems.append(f"{where} must map tower names to objects")
        return
    sites = known_sites()
    for tower, layers in value.items():
        if tower not in sites:
            problems.append(f"{where} has unknown tower {tower!r} (expected one of {', '.join(sites)})")
        if not isinstance(layers, dict):
            problems.append(f"{where}.{tower} must map layer numbers (as strings) to lists")
            continue
        for layer, items in layers.items():
            if not str(layer).isdigit():
                problems.append(f"{where}.{tower} key {layer!r} is not a layer number")
            check_int_list(f"{where}.{tower}.{layer}", items, problems)


def _log_rows(log) -> list:
    """A loss or evaluation log in the one shape, [{"step": int, "loss": float, ...}]; older reports wrote
    ``[step, loss]`` pairs."""
    rows = []
    for row in log or []:
        if isinstance(row, (list, tuple)) and len(row) == 2:
            row = {"step": row[0], "loss": row[1]}
        rows.append(row)
    return rows


def normalize_training(step: dict) -> dict:
    """The step with its training record as ``{"training": TRAINING}``: a top-level ``loss_log``/``eval_log`` (older
    recipes) moves inside, ``[step, loss]`` pairs become rows."""
    if not isinstance(step, dict):
        return step
    step = dict(step)
    training = step.get("training")
    if not isinstance(training, dict) and (step.get("loss_log") or step.get("eval_log")):
        training = {}
    if isinstance(training, dict):
        training = dict(training)
        for key in ("loss_log", "eval_log"):
            if key in step and not training.get(key):
                training[key] = step.pop(key)
            if key in training:
                training[key] = _log_rows(training[key])
        step["training"] = training
    return step


def _check_training(where, training, problems):
    if not isinstance(training, dict):
        problems.append(f"{where} must be an object")
        return
    for key in ("loss_log", "eval_log"):
        rows = training.get(key)
        if rows is None:
            continue
        if not isinstance(rows, list):
            problems.append(f"{where}.{key} must be a list of rows")
            continue
        for j, row in enumerate(rows):
            if not isinstance(row, dict) or isinstance(row.get("step"), bool) or not isinstance(row.get("step"), (int, float)):
                problems.append(f"{where}.{key}[{j}] must be an object with a numeric 'step'")
                break
            bad = [k for k, v in row.items() if v is not None and not isinstance(v, (int, float, str))]
            if bad:
                problems.append(f"{where}.{key}[{j}].{bad[0]} must be a number")
                break


def _check_step(i, step, problems):
    where = f"steps[{i}]"
    if not isinstance(step, dict) or not isinstance(step.get("method"), str) or not step["method"]:
        problems.append(f"{where} must be an object with a non-empty 'method'")
        return
    method = step["method"]
    if "training" in step:
        _check_training(f"{where}.training", step["training"], problems)
    for key in ("loss_log", "eval_log"):
        if key in step:
            problems.append(f"{where}.{key} belongs in {where}.training.{key}")
    kind = step_kind(method)
    if kind is not None and kind.validate is not None:
        kind.validate(step, where, problems)


def validate_report(report) -> dict:
    """Raise ReportError listing every problem; return the report when it follows the schema."""
    problems: list[str] = []
    if not isinstance(report, dict):
        raise ReportError("a compression report must be a JSON object")
    if report.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version must be {FORMAT_VERSION}, got {report.get('format_version')!r}")
    for key in ("vlmcompress_version", "model_family"):
        if not isinstance(report.get(key), str) or not report.get(key):
            problems.append(f"{key} must be a non-empty string")
    if "base_model" not in report or not (report["base_model"] is None or isinstance(report["base_model"], str)):
        problems.append("base_model must be a string or null")
    steps = report.get("steps")
    if not isinstance(steps, list):
        problems.append("steps must be a list")
    else:
        for i, step in enumerate(steps):
            _check_step(i, step, problems)
    for name in ("before", "after"):
        if name not in report:
            problems.append(f"{name} is missing (use null when not measured)")
        else:
            _check_metrics(name, report[name], problems)
    env = report.get("environment")
    if not isinstance(env, dict):
        problems.append("environment must be an object")
    else:
        for key in ("device", "threads", "torch", "transformers", "bitsandbytes"):
            if key not in env:
                problems.append(f"environment.{key} is missing")
    if problems:
        raise ReportError("invalid compression report: " + "; ".join(problems))
    return report


def upgrade_report(report: dict) -> dict:
    """Bring an older report up to the current schema (keys added since are filled with null)."""
    report = dict(report)
    report.setdefault("format_version", FORMAT_VERSION)
    report.setdefault("base_model", None)
    report.setdefault("steps", [])
    if isinstance(report["steps"], list):
        report["steps"] = [normalize_training(step) for step in report["steps"]]
    loading = report.get("loading")
    if isinstance(loading, dict) and "loading" in loading and "kind" not in loading:
        loading = dict(loading)
        loading["kind"] = loading.pop("loading")
        report["loading"] = loading
    for name in ("before", "after"):
        metrics = report.get(name)
        if isinstance(metrics, dict):
            report[name] = {**empty_metrics(), **metrics}
        else:
            report.setdefault(name, None)
    env = dict(report.get("environment") or {})
    for key in ("device", "threads", "torch", "transformers", "bitsandbytes"):
        env.setdefault(key, None)
    report["environment"] = env
    return report


def write_report(report: dict, folder) -> Path:
    from .io import atomic_write_text

    validate_report(report)
    path = Path(folder) / REPORT_FILENAME
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    return path


def read_report(path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"no {REPORT_FILENAME} at {path.parent}; run a vlmcompress command that writes one")
    try:
        report = json.loads(path.read_text())
    except ValueError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}): the report is damaged; re-run the command that wrote "
                          "the folder") from None
    if not isinstance(report, dict):
        raise ReportError(f"{path} is not a compression report (expected a JSON object)")
    return validate_report(upgrade_report(report))


def weights_size_bytes(folder) -> int:
    """Bytes of the weight files in a checkpoint folder (what a user downloads for the model itself)."""
    folder = Path(folder)
    # a recipe's resumable Trainer checkpoints are not the model a user downloads
    files = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
             and not any(part.startswith("checkpoint-") for part in p.relative_to(folder).parts[:-1])]
    if not files:
        raise FileNotFoundError(f"no weight files (*.safetensors, *.bin) in {folder}")
    return sum(p.stat().st_size for p in files)


def format_metric(key, value, other=str) -> str:
    """One metric for people: percentages, MiB, thousands separators, ms; ``other`` formats anything else."""
    if value is None:
        return "not measured"
    if key in FRACTION_KEYS:
        return f"{100 * value:.2f}%"
    if key in ("size_bytes", "memory_bytes"):
        return f"{value / 2**20:.2f} MiB"
    if key == "params":
        return f"{int(value):,}"
    if key == "latency_ms":
        return f"{value:.2f} ms"
    return other(value)


TABLE_ROWS = (
    ("params", "parameters"),
    ("size_bytes", "weights on disk"),
    ("memory_bytes", "memory footprint"),
    ("latency_ms", "latency (median batch)"),
    ("latency_batch_size", "latency batch size"),
    ("zero_shot_accuracy", "zero-shot acc (seen/all)"),
    ("zero_shot_accuracy_heldout", "zero-shot acc (held-out)"),
    ("zero_shot_top5_accuracy", "zero-shot top-5 acc"),
    ("zero_shot_mean_per_class_recall", "zero-shot mean per-class recall"),
    ("recall_at_1_i2t", "recall@1 image->text"),
    ("recall_at_5_i2t", "recall@5 image->text"),
    ("recall_at_10_i2t", "recall@10 image->text"),
    ("recall_at_1_t2i", "recall@1 text->image"),
    ("recall_at_5_t2i", "recall@5 text->image"),
    ("recall_at_10_t2i", "recall@10 text->image"),
    ("caption_accuracy", "caption accuracy (seen/all)"),
    ("caption_accuracy_heldout", "caption accuracy (held-out)"),
    ("bleu_4", "BLEU-4"),
    ("rouge_l", "ROUGE-L"),
)


CAPTION_KEYS = ("caption_accuracy", "caption_accuracy_heldout", "bleu_4", "rouge_l")


def table_rows(metrics_dicts) -> list:
    """TABLE_ROWS for the task measured: caption rows for a captioner, zero-shot/recall rows otherwise (unmeasured
    rows of the task stay, shown as not measured)."""
    metrics_dicts = [m or {} for m in metrics_dicts]
    captions = any(m.get(k) is not None for m in metrics_dicts for k in CAPTION_KEYS)
    retrieval = any(m.get(k) is not None for m in metrics_dicts for k in FRACTION_KEYS if k not in CAPTION_KEYS)
    measured = {k for m in metrics_dicts for k, v in m.items() if v is not None}
    return [(key, label) for key, label in TABLE_ROWS
            if (key not in OPTIONAL_METRICS or key in measured)
            and ((key in CAPTION_KEYS and captions) or (key in FRACTION_KEYS and key not in CAPTION_KEYS and (retrieval or not captions))
                 or key not in FRACTION_KEYS)]


#: fewer interleaved latency rounds than this give a ratio with no spread worth showing: printed as indicative, never
#: in a card
MIN_LATENCY_ROUNDS = 3
#: interleaved rounds of the side-by-side latency measurement, in every command, recipe and Python entry point
LATENCY_ROUNDS = 5
#: batch size of the timed forward, in every command, recipe and Python entry point
LATENCY_BATCH_SIZE = 32
#: ``evaluate``: timed batches after the warm-up ones, and the batch size of encoding (not timed)
LATENCY_REPEATS = 7
EVAL_BATCH_SIZE = 256
#: the evaluation set's options, in every command, recipe (``data:``), DataArguments and Python entry point; the first
#: of each tuple is the default
EVAL_SPLIT = "test"
EVAL_TASKS = ("auto", "zero_shot", "retrieval", "captioning")
ON_BAD_SAMPLE = ("error", "skip")
TEMPLATES = "default"


def latency_ratio_text(ratio: dict, what: str = "after/before") -> str:
    """One line for a side-by-side latency ratio (``latency_vs_base``): the median ratio with its range over the
    rounds, or, under MIN_LATENCY_ROUNDS rounds, the figure alone marked indicative."""
    rounds = ratio.get("rounds") or 1
    if rounds < MIN_LATENCY_ROUNDS:
        spread = (f"{'a single round' if rounds == 1 else f'{rounds} rounds'}: indicative, no range "
                  f"(--latency-rounds {MIN_LATENCY_ROUNDS} or more gives one)")
    else:
        spread = f"range {ratio['ratio_min']:.2f}-{ratio['ratio_max']:.2f} over {rounds} interleaved rounds"
    return f"latency {what}: {ratio['ratio']:.2f}x ({spread}, batch {ratio.get('batch_size')}, {ratio.get('threads')} threads)"


def _side_by_side(columns: dict) -> tuple[dict, dict | None]:
    """Two columns whose second was timed against the first in one run (``latency_vs_base``): both latencies become
    that run's medians, so the table and the ratio line never disagree (two runs' figures on a shared machine are
    not comparable)."""
    names = list(columns)
    ratio = (columns[names[-1]] or {}).get("latency_vs_base") if len(names) == 2 else None
    if not isinstance(ratio, dict) or not ratio.get("base_ms") or not ratio.get("model_ms"):
        return columns, None
    import statistics

    first, second = (dict(columns[n] or {}) for n in names)
    first["latency_ms"], second["latency_ms"] = statistics.median(ratio["base_ms"]), statistics.median(ratio["model_ms"])
    return {names[0]: first, names[1]: second}, ratio


def format_metrics_table(columns: dict) -> str:
    """A plain-text table: one row per metric, one column per named METRICS dict. When the second of two columns was
    timed side by side against the first, both show that measurement and a line gives the ratio ("SECOND/FIRST")."""
    columns, ratio = _side_by_side(columns)
    names = list(columns)
    rows = [["metric", *names]]
    for key, label in table_rows(columns.values()):
        rows.append([label, *(format_metric(key, (columns[n] or {}).get(key)) for n in names)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    extra = []
    for n in names:
        m = columns[n] or {}
        if m.get("latency_ms") is not None:
            extra.append(f"{n}: latency on {m.get('latency_device')} {m.get('latency_dtype')}, "
                         f"{m.get('latency_threads')} threads, batch {m.get('latency_batch_size')} "
                         f"(image+text forward, median of {m.get('latency_repeats')} timed batches)")
    notes = dict.fromkeys((columns[n] or {}).get("accuracy_note") for n in names)
    extra += [note for note in notes if note]
    if ratio is not None:
        extra.append(latency_ratio_text(ratio, f"{names[1]}/{names[0]}")
                     + "; the latency row above is this side-by-side measurement")
    return "\n".join(lines + extra)
