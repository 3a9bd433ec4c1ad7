#!/usr/bin/env python
"""fp32, LLM.int8, nf4 and fp4 (and nf4 + QLoRA) of one model, side by side, on CPU with bitsandbytes' kernels.

    python benchmarks/quantization.py                                   # the embedded teacher, full test split
    python benchmarks/quantization.py --qlora-steps 0 --images-per-number 20 --json outputs/bench_quant.json

Each variant is quantized with ``vlmcompress.quantization.quantize``, saved and measured from its folder: zero-shot
accuracy (seen / held-out numbers), bytes on disk, memory footprint (``get_memory_footprint``), bytes of the quantized
Linear weights (with their scales) against those weights in fp32, the token embedding's share of the bytes, and
latency (median of timed image+text forwards after warm-up, the variants taking turns over several rounds so that load
from other processes hits them alike; batch, threads, dtype and CPU are printed). 4-bit latency is measured twice: as vlmcompress keeps the model (bitsandbytes' portable layout) and as a plain
``CLIPModel.from_pretrained`` gives it (bitsandbytes repacks for its AVX512-BF16 kernel where the CPU has one).
Every folder gets a ``compression_report.json`` (before = fp32); ``--json`` writes all rows, with the top-level
``environment`` (``vlmcompress.report.environment()``) and ``settings`` (images per number, threads, latency batch size
and rounds, QLoRA steps, model, hardware). Refuses to run with OMP_WAIT_POLICY=ACTIVE.
"""

from __future__ import annotations

import os


import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import environment, hardware, refuse_active_wait_policy
else:  # run as a script: its folder is first on sys.path
    from _common import environment, hardware, refuse_active_wait_policy

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

from vlmcompress.evaluation import evaluate_model  # noqa: E402
from vlmcompress.loading import load_checkpoint  # noqa: E402
from vlmcompress.quantization import QuantizationConfig, quantization_step, quantize, save_quantized, weight_bytes  # noqa: E402
from vlmcompress.checkpoint import finish_checkpoint  # noqa: E402
from vlmcompress.evaluation.harness import interleaved_latency  # noqa: E402

VARIANTS = {
    "int8": QuantizationConfig(bits=8),
    "nf4": QuantizationConfig(bits=4, quant_type="nf4"),
    "nf4+dq": QuantizationConfig(bits=4, quant_type="nf4", double_quant=True),
    "fp4": QuantizationConfig(bits=4, quant_type="fp4"),
}
TARGET_DROP = {"int8": 0.5, "nf4": 2.0, "nf4+dq": 2.0, "fp4": 2.0, "nf4+qlora": 1.0, "nf4+qlora merged": 1.0}
TARGET_LINEAR = {"int8": 0.27, "nf4": 0.15, "nf4+dq": 0.15}


