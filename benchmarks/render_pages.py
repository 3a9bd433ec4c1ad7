#!/usr/bin/env python
"""Render the benchmark pages of the docs from the benchmarks' JSON results.

    python benchmarks/render_pages.py                        # benchmarks/results/*.json -> docs/benchmarks/*.md
    python benchmarks/render_pages.py --results DIR --out DIR
    python benchmarks/render_pages.py --check                # exit 1 when a committed page is stale

One page per result file (``<name>.json`` -> ``<name>.md``), plus ``index.md`` listing them. Each page states the
settings the JSON records (data set and number of test images, latency batch size, repeats and rounds, threads,
dtype, device, OpenMP wait policy, versions and hardware where recorded) and says "not recorded" for what it does not
record; a metric that is null reads "not measured". Nothing is measured here and no number is typed by hand: every
figure on a page comes from its JSON, so re-rendering the same JSON gives the same page (``tests/test_docs.py``
checks that the committed pages are up to date).

Known shapes:

- ``pruning.json`` (``benchmarks/pruning.py --json``): ``{variant: METRICS}``, the first variant being the base.
- ``quantization.json`` (``benchmarks/quantization.py --json``): ``{"model": ..., "variants": {name: {"metrics":
  METRICS, "weight_bytes": {...}, "step": {...}, "drop_seen_points": ..., "drop_heldout_points": ...}}}``.
- ``onnx.json`` (``benchmarks/onnx_runtime.py --json``): ``{"environment": {...}, "settings": {...}, "rows": {name: ROW},
  "chain": {...} | null, "targets": {key: {"target", "threshold", "measured", "met", ...}}}``, ROW holding the model,
  runtime, precision, bytes, ``metrics`` (METRICS or null) and ``latency`` per batch size (median / min / max over
  interleaved rounds, and the per-round speed-up against its ``reference`` row).
- ``real_size.json`` (``benchmarks/real_size.py --json``): ``{"environment", "settings", "clip": {variant: {...,
  "batches": {batch: {"flops", "flop_ratio", "latency_ms", "latency_ratio", "latency_over_flop_ratio", "memory",
  "target"}}}}, "blip": {variant: {..., "batches": {...}}}, "distillation": {teacher: {...}}, "targets": {...}}``.
- anything else shaped ``{variant: METRICS}`` or ``{"variants": {variant: METRICS}}``: a generic table.

Top-level keys other than the variants (e.g. ``"model"``, ``"environment"``, ``"settings"``) are listed as recorded
settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__:  # imported as benchmarks.render_pages (tests)
    from ._common import NOT_MEASURED, mean_sd, missing, pct, table
else:  # run as a script: its folder is first on sys.path
    from _common import NOT_MEASURED, mean_sd, missing, pct, table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ROOT / "docs" / "benchmarks"
NOT_RECORDED = "not recorded"

#: what produced each known result file (shown on its page)
SOURCES = {
    "pruning": ("benchmarks/pruning.py", "one-shot pruned variants of a model, measured side by side in one process right "
                "after the base model; no recovery training"),
    "quantization": ("benchmarks/quantization.py", "bitsandbytes variants of a model, each quantized, saved and measured "
                     "from its folder, on CPU with bitsandbytes' own kernels"),
    "real_size": ("benchmarks/real_size.py", "a ViT-B/32-sized CLIP and a BLIP-base-sized captioner with random "
                  "weights, pruned and quantized with vlmcompress, FLOPs counted and latency timed side by side in "
                  "interleaved rounds in one process, memory measured in a fresh process each"),
    "evidence_clip": ("benchmarks/run.py --suite clip", "every method against its baselines on the embedded CLIP "
                      "teacher: four distilled students, pruning before and after recovery by importance, combined "
                      "chains, and the Pareto frontier of accuracy kept vs bytes"),
    "evidence_clip_small": ("benchmarks/run.py --suite clip_small", "the <= 10% tier of the embedded CLIP teacher: one "
                            "distilled student quantized three ways, down to every Linear in nf4 with double "
                            "quantization and the rest in bf16, and the half-depth chain in that layout"),
    "evidence_blip": ("benchmarks/run.py --suite blip", "the same for the embedded BLIP captioner: four distilled "
                      "students, pruning before and after recovery by importance, and the Pareto frontier"),
    "evidence_blip_retrieval": ("benchmarks/run.py --suite blip_retrieval", "BLIP retrieval: a retrieval teacher "
                                "trained on the digits in the run, four students distilled with the ITC and ITM terms, "
                                "the ITM term left out, heads/MLP pruning with recovery, and the Pareto frontier"),
    "evidence_generalization": ("benchmarks/run.py --suite generalization", "what compression keeps on the numbers "
                                "no training caption showed: distillation variants and pruning by importance, each "
                                "over 3 seeds (mean, sd, the seed-to-seed noise)"),
    "evidence_generalization_long": ("benchmarks/run.py --suite generalization_long", "the same at 1800 steps: "
                                     "the default distillation against contrastive-only, the narrow tier (<= 25% "
                                     "of the parameters) and ablation on fewer calibration samples, each over 3 "
                                     "seeds, and WiSE-FT interpolations of the distilled students"),
    "real_size_importance": ("benchmarks/real_size.py --importance-cost", "what scoring every head and neuron costs on a "
                             "ViT-B/32-sized CLIP (random weights) per importance, at its default calibration settings"),
    "streaming": ("benchmarks/streaming.py", "distillation from streamed WebDataset shards, with the teacher on the "
                  "fly or read from a teacher store, against the map-style default with the in-memory teacher cache: "
                  "training samples/s, and peak resident memory over one pass of a 1x and a 10x set"),
    "recipes": ("benchmarks/recipes.py", "the shipped recipes run as `vlmcompress compress recipes/NAME.yaml` runs "
                "them, over distillation seeds: the final checkpoint's seen and held-out accuracy and bytes, mean and "
                "sd"),
    "onnx": ("benchmarks/onnx_runtime.py", "PyTorch fp32, ONNX Runtime fp32 and int8 and bitsandbytes int8/nf4 of the embedded "
             "teacher, a distilled student and a ViT-B/32-sized image tower, timed side by side in interleaved rounds "
             "in one process"),
}
#: settings read from the base variant's METRICS: (key, label)
METRIC_SETTINGS = (
    ("eval_dataset", "evaluation data"),
    ("eval_images", "test images"),
    ("latency_batch_size", "latency batch size"),
    ("latency_repeats", "timed batches per latency figure (after warm-up)"),
    ("latency_threads", "torch threads"),
    ("latency_dtype", "dtype"),
    ("latency_device", "device"),
    ("omp_wait_policy", "OMP_WAIT_POLICY"),
)
#: settings that say which machine and software measured; listed as "not recorded" when absent
#: labels for the keys of a result file's top-level ``environment`` / ``settings`` (others are shown by their key)
RECORDED_LABELS = {
    "model": "model", "images_per_number": "test images per number", "eval_images": "test images",
    "threads": "threads", "cpu_count": "CPUs", "python": "python version", "latency_batch_size": "latency batch size",
    "latency_rounds": "interleaved latency rounds", "latency_repeats": "timed batches per latency figure",
    "dtype": "dtype", "activation_dtype": "activation dtype", "qlora_steps": "QLoRA steps (0: no QLoRA row)",
    "recovery_training": "recovery training", "omp_wait_policy": "OMP_WAIT_POLICY",
}
MACHINE_KEYS = (("hardware", "hardware (CPU/GPU model)"), ("torch", "torch version"),
                ("transformers", "transformers version"), ("bitsandbytes", "bitsandbytes version"))


# --- formatting ------------------------------------------------------------------------------------------------


def mib(value) -> str:
    return NOT_MEASURED if missing(value) else f"{value / 2**20:.2f} MiB"


def kib(value) -> str:
    return NOT_MEASURED if missing(value) else f"{value / 1024:,.1f} KiB"


def ms(value) -> str:
    return NOT_MEASURED if missing(value) else f"{value:.2f} ms"


def count(value) -> str:
    return NOT_MEASURED if missing(value) else f"{int(value):,d}"


def ratio(value, base, digits: int = 2) -> str:
    if missing(value) or missing(base) or not base:
        return NOT_MEASURED
    return f"{value / base:.{digits}f}"


def points(value) -> str:
    return NOT_MEASURED if missing(value) else f"{value:+.2f}"


def plain(value) -> str:
    if missing(value):
        return NOT_RECORDED
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {plain(v)}" for k, v in value.items())
    return str(value)


def model_name(value) -> str:
    """A recorded model: a Hub id as it is; a local path by its folder name (the machine's path says nothing)."""
    if missing(value):
        return NOT_RECORDED
    text = str(value)
    if text.startswith(("/", "~", ".")) or "\\" in text or text.count("/") > 1:
        return Path(text.rstrip("/\\")).name + " (a local folder)"
    return text


# --- settings --------------------------------------------------------------------------------------------------
def split_variants(data: dict) -> tuple[dict, dict]:
    """(variants, other top-level keys) of a result file."""
    if isinstance(data.get("variants"), dict):
        return data["variants"], {k: v for k, v in data.items() if k != "variants"}
    variants = {k: v for k, v in data.items() if isinstance(v, dict) and ("params" in v or "metrics" in v)}
    return variants, {k: v for k, v in data.items() if k not in variants}


def _metrics_of(entry: dict) -> dict:
    return entry.get("metrics", entry) if isinstance(entry, dict) else {}


def settings_lines(variants: dict, extra: dict, *, latency_note: str) -> list[str]:
    base = _metrics_of(next(iter(variants.values()), {}))
    recorded = {}
    for key, value in extra.items():
        if key == "model":
            continue
        if isinstance(value, dict):
            recorded.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            recorded[key] = value
    lines = [f"- model: {model_name(extra.get('model'))}"]
    for key, label in METRIC_SETTINGS:
        value = base.get(key)
        if key == "eval_images" and not missing(value):
            value = f"{int(value):,d} images"
        if key == "omp_wait_policy" and missing(value) and key in base:
            value = "unset (the OpenMP default)"
        if key == "omp_wait_policy" and value == "ACTIVE":
            value = ("ACTIVE (spinning OpenMP threads, which vlmcompress keeps for training processes: these "
                     "latencies are not what `prune` and `quantize` measure; see "
                     "[../checkpoints.md](../checkpoints.md#threads-and-latency))")
        lines.append(f"- {label}: {plain(value)}")
    lines.append(f"- latency: {latency_note}")
    for key, label in MACHINE_KEYS:
        found = [v for k, v in recorded.items() if k == key or k.endswith("." + key)]
        if key == "hardware":
            found += [v for k, v in recorded.items() if k.endswith((".device", ".cpu", ".processor", ".gpu"))
                      or k in ("device", "cpu", "processor", "gpu")]
        lines.append(f"- {label}: {plain(found[0]) if found else NOT_RECORDED}")
    shown = {k for k, _ in MACHINE_KEYS} | {"device", "cpu", "processor", "gpu"}
    for key, value in recorded.items():
        last = key.rsplit(".", 1)[-1]
        if last in shown:
            continue
        if last == "omp_wait_policy" and missing(value):
            value = "unset (the OpenMP default)"
        elif last == "model":
            value = model_name(value)
        label = RECORDED_LABELS.get(last)
        lines.append(f"- {label} (`{key}`): {plain(value)}" if label else f"- `{key}`: {plain(value)}")
    return lines


def header_lines(name: str, title: str) -> list[str]:
    source, what = SOURCES.get(name, (None, None))
    lines = [f"# {title}", "",
             f"<!-- generated by benchmarks/render_pages.py from benchmarks/results/{name}.json: do not edit -->", ""]
    if source:
        lines += [f"Produced by `{source}` ({what}), rendered by `benchmarks/render_pages.py` from "
                  f"`benchmarks/results/{name}.json`. Figures are from one run on one machine: compare rows within "
                  "this page, not with figures measured elsewhere.", ""]
    else:
        lines += [f"Rendered by `benchmarks/render_pages.py` from `benchmarks/results/{name}.json`.", ""]
    return lines


# --- pages -----------------------------------------------------------------------------------------------------
def _round_ratio(m: dict, base: dict) -> str:
    """The per-round latency ratio to the base (median, min-max) where recorded, else the ratio of the figures."""
    r = m.get("latency_vs_base")
    if isinstance(r, dict) and not missing(r.get("ratio")):
        return f"{r['ratio']:.2f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f})"
    return ratio(m.get("latency_ms"), base.get("latency_ms"))


def render_pruning(name: str, data: dict) -> str:
    variants, extra = split_variants(data)
    base_name = next(iter(variants))
    base = _metrics_of(variants[base_name])
    rounds = base.get("latency_rounds")
    interleaved = isinstance(rounds, list)
    single = any("latency_ms_single_run" in _metrics_of(e) for e in variants.values())
    note = (f"median over {len(rounds)} interleaved rounds in which the base model and every variant take turns "
            "(each turn the median of the timed image+text forwards)" if interleaved else
            "median of the timed image+text forwards of each variant, each variant measured once in turn (not "
            "interleaved)")
    lines = header_lines(name, "Benchmark: one-shot pruning")
    lines += ["## Settings (as recorded in the JSON)", ""]
    lines += settings_lines(variants, extra, latency_note=note)
    lines += ["", "## Results", ""]
    rows = []
    for variant, entry in variants.items():
        m = _metrics_of(entry)
        row = [variant, count(m.get("params")), ratio(m.get("params"), base.get("params")), mib(m.get("size_bytes")),
               ms(m.get("latency_ms")), _round_ratio(m, base)]
        if single:
            row.append(ms(m.get("latency_ms_single_run")))
        rows.append(row + [pct(m.get("zero_shot_accuracy")), pct(m.get("zero_shot_accuracy_heldout")),
                           pct(m.get("recall_at_1_i2t")), pct(m.get("recall_at_1_t2i"))])
    header = ["variant", "parameters", "× base", "weights on disk", "latency", "× base"]
    header += ["latency (single run)"] if single else []
    lines += table(header + ["zero-shot (seen)", "zero-shot (held-out)", "R@1 image→text", "R@1 text→image"], rows)
    if interleaved:
        latency_text = ("Latency: median over the interleaved rounds; its `× base` is the median (min–max) over the "
                        f"rounds of the per-round ratio to the `{base_name}` row" +
                        ("; `latency (single run)` is each variant's own `evaluate_model` figure, measured one "
                         "after the other, which moves between runs on a shared machine." if single else "."))
    else:
        latency_text = ("Latencies measured one after the other in a single run on a shared machine move between "
                        "runs; the CLI's `prune` measures the ratio in interleaved rounds instead (see "
                        "[../checkpoints.md](../checkpoints.md)).")
    lines += ["", f"`× base`: the variant's figure divided by the `{base_name}` row's. Zero-shot: 100-way accuracy "
              "with prompt ensembling on numbers seen in training and on the held-out numbers (see "
              "[../embedded.md](../embedded.md)); R@1: recall@1. " + latency_text, ""]
    configs = [(v, e.get("pruning_config")) for v, e in variants.items() if isinstance(e, dict) and e.get("pruning_config")]
    if configs:
        lines += ["## Pruning configurations (as recorded)", ""]
        lines += table(["variant", "PruningConfig (what it removes, and how units are ranked)"],
                       [[v, plain(_pruning_fields(c))] for v, c in configs], ["l", "l"])
        lines += ["", "The JSON holds each variant's whole `PruningConfig.to_dict()`.", ""]
        lines.append("")
    return "\n".join(lines)


#: PruningConfig fields a pruning page shows (when set); the JSON keeps the whole config
PRUNING_SHOWN = ("towers", "head_sites", "head_ratio", "head_scope", "head_plan", "mlp_ratio", "mlp_scope", "mlp_plan",
                 "drop_layers", "layer_strategy", "keep_every", "remove_layers", "importance")


def _pruning_fields(config: dict) -> dict:
    shown = {k: config[k] for k in PRUNING_SHOWN if config.get(k) not in (None, 0, 0.0, [], {})}
    for scope, what in (("head_scope", "head_ratio"), ("mlp_scope", "mlp_ratio")):
        if not config.get(what):
            shown.pop(scope, None)
    return shown


def render_quantization(name: str, data: dict) -> str:
    variants, extra = split_variants(data)
    base = _metrics_of(next(iter(variants.values())))
    rounds = base.get("latency_rounds")
    note = ("median over interleaved rounds in which the variants take turns"
            + (f" ({len(rounds)} rounds)" if isinstance(rounds, list) else "")
            + "; the stock column is the same folder after a plain `from_pretrained` (bitsandbytes' own layout)")
    lines = header_lines(name, "Benchmark: bitsandbytes quantization")
    lines += ["## Settings (as recorded in the JSON)", ""]
    lines += settings_lines(variants, extra, latency_note=note)
    lines += ["", "## Results", ""]
    rows = []
    for variant, entry in variants.items():
        m, wb = _metrics_of(entry), entry.get("weight_bytes") or {}
        linear = wb.get("quantized_linear_ratio")
        rows.append([variant, kib(m.get("size_bytes")), kib(m.get("memory_bytes")),
                     "—" if missing(linear) else f"{linear:.3f}", pct(wb.get("token_embedding_share")),
                     ms(m.get("latency_ms")), ms(m.get("latency_ms_stock_reload")) if "latency_ms_stock_reload" in m else "—",
                     pct(m.get("zero_shot_accuracy"), 2), points(entry.get("drop_seen_points")),
                     pct(m.get("zero_shot_accuracy_heldout"), 2), points(entry.get("drop_heldout_points"))])
    lines += table(["variant", "disk", "memory", "Linear bytes × fp32", "token emb. share", "latency",
                    "latency (stock reload)", "zero-shot (seen)", "drop (points)", "zero-shot (held-out)",
                    "drop (points)"], rows)
    lines += ["", "Linear bytes × fp32: the quantized Linear weights with their scales against the same weights in "
              "fp32. Token emb. share: the text token embedding's share of the bytes on disk (bitsandbytes does not "
              "quantize embeddings; see [../quantization.md](../quantization.md)). Drop: accuracy points lost against "
              "the first row.", ""]
    return "\n".join(lines)


def render_generic(name: str, data: dict) -> str:
    variants, extra = split_variants(data)
    lines = header_lines(name, f"Benchmark: {name}")
    lines += ["## Settings (as recorded in the JSON)", ""]
    lines += settings_lines(variants, extra, latency_note="as measured by the benchmark")
    lines += ["", "## Results", ""]
    rows = [[variant, count(m.get("params")), mib(m.get("size_bytes")), ms(m.get("latency_ms")),
             pct(m.get("zero_shot_accuracy")), pct(m.get("zero_shot_accuracy_heldout")),
             pct(m.get("caption_accuracy")), pct(m.get("caption_accuracy_heldout"))]
            for variant, m in ((v, _metrics_of(e)) for v, e in variants.items())]
    lines += table(["variant", "parameters", "weights on disk", "latency", "zero-shot (seen)", "zero-shot (held-out)",
                    "caption acc. (seen)", "caption acc. (held-out)"], rows)
    lines.append("")
    return "\n".join(lines)


def _speed(s) -> str:
    if not isinstance(s, dict) or missing(s.get("median")):
        return NOT_MEASURED
    return f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def _ms_range(s) -> str:
    if not isinstance(s, dict) or missing(s.get("median")):
        return NOT_MEASURED
    return f"{s['median']:.2f} ms ({s['min']:.2f}–{s['max']:.2f})"


def _bytes(value) -> str:
    return NOT_MEASURED if missing(value) else f"{int(value):,d} B ({value / 2**20:.2f} MiB)"


def render_onnx(name: str, data: dict) -> str:
    env, st = data.get("environment") or {}, data.get("settings") or {}
    rows, chain, targets = data.get("rows") or {}, data.get("chain"), data.get("targets") or {}
    batches = [str(b) for b in st.get("batch_sizes") or []]
    lines = header_lines(name, "Benchmark: ONNX Runtime, PyTorch and bitsandbytes on CPU")
    lines += ["## Settings (as recorded in the JSON)", ""]
    lines += [f"- hardware (CPU/GPU model): {plain(st.get('hardware'))}",
              f"- device: {plain(env.get('device'))}; CPUs: {plain(env.get('cpu_count'))}",
              f"- torch version: {plain(env.get('torch'))}; transformers version: {plain(env.get('transformers'))}; "
              f"onnxruntime version: {plain(st.get('onnxruntime'))}; bitsandbytes version: {plain(env.get('bitsandbytes'))}; "
              f"python: {plain(env.get('python'))}",
              f"- torch threads: {plain(st.get('torch_threads'))}; ONNX Runtime intra-op threads: "
              f"{plain(st.get('onnxruntime_intra_op_threads'))}, inter-op threads: "
              f"{plain(st.get('onnxruntime_inter_op_threads'))}; both in one process ({plain(st.get('same_process'))})",
              f"- OMP_WAIT_POLICY: {'unset (the OpenMP default)' if missing(st.get('omp_wait_policy')) and 'omp_wait_policy' in st else plain(st.get('omp_wait_policy'))}",
              f"- dtype: {plain(st.get('dtype'))}",
              f"- latency batch sizes: {plain(st.get('batch_sizes'))}",
              f"- latency: {plain(st.get('rounds'))} interleaved rounds; in each round every batch size and every "
              f"variant is timed once ({plain(st.get('warmup_calls'))} untimed warm-up call(s), then the median of "
              f"at least {plain(st.get('timed_calls_per_figure'))} timed calls" + (
                  f", more for fast calls so that they last about {plain(st.get('min_time_per_figure_ms'))} ms (at most "
                  f"{plain(st.get('max_timed_calls_per_figure'))})" if "min_time_per_figure_ms" in st else "") +
              "), the order of the variants rotating from "
              "round to round; figures are the median (min–max) over rounds; speed-ups are computed per round "
              "against the reference row (PyTorch fp32 of the same model; the pruned tower against the unpruned one)",
              f"- evaluation data: {plain(st.get('eval_dataset'))}; test images: "
              f"{count(st.get('eval_images')) if not missing(st.get('eval_images')) else NOT_RECORDED} "
              f"({plain(st.get('images_per_number'))} per number)",
              f"- teacher: {plain(st.get('teacher'))}"]
    student = st.get("student")
    if isinstance(student, dict):
        made = student.get("made_here")
        how = (f"distilled by this run: `{made.get('command')}` ({made.get('wall_time_s'):.0f} s)"
               if isinstance(made, dict) else f"an existing folder, {model_name(student.get('path'))}")
        init = student.get("student_init_pruning") or {}
        shape = {k: init.get(k) for k in ("towers", "layer_strategy", "keep_every", "head_ratio", "mlp_ratio",
                                          "importance") if k in init}
        lines.append(f"- distilled student: {how}; {plain(student.get('distillation_global_step'))} of "
                     f"{plain(student.get('distillation_max_steps'))} steps at batch "
                     f"{plain(student.get('distillation_batch_size'))}, losses {plain(student.get('losses'))}; "
                     f"initialised from the teacher pruned with {plain(shape) if shape else NOT_RECORDED}")
    else:
        lines.append("- distilled student: not measured")
    vit = st.get("vit")
    if isinstance(vit, dict):
        pruned = vit.get("pruned") or {}
        lines.append(f"- ViT-B/32-sized image tower: `CLIPVisionModelWithProjection` with {plain(vit.get('config'))}; "
                     f"weights {plain(vit.get('weights'))}; pruned variant: {plain(pruned.get('heads_removed_per_layer'))} "
                     f"of {plain(pruned.get('heads_per_layer'))} heads and {plain(pruned.get('mlp_neurons_removed_per_layer'))} "
                     f"of {plain(pruned.get('mlp_neurons_per_layer'))} MLP neurons removed in every layer "
                     f"({plain(pruned.get('pruned_with'))}); export: {plain(vit.get('export'))}")
        if vit.get("export_graphs_refused"):
            lines.append(f"- `vlmcompress.export.onnx.export_graphs` on the one-tower model: refused "
                         f"(\"{vit['export_graphs_refused']}\")")
    else:
        lines.append("- ViT-B/32-sized image tower: not measured")
    lines.append(f"- wall time: {plain(round(st['wall_s'])) if not missing(st.get('wall_s')) else NOT_RECORDED} s "
                 f"(timing rounds {plain(round(st['timing_wall_s'])) if not missing(st.get('timing_wall_s')) else NOT_RECORDED} s)")

    lines += ["", "## Size and accuracy", ""]
    out = []
    for variant, row in rows.items():
        m = row.get("metrics") or {}
        par = row.get("parity") or {}
        if par and all(isinstance(v, dict) for v in par.values()):
            cos = min(v.get("min_cosine", float("nan")) for v in par.values())
        else:
            cos = par.get("min_cosine") if par else None
        out.append([variant, plain(row.get("runtime")), plain(row.get("precision")), _bytes(row.get("bytes")),
                    plain(row.get("bytes_what")), count(row.get("params")), pct(m.get("zero_shot_accuracy")),
                    pct(m.get("zero_shot_accuracy_heldout")), "—" if missing(cos) else f"{cos:.5f}"])
    lines += table(["variant", "runtime", "precision", "bytes", "what the bytes are", "parameters",
                    "zero-shot (seen)", "zero-shot (held-out)", "min cosine vs PyTorch"], out,
                   ["l", "l", "l", "r", "l", "r", "r", "r", "r"])
    lines += ["", "Zero-shot: 100-way accuracy with prompt ensembling on the embedded test images of numbers seen in "
              "training and of the held-out numbers (see [../embedded.md](../embedded.md)); not measured for the "
              "randomly initialised towers. Min cosine: the lowest cosine similarity between the ONNX Runtime "
              "embeddings and PyTorch's on the export's parity inputs.", ""]
    for b in batches:
        lines += [f"## Latency, batch {b}", ""]
        out = []
        for variant, row in rows.items():
            lat = (row.get("latency") or {}).get(b) or {}
            out.append([variant, plain(row.get("timed")), _ms_range(lat.get("ms")),
                        _speed(lat.get("speedup_vs_reference")), plain(row.get("reference"))])
        lines += table(["variant", "timed", "latency (min–max over rounds)", "speed-up (min–max over rounds)",
                        "against"], out, ["l", "l", "r", "r", "l"])
        lines.append("")
    lines += ["## Chain: prune → distill → ONNX Runtime int8", ""]
    if isinstance(chain, dict):
        out = [["bytes", f"{_bytes(chain.get('bytes'))} vs {_bytes(chain.get('teacher_bytes'))}",
                "—" if missing(chain.get("bytes_ratio")) else f"{chain['bytes_ratio']:.3f}× the teacher's"]]
        for b in batches:
            lat = (chain.get("latency") or {}).get(b) or {}
            out.append([f"latency, batch {b}", f"{_ms_range(lat.get('ms'))} vs {_ms_range(lat.get('teacher_ms'))}",
                        f"{_speed(lat.get('speedup_vs_teacher'))} faster"])
        out.append(["zero-shot accuracy kept (seen)", pct(chain.get("zero_shot_accuracy")),
                    pct(chain.get("accuracy_kept_seen")) + " of the teacher's"])
        out.append(["zero-shot accuracy kept (held-out)", pct(chain.get("zero_shot_accuracy_heldout")),
                    pct(chain.get("accuracy_kept_heldout")) + " of the teacher's"])
        lines += [f"`{chain.get('row')}` against `{chain.get('against')}`.", ""]
        lines += table(["", "figure", "relative"], out, ["l", "r", "r"])
    else:
        lines.append("not measured")
    lines += ["", "## Targets", ""]
    out = []
    for key, t in targets.items():
        if "measured_seen" in t:
            value = f"seen {points(t.get('measured_seen'))} points, held-out {points(t.get('measured_heldout'))} points"
        else:
            value = (NOT_MEASURED if missing(t.get("measured")) else
                     f"{t['measured']:.2f}× ({t.get('measured_min', float('nan')):.2f}–{t.get('measured_max', float('nan')):.2f})")
        if missing(t.get("measured")) and t.get("not_measured_because"):
            value = f"{NOT_MEASURED} ({t['not_measured_because']})"
        out.append([plain(t.get("target")), value,
                    NOT_MEASURED if missing(t.get("met")) else "met" if t["met"] else "not met"])
    lines += table(["target", "measured", "result"], out, ["l", "r", "l"]) if out else ["no targets measured"]
    lines.append("")
    return "\n".join(lines)


def _x(value, digits: int = 3) -> str:
    return NOT_MEASURED if missing(value) else f"{value:.{digits}f}"


def _x_range(s, digits: int = 3) -> str:
    if not isinstance(s, dict) or missing(s.get("median")):
        return NOT_MEASURED
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def _gflop(value) -> str:
    return NOT_MEASURED if missing(value) else f"{value / 1e9:,.1f}"


def _met(target) -> str:
    if not isinstance(target, dict) or missing(target.get("met")):
        return "—"
    return "met" if target["met"] else "missed"


def _shape(structure: dict | None, tower: str) -> str:
    """"12 layers, 12 heads, MLP 3072" (or "6–12 heads" where layers differ) for one tower of a recorded structure."""
    t = (structure or {}).get(tower)
    if not isinstance(t, dict):
        return NOT_RECORDED

    def span(values):
        values = list(values or [])
        if not values:
            return "?"
        lo, hi = min(values), max(values)
        return f"{lo}" if lo == hi else f"{lo}–{hi}"

    heads = "; ".join(f"{span(v)} {'cross-attention heads' if site.endswith('_cross') else 'heads'}"
                      for site, v in (t.get("heads") or {}).items())
    return f"{t.get('layers')} layers, {heads}, MLP {span(t.get('mlp_neurons'))}"


def render_real_size(name: str, data: dict) -> str:
    env, st = data.get("environment") or {}, data.get("settings") or {}
    clip, blip = data.get("clip") or {}, data.get("blip") or {}
    distill, targets = data.get("distillation") or {}, data.get("targets") or {}
    cs, bs, ds = st.get("clip") or {}, st.get("blip") or {}, st.get("distillation") or {}
    cuda = st.get("device") == "cuda"
    lines = header_lines(name, "Benchmark: real-sized CLIP and BLIP (random weights): FLOPs, latency, memory")
    lines += ["## Settings (as recorded in the JSON)", ""]
    cc = cs.get("config") or {}
    text, vision = cc.get("text") or {}, cc.get("vision") or {}
    bc = bs.get("config") or {}
    btext, bvision = bc.get("text") or {}, bc.get("vision") or {}
    lines += [f"- hardware (CPU/GPU model): {plain(st.get('hardware'))}",
              f"- device: {plain(env.get('device'))}; CPUs: {plain(env.get('cpu_count'))}",
              f"- torch version: {plain(env.get('torch'))}; transformers version: {plain(env.get('transformers'))}; "
              f"bitsandbytes version: {plain(env.get('bitsandbytes'))}; python: {plain(env.get('python'))}",
              f"- torch threads: {plain(st.get('threads'))}",
              f"- OMP_WAIT_POLICY: {'unset (the OpenMP default)' if missing(st.get('omp_wait_policy')) and 'omp_wait_policy' in st else plain(st.get('omp_wait_policy'))}",
              f"- dtype: {plain(st.get('dtype'))}; weights: {plain(st.get('weights'))}",
              f"- quick run (`--quick`: shrunken models, a test of the script): {plain(st.get('quick'))}",
              f"- CLIP (shapes of {plain(cs.get('shapes_of'))}): text {plain(text.get('hidden_size'))} wide, "
              f"{plain(text.get('num_hidden_layers'))} layers, {plain(text.get('num_attention_heads'))} heads, MLP "
              f"{plain(text.get('intermediate_size'))}, vocabulary {plain(text.get('vocab_size'))}, "
              f"{plain(text.get('max_position_embeddings'))} positions, {plain(text.get('hidden_act'))}; vision "
              f"{plain(vision.get('hidden_size'))} wide, {plain(vision.get('num_hidden_layers'))} layers, "
              f"{plain(vision.get('num_attention_heads'))} heads, MLP {plain(vision.get('intermediate_size'))}, "
              f"{plain(vision.get('image_size'))} px, patch {plain(vision.get('patch_size'))}; projection "
              f"{plain(cc.get('projection_dim'))}",
              f"- CLIP timed: {plain(cs.get('timed'))}, texts of {plain(cs.get('text_tokens'))} tokens; batch sizes "
              f"{plain(cs.get('batch_sizes'))}; {plain(cs.get('rounds'))} interleaved rounds, "
              f"{plain(cs.get('warmup_calls'))} untimed and {plain(cs.get('timed_calls_per_turn'))} timed call(s) "
              "per turn"]
    if bs:
        lines += [f"- BLIP captioner (`{plain(bs.get('class'))}`, shapes of {plain(bs.get('shapes_of'))}): vision "
                  f"{plain(bvision.get('hidden_size'))} wide, {plain(bvision.get('num_hidden_layers'))} layers, "
                  f"{plain(bvision.get('num_attention_heads'))} heads, {plain(bvision.get('image_size'))} px, patch "
                  f"{plain(bvision.get('patch_size'))}; text decoder {plain(btext.get('hidden_size'))} wide, "
                  f"{plain(btext.get('num_hidden_layers'))} layers, {plain(btext.get('num_attention_heads'))} heads, "
                  f"MLP {plain(btext.get('intermediate_size'))}, vocabulary {plain(btext.get('vocab_size'))}",
                  f"- BLIP timed: `generate` of {plain(bs.get('new_tokens'))} new tokens ({plain(bs.get('generate'))}) "
                  f"and the vision encoder alone, batch sizes {plain(bs.get('batch_sizes'))}; "
                  f"{plain(bs.get('rounds'))} interleaved rounds, {plain(bs.get('warmup_calls'))} untimed and "
                  f"{plain(bs.get('timed_calls_per_turn'))} timed call(s) per turn"]
    if ds:
        lines.append(f"- distillation step: batch {plain(ds.get('batch_size'))}, texts of {plain(ds.get('text_tokens'))} "
                     f"tokens, {plain(ds.get('steps'))} step, optimizer {plain(ds.get('optimizer'))}; student: "
                     f"{plain(ds.get('student'))}")
    lines += [f"- FLOPs: {plain(st.get('flops'))}",
              f"- latency: {plain(st.get('latency'))}",
              f"- memory: {plain(st.get('memory'))}",
              f"- target: {plain(st.get('target'))}",
              f"- wall time: {plain(round(st['wall_s'])) if not missing(st.get('wall_s')) else NOT_RECORDED} s"]

    batches = list(cs.get("batch_sizes") or [])
    for b in batches:
        lines += ["", f"## CLIP ViT-B/32-sized: FLOPs and latency, batch {b}", ""]
        out = []
        for variant, row in clip.items():
            e = (row.get("batches") or {}).get(str(b)) or {}
            out.append([variant, _gflop(e.get("flops")), _x(e.get("flop_ratio")), _ms_range(e.get("latency_ms")),
                        _x_range(e.get("latency_ratio")), _x(e.get("latency_over_flop_ratio")),
                        _x(e.get("gflops_per_s"), 1), _met(e.get("target"))])
        lines += table(["variant", "GFLOP", "FLOP ratio", "latency (min–max over rounds)",
                        "latency ratio (min–max)", "latency ratio / FLOP ratio", "GFLOP/s", "target"], out,
                       ["l", "r", "r", "r", "r", "r", "r", "l"])
    lines += ["", "FLOP ratio and latency ratio are against the `fp32` row (the latency ratio per round, then median "
              "and min–max over rounds). GFLOP: one forward at that batch as FlopCounterMode counts it; the int8 and "
              "nf4 rows show the fp32 count, since their matmuls have the same shapes and FlopCounterMode does not "
              "see bitsandbytes' kernels (what it did see is in the JSON as `flops_counted`). Target: structural "
              "pruning rows only (latency ratio / FLOP ratio inside the band of the settings).", ""]

    lines += ["## CLIP ViT-B/32-sized: structure and memory", ""]
    out = []
    for variant, row in clip.items():
        cells = [variant, count(row.get("params")), _shape(row.get("structure"), "vision"),
                 _shape(row.get("structure"), "text"), mib(row.get("memory_footprint_bytes"))]
        first = ((row.get("batches") or {}).get(str(batches[0])) or {}).get("memory") or {} if batches else {}
        cells.append(mib(first.get("model_resident_bytes")))
        for b in batches:
            mem = ((row.get("batches") or {}).get(str(b)) or {}).get("memory") or {}
            cells += [mib(mem.get("peak_above_resident_bytes")), mib(mem.get("peak_bytes"))]
        out.append(cells)
    header = ["variant", "parameters", "vision tower", "text tower", "get_memory_footprint", "model resident"]
    for b in batches:
        header += [f"batch {b}: peak above resident", f"batch {b}: process peak"]
    lines += table(header, out, ["l", "r", "l", "l"] + ["r"] * (len(header) - 4))
    lines += ["", ("Memory: `torch.cuda.max_memory_allocated` above what was allocated before the forward."
                   if cuda else "Model resident: what the built model added to the process's resident set. Peak "
                   "above resident: the highest resident set during one forward at that batch, above the resident "
                   "set just before it (activations and workspaces). Process peak: the whole process, Python, torch "
                   "and the model included (see memory in the settings)."), ""]

    if blip:
        bb = list(bs.get("batch_sizes") or [])
        for b in bb:
            lines += [f"## BLIP-base-sized captioner: generate, batch {b}", ""]
            out = []
            for variant, row in blip.items():
                e = (row.get("batches") or {}).get(str(b)) or {}
                out.append([variant, _shape(row.get("structure"), "text_decoder"), _gflop(e.get("flops")),
                            _x(e.get("flop_ratio")), _ms_range(e.get("generate_ms")), _x_range(e.get("latency_ratio")),
                            _x(e.get("latency_over_flop_ratio")), _x(e.get("decoder_flop_ratio")),
                            _x_range(e.get("decoder_latency_ratio")), pct(e.get("decoder_share_of_time")),
                            _x(e.get("decoder_gflops_per_s"), 1), count(e.get("decoder_aten_ops")),
                            NOT_MEASURED if missing(e.get("decoder_ms_per_aten_op")) else
                            f"{1000 * e['decoder_ms_per_aten_op']:.0f} µs"])
            lines += table(["variant", "text decoder", "GFLOP", "FLOP ratio", "generate latency (min–max)",
                            "latency ratio (min–max)", "latency ratio / FLOP ratio", "decoder FLOP ratio",
                            "decoder latency ratio (min–max)", "decoder share of the time", "decoder GFLOP/s",
                            "decoder aten ops per call", "decoder time per aten op"], out,
                           ["l", "l"] + ["r"] * 11)
            base = ((blip.get("fp32") or {}).get("batches") or {}).get(str(b)) or {}
            if base:
                lines += ["", f"At batch {b} the vision encoder (the same, unpruned, in every row) took "
                          f"{_ms_range(base.get('vision_ms'))} and ran at {_x(base.get('vision_gflops_per_s'), 1)} "
                          f"GFLOP/s; the fp32 decoder's {plain(bs.get('new_tokens'))} steps took "
                          f"{_ms_range(base.get('decoder_ms'))} at {_x(base.get('decoder_gflops_per_s'), 1)} GFLOP/s, "
                          f"{count(base.get('decoder_aten_ops'))} aten operator calls "
                          f"(counted at batch {plain(base.get('aten_ops_counted_at_batch'))})."]
            lines.append("")
        lines += ["How to read these tables: decoder time = generate − the vision encoder alone (timed in the same "
                  "round). Where the decoder's GFLOP/s is far below the vision encoder's, its steps are bound by the "
                  "fixed cost of each operator call (Python, dispatch, waking the worker threads), not by "
                  "arithmetic. Removing heads narrows matmuls but leaves the number of operator calls unchanged (see "
                  "the aten-ops column), so its latency can fall much less than its FLOPs; dropping decoder layers "
                  "removes calls as well. The whole call's FLOP ratio stays near 1 because the vision encoder, "
                  "unpruned in every row, holds most of the FLOPs.", ""]

    if distill:
        lines += ["## One distillation step: teacher in fp32 vs bfloat16", ""]
        out = []
        for variant, r in distill.items():
            out.append([variant, mib(r.get("teacher_memory_footprint_bytes")), mib(r.get("student_memory_footprint_bytes")),
                        mib(r.get("resident_built_bytes")), mib(r.get("peak_bytes")),
                        mib(r.get("peak_above_resident_bytes")),
                        NOT_MEASURED if missing(r.get("step_wall_s")) else f"{r['step_wall_s']:.1f} s",
                        _x(r.get("loss"), 4)])
        lines += table(["teacher", "teacher get_memory_footprint", "student get_memory_footprint",
                        "resident before the step", "peak during the step", "peak above resident", "step wall time",
                        "loss"], out)
        lines += ["", "`DistillationTrainer` (similarity-matrix KL + embedding loss) with `max_steps=1`: the step holds "
                  "the teacher's forward, the student's forward and backward and AdamW's first update (its state "
                  "is created in the step). Resident before the step: the process with teacher, student and trainer "
                  "built (teacher already cast).", ""]

    lines += ["## Targets", ""]
    out = [[key, _x(t.get("flop_ratio")), _x(t.get("latency_ratio")), _x(t.get("measured")), _met(t)]
           for key, t in targets.items()]
    lines += table(["row", "FLOP ratio", "latency ratio", "latency ratio / FLOP ratio", "result"], out) if out else \
        ["no targets measured"]
    lines += ["", f"Target: {plain(st.get('target'))}.", ""]
    return "\n".join(lines)


def render_importance_cost(name: str, data: dict) -> str:
    env, st, part = data.get("environment") or {}, data.get("settings") or {}, data.get("importance_cost") or {}
    target = part.get("target") or {}
    lines = header_lines(name, "Benchmark: what scoring heads and neurons costs at ViT-B/32 size")
    lines += ["## Settings (as recorded in the JSON)", "",
              f"- hardware (CPU/GPU model): {plain(st.get('hardware'))}; torch threads: {plain(st.get('threads'))}; "
              f"dtype: {plain(st.get('dtype'))}",
              f"- torch version: {plain(env.get('torch'))}; transformers version: {plain(env.get('transformers'))}",
              f"- model: shapes of {plain(st.get('shapes_of'))}, weights {plain(st.get('weights'))}: "
              f"{plain(part.get('heads'))} heads, {plain(part.get('neurons'))} MLP neurons",
              f"- calibration batches of {plain(part.get('batch_size'))} random 224 px images and 77-token texts",
              f"- quick run (`--quick`: shrunken model, a test of the script): {plain(st.get('quick'))}",
              f"- the library's default importance: {plain(part.get('default_importance'))}", "",
              "## Seconds to score every head and neuron", ""]
    lines += table(["importance", "calibration samples (default)", "batches", "seconds", "how"],
                   [[k, plain(r.get("samples")), plain(r.get("batches")), f"{r['seconds']:.1f}", plain(r.get("how"))]
                    for k, r in (part.get("rows") or {}).items()])
    met = target.get("met")
    lines += ["", f"Target: {plain(target.get('goal'))}: {plain(target.get('measured_s') and round(target['measured_s'], 1))} "
              f"seconds, {'met' if met else 'not met' if met is False else 'no verdict (quick run)'}.", ""]
    return "\n".join(lines)


def render_streaming(name: str, data: dict) -> str:
    env, st = data.get("environment") or {}, data.get("settings") or {}
    lines = header_lines(name, "Benchmark: distilling from streamed shards and a teacher store")
    lines += ["## Settings (as recorded in the JSON)", "",
              f"- hardware (CPU/GPU model): {plain(data.get('hardware'))}; torch threads: {plain(st.get('threads'))}; "
              "dtype: float32; OMP_WAIT_POLICY=ACTIVE in the training processes",
              f"- torch version: {plain(env.get('torch'))}; transformers version: {plain(env.get('transformers'))}",
              f"- the default inherited student of the embedded CLIP teacher; batch {plain(st.get('batch'))}, "
              f"{plain(st.get('steps'))} steps per throughput row; the embedded training split at "
              f"{plain(st.get('images_per_number'))} images per seen number (1x) and {plain(st.get('tenfold'))} (10x), "
              f"WebDataset shards of {plain(st.get('samples_per_shard'))} samples; no evaluation",
              f"- quick run (`--quick`: tiny sets, a test of the script): {plain(st.get('quick'))}", "",
              "## Throughput", ""]
    lines += table(["row", "samples/s", "each round's samples/s", "peak resident MiB", "process s"],
                   [[r["name"], f"{r['samples_per_s']:.1f}", ", ".join(f"{v:.1f}" for v in r.get("rounds") or []) or "-",
                     f"{r['peak_rss_mib']:.0f}", f"{r['process_s']:.0f}"] for r in data.get("rows") or []])
    lines += ["", "Samples/s of the training rows: steps x batch over the Trainer's train_runtime, the median of "
              f"{plain(st.get('rounds', 1))} interleaved round(s) (the rows take turns, the order reversed every other "
              "round); process s: the median round's. Of cache-teacher: the samples embedded over the whole process "
              "(model loading included).", "",
              "## Resident memory over one pass of the set", ""]
    lines += table(["set", "samples", "shards", "steps", "peak resident MiB"],
                   [[r["name"], str(r["samples"]), str(r["shards"]), str(r["steps"]), f"{r['peak_rss_mib']:.0f}"]
                    for r in data.get("memory") or []])
    summary = data.get("quality_summary")
    if summary:
        n = len(st.get("seeds") or [])
        lines += ["", f"## The student each way, over {n} seeds", "",
                  f"{plain(st.get('quality_steps'))} steps, evaluated on the embedded test split "
                  f"({plain(st.get('eval_images_per_number'))} images per number); the seed sets the data order.", ""]
        lines += table(["data", "seen (mean ± sd)", "held-out (mean ± sd)"],
                       [[way, _mean_sd(v["accuracy"]), _mean_sd(v["accuracy_heldout"])]
                        for way, v in summary["ways"].items()])
    lines += ["", "## Targets", ""]
    lines += table(["target", "measured", "met"],
                   [[t["target"], t.get("shown") or f"{t['measured']:.2f}", _met(t)] for t in data.get("targets") or []])
    return "\n".join(lines) + "\n"


def _mean_sd(pair, **fmt) -> str:
    """A recorded [mean, sd] pair (recipes.json, streaming.json), in the pages' one format."""
    mean, sd = (pair or [None, None])[:2]
    return mean_sd(mean, sd, **fmt)


def render_recipes(name: str, data: dict) -> str:
    env, st = data.get("environment") or {}, data.get("settings") or {}
    lines = header_lines(name, "Benchmark: the shipped recipes over seeds")
    lines += ["## Settings (as recorded in the JSON)", "",
              f"- hardware (CPU/GPU model): {plain(data.get('hardware'))}; torch threads: {plain(st.get('threads'))}; "
              f"torch version: {plain(env.get('torch'))}; transformers version: {plain(env.get('transformers'))}",
              f"- distillation seeds: {plain(st.get('seeds'))} (each run is the committed recipe with only its distill "
              "stages' `seed` set); one `vlmcompress compress` process per run, one after another",
              "- accuracy: zero-shot top-1 on the embedded digits test split, seen numbers and held-out numbers (never "
              "in a training caption); kept: a share of the teacher's figure, as the first stage's report measured it",
              f"- quick run (`--quick`: tiny sets, a test of the script): {plain(data.get('quick'))}"
              + ("; **partial**: the run was cut short, some seeds are missing" if data.get("partial") else ""), ""]
    lines += ["## The final checkpoint of each recipe", ""]
    rows = []
    for recipe, s in (data.get("summary") or {}).items():
        worse = None if missing(s.get("kept_seen")) or missing(s.get("kept_heldout")) else \
            min(s["kept_seen"], s["kept_heldout"])
        rows.append([f"`recipes/{recipe}.yaml`", str(len(s.get("seeds") or [])), _mean_sd(s.get("seen"), digits=2),
                     _mean_sd(s.get("heldout"), digits=2), f"{pct(s.get('kept_seen'))} / {pct(s.get('kept_heldout'))}",
                     pct(worse), f"{count((s.get('size_bytes') or [None])[0])} ({pct(s.get('size_share'), 2)})",
                     _mean_sd(s.get("stage_seconds"), scale=1, digits=0, unit="")])
    lines += table(["recipe", "seeds", "seen (mean ± sd)", "held-out (mean ± sd)", "kept seen / held-out",
                    "worse of the two kept", "bytes (of the teacher's)", "stage seconds (mean ± sd)"], rows)
    lines += ["", "Stage seconds: every stage's wall time as its `stage.json` records it, evaluation and the "
              "side-by-side latency of each checkpoint included, on a machine the runs did not reserve (each run "
              "records the 1-minute load average after it where the script did): compare accuracy across runs, not "
              "seconds.", "", "## Every run", ""]
    run_rows = []
    for r in data.get("runs") or []:
        final = r["stages"][-1]["after"] if r.get("stages") else {}
        run_rows.append([f"`{r['recipe']}`", str(r["seed"]), pct(final.get("zero_shot_accuracy"), 2),
                         pct(final.get("zero_shot_accuracy_heldout"), 2), count(final.get("size_bytes")),
                         " + ".join(f"{st['stage']} {plain(st.get('seconds'))} s" for st in r.get("stages") or []),
                         plain(r.get("load_average"))])
    lines += table(["recipe", "seed", "seen", "held-out", "bytes", "stages", "load average after"], run_rows)
    return "\n".join(lines) + "\n"


def render_evidence(name: str, data: dict) -> str:
    """The evidence suites' pages (``benchmarks/run.py`` writes the JSON and the Pareto plot beside the page)."""
    if __package__:  # imported as benchmarks.render_pages
        from . import run as evidence
    else:  # run as a script: its folder is first on sys.path
        import run as evidence

    return evidence.render(data, f"{name}.png")


RENDERERS = {"pruning": render_pruning, "quantization": render_quantization, "onnx": render_onnx,
             "real_size": render_real_size, "evidence_clip": render_evidence, "evidence_clip_small": render_evidence,
             "evidence_blip": render_evidence,
             "evidence_blip_retrieval": render_evidence, "evidence_generalization": render_evidence,
             "evidence_generalization_long": render_evidence,
             "real_size_importance": render_importance_cost, "streaming": render_streaming,
             "recipes": render_recipes}


def render_index(names: list[str]) -> str:
    lines = ["# Benchmarks", "", "<!-- generated by benchmarks/render_pages.py: do not edit -->", "",
             "Measured results, one page per file in `benchmarks/results/`. Each page states the settings its run "
             "recorded. Regenerate with `python benchmarks/render_pages.py` after re-running a benchmark with "
             "`--json benchmarks/results/NAME.json`.", ""]
    for name in names:
        source = SOURCES.get(name, (None, None))[0]
        lines.append(f"- [{name}]({name}.md)" + (f" (`{source}`)" if source else ""))
    lines.append("")
    return "\n".join(lines)


def render_all(results: Path = RESULTS, out: Path = PAGES) -> list[Path]:
    """Write one page per ``results/*.json`` and ``index.md`` into ``out``; return the pages written."""
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, names = [], []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        renderer = RENDERERS.get(path.stem, render_generic)
        page = out / f"{path.stem}.md"
        page.write_text(renderer(path.stem, data))
        written.append(page)
        names.append(path.stem)
    index = out / "index.md"
    index.write_text(render_index(names))
    return written + [index]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(RESULTS), help="folder of result JSON files")
    parser.add_argument("--out", default=str(PAGES), help="folder for the pages")
    parser.add_argument("--check", action="store_true", help="render into a temp folder and compare with --out")
    args = parser.parse_args(argv)
    if not args.check:
        for page in render_all(Path(args.results), Path(args.out)):
            print(f"wrote {page}")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in render_all(Path(args.results), Path(tmp))}
        stale = [name for name, text in fresh.items()
                 if not (Path(args.out) / name).is_file() or (Path(args.out) / name).read_text() != text]
        extra = [p.name for p in Path(args.out).glob("*.md") if p.name not in fresh]
    if stale or extra:
        print(f"stale: {', '.join(stale) or 'none'}; not generated: {', '.join(extra) or 'none'}", file=sys.stderr)
        return 1
    print("benchmark pages are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
