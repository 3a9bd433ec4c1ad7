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
- anything else shaped ``{variant: METRICS}`` or ``{"variants": {variant: METRICS}}``: a generic table.

Top-level keys other than the variants (e.g. ``"model"``, ``"environment"``, ``"settings"``) are listed as recorded
settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ROOT / "docs" / "benchmarks"
NOT_MEASURED = "not measured"
NOT_RECORDED = "not recorded"

#: what produced each known result file (shown on its page)
SOURCES = {
    "pruning": ("benchmarks/pruning.py", "one-shot pruned variants of a model, measured side by side in one process right "
                "after the base model; no recovery training"),
    "quantization": ("benchmarks/quantization.py", "bitsandbytes variants of a model, each quantized, saved and measured "
                     "from its folder, on CPU with bitsandbytes' own kernels"),
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
MACHINE_KEYS = (("hardware", "hardware (CPU/GPU model)"), ("torch", "torch version"),
                ("transformers", "transformers version"), ("bitsandbytes", "bitsandbytes version"))


# --- formatting ------------------------------------------------------------------------------------------------
def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def pct(value, digits: int = 1) -> str:
    return NOT_MEASURED if _missing(value) else f"{100 * value:.{digits}f}%"


def mib(value) -> str:
    return NOT_MEASURED if _missing(value) else f"{value / 2**20:.2f} MiB"


def kib(value) -> str:
    return NOT_MEASURED if _missing(value) else f"{value / 1024:,.1f} KiB"


def ms(value) -> str:
    return NOT_MEASURED if _missing(value) else f"{value:.2f} ms"


def count(value) -> str:
    return NOT_MEASURED if _missing(value) else f"{int(value):,d}"


def ratio(value, base, digits: int = 2) -> str:
    if _missing(value) or _missing(base) or not base:
        return NOT_MEASURED
    return f"{value / base:.{digits}f}"


def points(value) -> str:
    return NOT_MEASURED if _missing(value) else f"{value:+.2f}"


def plain(value) -> str:
    if _missing(value):
        return NOT_RECORDED
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {plain(v)}" for k, v in value.items())
    return str(value)


def model_name(value) -> str:
    """A recorded model: a Hub id as it is; a local path by its folder name (the machine's path says nothing)."""
    if _missing(value):
        return NOT_RECORDED
    text = str(value)
    if text.startswith(("/", "~", ".")) or "\\" in text or text.count("/") > 1:
        return Path(text.rstrip("/\\")).name + " (a local folder)"
    return text


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


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
        if key == "eval_images" and not _missing(value):
            value = f"{int(value):,d} images"
        if key == "omp_wait_policy" and _missing(value) and key in base:
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
        if key.rsplit(".", 1)[-1] not in shown:
            lines.append(f"- {key}: {plain(value)}")
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
def render_pruning(name: str, data: dict) -> str:
    variants, extra = split_variants(data)
    base_name = next(iter(variants))
    base = _metrics_of(variants[base_name])
    lines = header_lines(name, "Benchmark: one-shot pruning")
    lines += ["## Settings (as recorded in the JSON)", ""]
    lines += settings_lines(variants, extra, latency_note="median of the timed image+text forwards of each variant, "
                            "each variant measured once in turn (not interleaved)")
    lines += ["", "## Results", ""]
    rows = []
    for variant, entry in variants.items():
        m = _metrics_of(entry)
        rows.append([variant, count(m.get("params")), ratio(m.get("params"), base.get("params")), mib(m.get("size_bytes")),
                     ms(m.get("latency_ms")), ratio(m.get("latency_ms"), base.get("latency_ms")),
                     pct(m.get("zero_shot_accuracy")), pct(m.get("zero_shot_accuracy_heldout")),
                     pct(m.get("recall_at_1_i2t")), pct(m.get("recall_at_1_t2i"))])
    lines += table(["variant", "parameters", "× base", "weights on disk", "latency", "× base",
                    "zero-shot (seen)", "zero-shot (held-out)", "R@1 image→text", "R@1 text→image"], rows)
    lines += ["", f"`× base`: the variant's figure divided by the `{base_name}` row's. Zero-shot: 100-way accuracy "
              "with prompt ensembling on numbers seen in training and on the held-out numbers (see "
              "[../embedded.md](../embedded.md)); R@1: recall@1. Latencies measured one after the other in a single "
              "run on a shared machine move between runs; the CLI's `prune` measures the ratio in interleaved rounds "
              "instead (see [../checkpoints.md](../checkpoints.md)).", ""]
    return "\n".join(lines)


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
                     "—" if _missing(linear) else f"{linear:.3f}", pct(wb.get("token_embedding_share")),
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


RENDERERS = {"pruning": render_pruning, "quantization": render_quantization}


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
