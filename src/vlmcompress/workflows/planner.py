"""Budgets instead of ratios: the planner turns ``target: {max_size_mib | max_latency_ms + batch_size | max_params}``
into a prune stage's layer pattern and head/MLP ratios.

Every candidate of a small grid (keep every layer, every 2nd or every 4th; heads -0/25/50%; MLP neurons -0/25/50/75%) is built
for real on a copy of the model: its size is exact (the pruned copy, quantized by the recipe's quantize stage when
there is one, saved and its weight files counted: distillation keeps shapes, so this is the final size), its latency
is measured on this machine (when the target has one), and its accuracy is scored cheaply (one-shot, no recovery, on
a slice of the evaluation set). The best-scoring candidate that fits is kept; ties go to the smaller one. Every
candidate goes into the report with its figures.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time

from ..errors import VlmcompressError

KEEP_EVERY = (1, 2, 4)
HEAD_RATIOS = (0.0, 0.25, 0.5)
MLP_RATIOS = (0.0, 0.25, 0.5, 0.75)
PROXY_KEYS = ("zero_shot_accuracy", "caption_accuracy", "recall_at_1_t2i", "bleu_4")
MIB = 2 ** 20


def _size_bytes(model, processor, quantize_config) -> int:
    from ..modeling import save_compressed
    from ..report import weights_size_bytes

    with tempfile.TemporaryDirectory() as tmp:
        if quantize_config is None:
            save_compressed(model, processor, tmp)
        else:
            from ..quantization import quantize, save_quantized

            quantized = quantize(copy.deepcopy(model), quantize_config)
            save_quantized(quantized, processor, tmp, quantize_config)
        return weights_size_bytes(tmp)


def _proxy_kwargs(eval_kwargs: dict | None) -> dict | None:
    """A cheap slice of the evaluation set (no latency, no size)."""
    from ..evaluation import EMBEDDED, NO_EVAL, EvalSet

    if not eval_kwargs:
        return None
    dataset = eval_kwargs.get("dataset")
    kw = dict(eval_kwargs, latency_repeats=0, measure_size=False)
    if dataset is None or (isinstance(dataset, str) and dataset == EMBEDDED):
        kw["images_per_number"] = min(eval_kwargs.get("images_per_number") or 4, 4)
    elif isinstance(dataset, str) and dataset == NO_EVAL:
        return None
    elif isinstance(dataset, EvalSet) and len(dataset) > 256:
        import numpy as np

        from ..evaluation.eval_sets import EvalSet as _EvalSet

        pick = np.sort(np.random.default_rng(0).permutation(len(dataset))[:256])
        kw["dataset"] = _EvalSet(name=dataset.name, dataset=dataset.dataset.select(pick.tolist()),
                                 captions=[dataset.captions[i] for i in pick] if dataset.captions else None,
                                 labels=dataset.labels[pick] if dataset.labels is not None else None,
                                 class_names=dataset.class_names, split=dataset.split)
    return kw


def _later_quantize(recipe, stage):
    from ..quantization import QuantizationConfig

    for s in recipe.stages[stage.index:]:
        if s.kind == "quantize":
            return QuantizationConfig(**s.options)
    return None


def _fits(row, target, base_params) -> bool:
    if "max_size_mib" in target and row["size_bytes"] > target["max_size_mib"] * MIB:
        return False
    if "max_params" in target:
        limit = target["max_params"] * base_params if target["max_params"] <= 1 else target["max_params"]
        if row["params"] > limit:
            return False
    if "max_latency_ms" in target and (row["latency_ms"] is None or row["latency_ms"] > target["max_latency_ms"]):
        return False
    return True


def describe(row) -> str:
    parts = ["all layers" if row["keep_every"] == 1 else f"every {row['keep_every']}. layer"]
    parts.append(f"heads -{row['head_ratio']:.0%}")
    parts.append(f"MLP -{row['mlp_ratio']:.0%}")
    return ", ".join(parts)


def plan_pruning(model, processor, config, target: dict, recipe, stage, *, calibration=None, eval_kwargs=None,
                 log=print) -> dict:
    """{"config": the PruningConfig to apply, "record": every candidate with its figures, the chosen one}."""
    from ..evaluation import evaluate_model
    from ..evaluation.harness import count_parameters, measure_latency, synthetic_inputs, _tokenizer_of
    from ..adapters import get_adapter
    from ..pruning.config import prune_model
    from ..utils import progress

    quantize_config = _later_quantize(recipe, stage)
    proxy = _proxy_kwargs(eval_kwargs)
    base_params = count_parameters(model)
    batch = int(target.get("batch_size", 32))
    scores: dict = {}
    rows = []
    grid = [(k, h, m) for k in KEEP_EVERY for h in HEAD_RATIOS for m in MLP_RATIOS if (k, h, m) != (1, 0.0, 0.0)]
    started = time.time()
    for keep, head, mlp in progress(grid, desc="planning", leave=False):
        options = dataclasses.asdict(config)
        options.update(head_ratio=head, mlp_ratio=mlp, layer_strategy="every_k" if keep > 1 else None,
                       keep_every=keep if keep > 1 else None, drop_layers=None, remove_layers=None)
        candidate_config = type(config)(**options)
        candidate = copy.deepcopy(model)
        prune_model(candidate, candidate_config, processor, dataset=calibration, scores=scores.get(keep),
                    on_scores=lambda s, k=keep: scores.__setitem__(k, s))
        row = {"keep_every": keep, "head_ratio": head, "mlp_ratio": mlp, "params": count_parameters(candidate),
               "size_bytes": _size_bytes(candidate, processor, quantize_config), "latency_ms": None,
               "proxy_accuracy": None}
        if "max_latency_ms" in target:
            adapter = get_adapter(candidate)
            images, texts = synthetic_inputs(processor)
            row["latency_ms"] = round(measure_latency(adapter, getattr(processor, "image_processor", processor),
                                                      _tokenizer_of(processor), images, texts, batch_size=batch,
                                                      warmup=1, repeats=3), 3)
        row["fits"] = _fits(row, target, base_params)
        if row["fits"] and proxy is not None:
            metrics = evaluate_model(candidate, processor, **proxy)
            key = next((k for k in PROXY_KEYS if metrics.get(k) is not None), None)
            row["proxy_accuracy"] = metrics[key] if key else None
            row["proxy_metric"] = key
        rows.append(row)
    fitting = [r for r in rows if r["fits"]]
    record = {"target": target, "quantize_bits": quantize_config.bits if quantize_config else None,
              "base_params": base_params, "proxy": "one-shot accuracy on a slice of the evaluation set, no recovery"
              if proxy else "none (no evaluation set): the smallest fitting candidate is kept",
              "seconds": round(time.time() - started, 1), "candidates": rows}
    if not fitting:
        smallest = min(rows, key=lambda r: r["size_bytes"])
        reach = (f"the smallest reachable is {smallest['size_bytes'] / MIB:.3f} MiB, {smallest['params']:,} parameters"
                 + (f", {min(r['latency_ms'] for r in rows):.1f} ms" if "max_latency_ms" in target else ""))
        raise VlmcompressError(f"no plan meets the target {target}: {reach} ({describe(smallest)}"
                               + (f", then {quantize_config.bits}-bit" if quantize_config else "") + ")")
    best = max(fitting, key=lambda r: ((r["proxy_accuracy"] if r["proxy_accuracy"] is not None else -1), -r["size_bytes"]))
    record["chosen"] = rows.index(best)
    options = dataclasses.asdict(config)
    options.update(head_ratio=best["head_ratio"], mlp_ratio=best["mlp_ratio"],
                   layer_strategy="every_k" if best["keep_every"] > 1 else None,
                   keep_every=best["keep_every"] if best["keep_every"] > 1 else None)
    log(f"plan: {describe(best)} -> {best['size_bytes'] / MIB:.3f} MiB, {best['params']:,} parameters "
        f"({len(fitting)} of {len(rows)} candidates fit {target})")
    return {"config": type(config)(**options), "record": record, "rows": rows, "best": best}


def format_plan(rows, target) -> str:
    """The candidates as a table, best first (fitting ones by proxy accuracy, then the rest by size)."""
    order = sorted(rows, key=lambda r: (not r["fits"], -(r["proxy_accuracy"] or -1) if r["fits"] else 0,
                                        r["size_bytes"]))
    head = ["plan", "params", "size MiB", "latency ms", "proxy acc", "fits"]
    lines = [head]
    for r in order:
        lines.append([describe(r), f"{r['params']:,}", f"{r['size_bytes'] / MIB:.3f}",
                      "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}",
                      "-" if r["proxy_accuracy"] is None else f"{100 * r['proxy_accuracy']:.1f}%",
                      "yes" if r["fits"] else "no"])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
