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
Every folder gets a ``compression_report.json`` (before = fp32); ``--json`` writes all rows.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

from vlmcompress.evaluation import evaluate_model  # noqa: E402
from vlmcompress.evaluation.harness import measure_latency  # noqa: E402
from vlmcompress.loading import load_model  # noqa: E402
from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized, weight_bytes  # noqa: E402
from vlmcompress.report import new_report, write_report  # noqa: E402

VARIANTS = {
    "int8": QuantizationConfig(bits=8),
    "nf4": QuantizationConfig(bits=4, quant_type="nf4"),
    "nf4+dq": QuantizationConfig(bits=4, quant_type="nf4", double_quant=True),
    "fp4": QuantizationConfig(bits=4, quant_type="fp4"),
}
TARGET_DROP = {"int8": 0.5, "nf4": 2.0, "nf4+dq": 2.0, "fp4": 2.0, "nf4+qlora": 1.0, "nf4+qlora merged": 1.0}
TARGET_LINEAR = {"int8": 0.27, "nf4": 0.15, "nf4+dq": 0.15}


def interleaved_latency(models, processor, batch_size, rounds):
    """Median over ``rounds`` of each model's latency (itself a median of 7 timed batches), the models taking turns
    in every round, so load from other processes on a shared machine hits all of them alike."""
    from vlmcompress.adapters import get_adapter
    from vlmcompress.data import digits

    ds = digits.load_digits_dataset("test", images_per_number=1)
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name].append(measure_latency(get_adapter(model), processor.image_processor, processor.tokenizer,
                                               ds["image"], ds["text"], batch_size=batch_size))
    return {name: statistics.median(t) for name, t in times.items()}, times


def run_qlora(base_folder, processor, base_metrics, args, kw, out_dir, rows, timed):
    from transformers import TrainingArguments

    from vlmcompress.data import digits
    from vlmcompress.quantization.qlora import merge_qlora_model, qlora_step, save_qlora_adapter, train_qlora

    quantized, _, _ = load_model(str(base_folder))
    train = digits.load_digits_dataset("train", images_per_number=args.qlora_images_per_number)
    targs = TrainingArguments(output_dir=str(out_dir / "qlora-trainer"), max_steps=args.qlora_steps,
                              per_device_train_batch_size=args.qlora_batch_size, learning_rate=args.qlora_lr,
                              lr_scheduler_type="cosine", warmup_steps=max(1, args.qlora_steps // 20),
                              weight_decay=0.0, use_cpu=True, report_to=[], save_strategy="no", logging_steps=25,
                              disable_tqdm=True, seed=0, dataloader_num_workers=0)
    t0 = time.perf_counter()
    model, trainer = train_qlora(quantized, processor, train, targs, r=args.lora_r, alpha=2 * args.lora_r)
    train_s = time.perf_counter() - t0
    folder = out_dir / "nf4+qlora"
    shutil.copytree(base_folder, folder, dirs_exist_ok=True)  # the quantized base the adapter was trained on
    save_qlora_adapter(model, folder)
    m = evaluate_model(model.get_base_model(), processor, model_path=folder, **kw)
    m["train_seconds"] = train_s
    m["loss_log"] = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    # the quantized base is the nf4 row's; the adapter adds its own bytes to size_bytes
    rows["nf4+qlora"] = (m, rows["nf4"][1], qlora_step(model, max_steps=args.qlora_steps, kept="adapter"))
    timed["nf4+qlora"] = model.get_base_model()
    merged = merge_qlora_model(model, base_folder, VARIANTS["nf4"])
    mfolder = out_dir / "nf4+qlora merged"
    save_quantized(merged, processor, mfolder, VARIANTS["nf4"])
    mm = evaluate_model(merged, processor, model_path=mfolder, **kw)
    rows["nf4+qlora merged"] = (mm, weight_bytes(merged, mfolder),
                                qlora_step(model, max_steps=args.qlora_steps, kept="merged"))
    timed["nf4+qlora merged"] = merged
    for name, f in (("nf4+qlora", folder), ("nf4+qlora merged", mfolder)):
        steps = [merged.vlmcompress_quantization, rows[name][2]]
        write_report(new_report(base_model="fp32", model_family="clip", steps=steps, before=base_metrics,
                                after=rows[name][0]), f)


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
    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="vlmcompress-bench-quant-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    kw = dict(images_per_number=args.images_per_number, latency_batch_size=args.latency_batch_size)

    base, processor, path = load_model(args.model)
    base_metrics = evaluate_model(base, processor, model_path=path, **kw)
    rows = {"fp32": (base_metrics, weight_bytes(base, path), None)}
    timed, stock = {"fp32": base}, {}
    for name, config in VARIANTS.items():
        model = quantize(path, config)
        folder = out_dir / name
        save_quantized(model, processor, folder, config)
        m = evaluate_model(model, processor, model_path=folder, **kw)
        rows[name] = (m, weight_bytes(model, folder), model.vlmcompress_quantization)
        timed[name] = model
        if config.bits == 4:
            from transformers import AutoModel

            stock[name] = AutoModel.from_pretrained(folder).eval()
        write_report(new_report(base_model=str(path), model_family="clip", steps=[model.vlmcompress_quantization],
                                before=base_metrics, after=m), folder)
    if args.qlora_steps:
        run_qlora(out_dir / "nf4", processor, base_metrics, args, kw, out_dir, rows, timed)
    medians, all_times = interleaved_latency({**timed, **{f"{n} (stock)": m for n, m in stock.items()}}, processor,
                                             args.latency_batch_size, args.latency_rounds)
    for name, (m, _, _) in rows.items():
        m["latency_ms_single_run"] = m["latency_ms"]
        m["latency_ms"] = medians[name]
        m["latency_rounds"] = all_times[name]
        if name in stock:
            m["latency_ms_stock_reload"] = medians[f"{name} (stock)"]
    for name, (m, _, step) in rows.items():  # reports carry the interleaved latency too
        if name != "fp32":
            steps = [step] if name in VARIANTS else [rows["nf4"][2], step]
            write_report(new_report(base_model=str(path), model_family="clip", steps=steps, before=base_metrics,
                                    after=m), out_dir / name)

    b = base_metrics
    print(f"model: {path}; CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, shared), "
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
        Path(args.json).write_text(json.dumps({"model": str(path), "variants": table}, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