def run_qlora(base_folder, base_path, processor, base_metrics, args, kw, out_dir, rows, timed):
    from transformers import TrainingArguments

    from vlmcompress.embedded import digits
    from vlmcompress.quantization.qlora import merge_qlora_model, qlora_step, save_qlora_adapter, train_qlora

    quantized, _, _ = load_checkpoint(str(base_folder))
    train = digits.load_digits_dataset("train", images_per_number=args.qlora_images_per_number)
    targs = TrainingArguments(output_dir=str(out_dir / "qlora-trainer"), max_steps=args.qlora_steps,
                              per_device_train_batch_size=args.qlora_batch_size, learning_rate=args.qlora_lr,
                              lr_scheduler_type="cosine", warmup_steps=max(1, args.qlora_steps // 20),
                              weight_decay=0.0, use_cpu=True, report_to=[], save_strategy="no", logging_steps=25,
                              disable_tqdm=True, seed=0, dataloader_num_workers=0)
    t0 = time.perf_counter()
    model, trainer = train_qlora(quantized, processor, train, targs, r=args.lora_r, alpha=2 * args.lora_r)
    train_s = time.perf_counter() - t0
    config = VARIANTS["nf4"]
    train_step = qlora_step(model, max_steps=args.qlora_steps, kept="adapter")
    train_step["training"] = {"loss_log": [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history
                                           if "loss" in h], "train_runtime_s": train_s, "global_step": args.qlora_steps}

    def save_with_adapter(m, p, folder):  # the quantized base the adapter was trained on, and the adapter
        loading = save_quantized(m, p, folder, config)
        save_qlora_adapter(model, folder)
        return {**loading, "adapter": "lora"}

    evaluate = lambda m, folder: evaluate_model(m, processor, model_path=folder, **kw)  # noqa: E731
    folder = out_dir / "nf4+qlora"
    report = finish_checkpoint(model.get_base_model(), processor, folder, base_model=base_path, before=base_metrics,
                               steps=[rows["nf4"][2], train_step], save=save_with_adapter, evaluate=evaluate,
                               overwrite=True)
    # the quantized base is the nf4 row's; the adapter adds its own bytes to size_bytes
    rows["nf4+qlora"] = (report["after"], rows["nf4"][1], train_step)
    timed["nf4+qlora"] = model.get_base_model()
    merged = merge_qlora_model(model, base_folder, config)
    mfolder = out_dir / "nf4+qlora merged"
    merged_step = dict(train_step, kept="merged")
    report = finish_checkpoint(merged, processor, mfolder, base_model=base_path, before=base_metrics,
                               steps=[rows["nf4"][2], merged_step], evaluate=evaluate, overwrite=True,
                               save=lambda m, p, f: save_quantized(m, p, f, config))
    rows["nf4+qlora merged"] = (report["after"], weight_bytes(merged, mfolder), merged_step)
    timed["nf4+qlora merged"] = merged


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=None, help="default: the embedded teacher")
    parser.add_argument("--images-per-number", type=int, default=100)
    parser.add_argument("--latency-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--latency-rounds", type=int, default=5, help="rounds in which the variants take turns")
    parser.add_argument("--qlora-steps", type=int, default=150, help="0: no QLoRA row")
    parser.add_argument("--qlora-batch-size", type=int, default=64)
    parser.add_argument("--qlora-lr", type=float, default=1e-3)
    parser.add_argument("--qlora-images-per-number", type=int, default=100)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--output-dir", help="keep the quantized folders here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args()
    refuse_active_wait_policy("benchmarks/quantization.py")
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="vlmcompress-bench-quant-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    kw = dict(images_per_number=args.images_per_number, latency_batch_size=args.latency_batch_size)

    base, processor, path = load_checkpoint(args.model)
    base_metrics = evaluate_model(base, processor, model_path=path, **kw)
    rows = {"fp32": (base_metrics, weight_bytes(base, path), None)}
    timed, stock = {"fp32": base}, {}
    for name, config in VARIANTS.items():
        model = quantize(path, config)
        folder = out_dir / name
        report = finish_checkpoint(model, processor, folder, base_model=path, steps=[quantization_step(model)],
                                   before=base_metrics, overwrite=True,
                                   save=lambda m, p, f, c=config: save_quantized(m, p, f, c),
                                   evaluate=lambda m, f: evaluate_model(m, processor, model_path=f, **kw))
        rows[name] = (report["after"], weight_bytes(model, folder), report["steps"][0])
        timed[name] = model
        if config.bits == 4:
            from transformers import AutoModel

            stock[name] = AutoModel.from_pretrained(folder).eval()
    if args.qlora_steps:
        run_qlora(out_dir / "nf4", path, processor, base_metrics, args, kw, out_dir, rows, timed)
    medians, all_times = interleaved_latency({**timed, **{f"{n} (stock)": m for n, m in stock.items()}}, processor,
                                             args.latency_batch_size, args.latency_rounds)
    for name, (m, _, _) in rows.items():  # the table shows the interleaved figures (the reports keep their own run's)
        m["latency_ms_single_run"] = m["latency_ms"]
        m["latency_ms"] = medians[name]
        m["latency_rounds"] = all_times[name]
        if name in stock:
            m["latency_ms_stock_reload"] = medians[f"{name} (stock)"]

    b = base_metrics
    print(f"model: {path}; {hardware()}, "
          f"{b['latency_threads']} threads, fp32 activations, latency batch {args.latency_batch_size} (image+text "
          f"forward; median over {args.latency_rounds} interleaved rounds of the median of {b['latency_repeats']}), "
          f"{b['eval_images']} test images; bitsandbytes "
          f"{__import__('bitsandbytes').__version__}, torch {torch.__version__}")
    header = (f"{'variant':18s} {'disk KiB':>9s} {'mem KiB':>8s} {'Linear B':>9s} {'x fp32':>7s} {'tok-emb':>8s} "
              f"{'lat ms':>7s} {'stock':>7s} {'seen %':>7s} {'d seen':>7s} {'held %':>7s} {'d held':>7s}")
    print(header)
    print("-" * len(header))
    table = {}
    for name, (m, wb, step) in rows.items():
        ratio = wb.get("quantized_linear_ratio")
        d_seen = 100 * (b["zero_shot_accuracy"] - m["zero_shot_accuracy"])
        d_held = 100 * (b["zero_shot_accuracy_heldout"] - m["zero_shot_accuracy_heldout"])
        stock = m.get("latency_ms_stock_reload")
        print(f"{name:18s} {m['size_bytes'] / 1024:9.1f} {m['memory_bytes'] / 1024:8.1f} "
              f"{(wb['quantized_linear'] or wb['full_precision_linear']) / 1024:9.1f} "
              f"{'-' if ratio is None else f'{ratio:.3f}':>7s} {100 * wb['token_embedding_share']:7.1f}% "
              f"{m['latency_ms']:7.1f} {'-' if stock is None else f'{stock:.1f}':>7s} "
              f"{pct(m['zero_shot_accuracy']):>7s} {d_seen:+7.2f} {pct(m['zero_shot_accuracy_heldout']):>7s} {d_held:+7.2f}")
        table[name] = {"metrics": m, "weight_bytes": wb, "step": step, "drop_seen_points": d_seen,
                       "drop_heldout_points": d_held}
    print("Linear B: bytes of the quantized Linear weights with their scales (fp32: all Linear weights); x fp32: the "
          "same weights' fp32 bytes; tok-emb: the text token embedding's share of the bytes on disk; stock: latency "
          "after a plain from_pretrained (bitsandbytes' AVX512-BF16 repacking where available)")
    print("targets:")
    for name, (m, wb, _) in rows.items():
        if name in TARGET_DROP:
            worst = max(table[name]["drop_seen_points"], table[name]["drop_heldout_points"])
            print(f"  {name:18s} accuracy drop <= {TARGET_DROP[name]} pt: seen {table[name]['drop_seen_points']:+.2f}, "
                  f"held-out {table[name]['drop_heldout_points']:+.2f} -> {'met' if worst <= TARGET_DROP[name] else 'NOT met'}")
        if name in TARGET_LINEAR:
            r = wb["quantized_linear_ratio"]
            print(f"  {name:18s} Linear bytes <= {TARGET_LINEAR[name]}x fp32: {r:.3f}x -> "
                  f"{'met' if r <= TARGET_LINEAR[name] else 'NOT met'}")
    print(f"folders: {out_dir}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        settings = {"model": "embedded teacher" if args.model is None else str(path),
                    "images_per_number": args.images_per_number, "eval_images": b["eval_images"],
                    "threads": torch.get_num_threads(), "latency_batch_size": args.latency_batch_size,
                    "latency_rounds": args.latency_rounds, "latency_repeats": b["latency_repeats"],
                    "activation_dtype": "float32", "qlora_steps": args.qlora_steps, "hardware": hardware(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
        data = {"model": str(path), "environment": environment(), "settings": settings, "variants": table}
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
