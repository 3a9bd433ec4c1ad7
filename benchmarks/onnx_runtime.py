#!/usr/bin/env python
"""PyTorch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8 vs bitsandbytes int8/nf4, side by side, on CPU.

    python benchmarks/onnx_runtime.py --json benchmarks/results/onnx.json             # the default run (< ~10 min, 2 cores)
    python benchmarks/onnx_runtime.py --student outputs/distill_clip --rounds 5 --json benchmarks/results/onnx.json
    python benchmarks/onnx_runtime.py --rounds 3 --images-per-number 5 --skip-vit      # a quick look

Three models:

- the embedded teacher (``load_checkpoint()``): PyTorch fp32, ONNX Runtime fp32 and int8 (``export_onnx``, int8 =
  ``onnxruntime.quantization.quantize_dynamic`` QInt8 weights), bitsandbytes LLM.int8 and nf4 (``quantize``);
  timed: the image+text forward the harness times (``adapter.latency_forward``: both towers' embeddings);
- a distilled student (pruned teacher -> distilled with ``vlmcompress distill``; ``--student DIR`` takes an existing
  one, else ``--student-steps`` steps are trained here first): PyTorch fp32, ONNX Runtime fp32 and int8; its
  ONNX int8 row is also reported as the chain prune -> distill -> ONNX int8 against the teacher in PyTorch fp32
  (bytes, latency, accuracy kept);
- a ViT-B/32-sized CLIP image tower (``CLIPVisionModelWithProjection``: 12 layers, width 768, MLP 3072, 12 heads,
  patch 32, 224 px, projection 512; random weights, so speed only), unpruned and with 50% of the heads of every
  layer and 50% of the MLP neurons of every layer removed (``vlmcompress.pruning.structural``), each in PyTorch fp32,
  ONNX Runtime fp32 and int8 (``torch.onnx.export``, opset 17, ``dynamo=False``; ``export_onnx`` takes two-tower
  models only); timed: ``pixel_values`` -> ``image_embeds``.

Latency: --rounds interleaved rounds; in each round every batch size (--batch-sizes) and every variant is timed
once (--warmup untimed calls, then the median of --repeats timed calls, more for fast calls so that they last
about --min-time-ms), the order of the variants rotating from
round to round, so load from other processes on a shared machine hits all variants alike. Each figure is the median
over rounds with its min-max; speed-ups against PyTorch fp32 of the same model are computed per round (then median,
min, max). torch runs with --threads threads; ONNX Runtime sessions with intra_op_num_threads = --threads and
inter_op_num_threads = 1, in the same process. Accuracy: ``evaluate_model`` on the embedded test split (100-way
zero-shot, numbers seen in training / held-out numbers), for the trained models only.

Refuses to run with OMP_WAIT_POLICY=ACTIVE (spinning PyTorch threads would take the cores from ONNX Runtime's). The
distillation runs in its own process (``vlmcompress distill`` sets the training thread policy there only) before
anything is timed. ``--json`` writes environment, settings, rows, the chain row and every target with its measured
value and met / not met.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import hardware, refuse_active_wait_policy
else:  # run as a script: its folder is first on sys.path
    from _common import hardware, refuse_active_wait_policy

SCRIPT = "benchmarks/onnx_runtime.py"
TEACHER, STUDENT, VIT, VIT_PRUNED = ("embedded teacher", "distilled student", "ViT-B/32 image tower",
                                     "ViT-B/32 image tower, pruned")
VIT_CONFIG = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=224, patch_size=32, projection_dim=512)
TARGETS = {  # name: (description, threshold)
    "vit_int8_speedup_b8": ("ViT-B/32 image tower: ONNX Runtime int8 vs PyTorch fp32 at batch 8, speed-up >= 2.0x", 2.0),
    "vit_pruned_int8_speedup_b8": ("ViT-B/32 image tower pruned (50% heads + 50% MLP): ONNX Runtime int8 vs the "
                                   "unpruned tower in PyTorch fp32 at batch 8, speed-up >= 3.0x", 3.0),
    "teacher_int8_accuracy_drop": ("embedded teacher: ONNX Runtime int8 loses <= 1.0 point of zero-shot accuracy "
                                   "(seen and held-out numbers)", 1.0),
}
TARGET_BATCH = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads and ONNX Runtime intra-op threads")
    parser.add_argument("--batch-sizes", default="1,8,32", help="comma-separated latency batch sizes")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds (at least 1; 5+ advised)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before each timed figure")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure (their median is the figure)")
    parser.add_argument("--min-time-ms", type=float, default=100.0,
                        help="time more calls than --repeats when they are fast, so that one figure's timed calls "
                             f"last about this long (at most {MAX_CALLS} calls)")
    parser.add_argument("--images-per-number", type=int, default=20,
                        help="embedded test images per number for accuracy (20 = the whole test split)")
    parser.add_argument("--student", help="a distilled student folder (default: distil one here first)")
    parser.add_argument("--student-steps", type=int, default=300,
                        help="steps of `vlmcompress distill` when --student is not given (its default student: "
                             "teacher layers 0, 2, ... kept, 25%% of MLP neurons removed)")
    parser.add_argument("--skip-student", action="store_true", help="no student rows and no chain row")
    parser.add_argument("--skip-bnb", action="store_true", help="no bitsandbytes rows")
    parser.add_argument("--skip-vit", action="store_true", help="no ViT-B/32 rows (and no speed targets)")
    parser.add_argument("--output-dir", help="keep exported folders here (default: a new temporary folder; it must "
                        "not hold an earlier run's exports)")
    parser.add_argument("--json", help="write environment, settings, rows, chain and targets as JSON")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",") if b.strip()]
    if args.rounds < 1 or args.repeats < 1 or args.warmup < 0 or not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error("--rounds and --repeats must be >= 1, --warmup >= 0, batch sizes >= 1")
    return args


# --- the student ------------------------------------------------------------------------------------------------
def distil_student(out_dir: Path, args) -> dict:
    """Run ``vlmcompress distill`` in its own process; return what was run."""
    folder = out_dir / "student"
    cmd = [sys.executable, "-m", "vlmcompress", "distill", "--output_dir", str(folder), "--overwrite_output_dir",
           "true", "--max_steps", str(args.student_steps), "--threads", str(args.threads), "--skip_eval", "true",
           "--disable_tqdm", "true"]
    log = out_dir / "distill.log"
    print(f"distilling the student: {' '.join(cmd[1:])} (log: {log})", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if rc:
        tail = log.read_text().strip().splitlines()[-5:]
        sys.exit(f"{SCRIPT}: `vlmcompress distill` failed (exit {rc}):\n" + "\n".join(tail))
    shown = " ".join("OUTPUT_DIR/student" if c == str(folder) else c for c in cmd[3:])
    return {"command": f"vlmcompress {shown}", "wall_time_s": wall, "path": str(folder)}


def student_record(folder: Path, made: dict | None) -> dict:
    """What the student's own compression_report.json says about how it was made."""
    from vlmcompress import read_report

    report = read_report(folder)
    steps = report.get("steps") or []
    distill = next((s for s in steps if s.get("method") == "distillation"), {})
    init = next((s for s in steps if s.get("method") == "student_from_teacher"), {})
    training = distill.get("training") or {}
    return {"path": "made by this run" if made else str(folder), "made_here": made and {k: v for k, v in made.items() if k != "path"},
            "distillation_max_steps": distill.get("max_steps"), "distillation_global_step": training.get("global_step"),
            "distillation_batch_size": distill.get("batch_size"), "losses": distill.get("losses"),
            "student_init_pruning": init.get("pruning"),
            "pruning_steps": [_step_summary(s) for s in steps if s.get("method", "").endswith("_pruning")]}


def _step_summary(step: dict) -> dict:
    """A pruning step with counts instead of the lists of removed head and neuron indices."""
    out = {}
    for key, value in step.items():
        if key in ("removed_heads", "removed_neurons") and isinstance(value, dict):
            value = {tower: {layer: len(units) for layer, units in layers.items()} for tower, layers in value.items()}
            key = key + "_count"
        out[key] = value
    return out


# --- the ViT-B/32-sized tower -----------------------------------------------------------------------------------
def build_vits(torch):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from vlmcompress.pruning.structural import prune_heads, prune_mlp

    torch.manual_seed(0)
    config = CLIPVisionConfig(**VIT_CONFIG)
    vit = CLIPVisionModelWithProjection(config).eval()
    pruned = CLIPVisionModelWithProjection(config).eval()
    pruned.load_state_dict(vit.state_dict())
    layers, heads, neurons = config.num_hidden_layers, config.num_attention_heads, config.intermediate_size
    # random weights: which units go does not matter for speed; the second half of each layer's heads and neurons
    head_step = prune_heads(pruned, {"vision": {i: list(range(heads // 2, heads)) for i in range(layers)}})
    mlp_step = prune_mlp(pruned, {"vision": {i: list(range(neurons // 2, neurons)) for i in range(layers)}})
    removed = {"heads_removed_per_layer": heads - heads // 2, "heads_per_layer": heads,
               "mlp_neurons_removed_per_layer": neurons - neurons // 2, "mlp_neurons_per_layer": neurons,
               "pruned_with": "vlmcompress.pruning.structural.prune_heads + prune_mlp",
               "steps": [head_step["method"], mlp_step["method"]]}
    return vit, pruned, removed


def export_vit(torch, model, folder: Path) -> dict:
    """fp32 graph (torch.onnx.export, opset 17, dynamo=False) and its dynamic int8 copy (quantize_dynamic QInt8)."""
    import logging
    import warnings

    from onnxruntime.quantization import QuantType, quantize_dynamic

    class _ImageEmbeds(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).image_embeds

    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = folder / "image_encoder.onnx", folder / "image_encoder.int8.onnx"
    sample = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_ImageEmbeds(model), (sample,), str(fp32), input_names=["pixel_values"],
                          output_names=["image_embeds"], opset_version=17, dynamo=False, do_constant_folding=True,
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return {"fp32": fp32, "int8": int8}


def ort_session(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity(torch, model, session) -> dict:
    """ONNX Runtime against PyTorch on 5 seeded inputs (another batch size than the traced one)."""
    import numpy as np

    x = torch.randn(5, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = model(pixel_values=x).image_embeds.numpy()
    got = session.run(None, {"pixel_values": x.numpy()})[0]
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
    return {"max_abs_diff": float(np.abs(got - ref).max()), "min_cosine": float(cos.min()), "samples": 5}


# --- timing -----------------------------------------------------------------------------------------------------
MAX_CALLS = 200


def time_call(fn, warmup: int, repeats: int, min_time_ms: float) -> tuple[float, int]:
    """(median ms of the timed calls, how many were timed): ``repeats`` calls, or more for fast calls so that the
    timed calls of one figure together last about ``min_time_ms`` (at most MAX_CALLS)."""
    for _ in range(warmup):
        fn()
    times = []
    target = repeats
    while len(times) < target:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        if len(times) == 1:
            target = min(MAX_CALLS, max(repeats, int(min_time_ms / max(times[0], 1e-3)) + 1))
    return statistics.median(times), len(times)


def spread(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv=None) -> int:
    args = parse_args(argv)
    refuse_active_wait_policy(SCRIPT)  # before torch (and its OpenMP runtime) is imported
    import torch

    import numpy as np
    import onnxruntime

    from vlmcompress import QuantizationConfig, evaluate_model, export_onnx, load_checkpoint, quantize
    from vlmcompress.adapters import get_adapter
    from vlmcompress.embedded import digits
    from vlmcompress.errors import VlmcompressError
    from vlmcompress.evaluation.harness import size_on_disk
    from vlmcompress.export.onnx import export_graphs
    from vlmcompress.modeling.onnx_runtime import OnnxModel
    from vlmcompress.report import environment

    torch.set_num_threads(args.threads)
    out_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="vlmcompress-bench-onnx-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # 1. the student first: training takes the cores, nothing may be timed beside it
    student_info = None
    if not args.skip_student:
        made = None
        if args.student:
            student_path = Path(args.student)
        else:
            made = distil_student(out_dir, args)
            student_path = Path(made["path"])
        student_info = student_record(student_path, made)

    # 2. exports and accuracy (export_onnx measures the PyTorch model and the graphs with the same harness)
    kw = dict(images_per_number=args.images_per_number, latency_batch_size=TARGET_BATCH, latency_rounds=args.rounds,
              overwrite=True)
    rows = {}  # name -> row
    timed = {}  # name -> (reference row name, make_fn(batch) -> callable)
    teacher, processor, teacher_path = load_checkpoint()

    def onnx_rows(model_label, source, prefix):
        reports = {}
        for int8 in (False, True):
            tag = "int8" if int8 else "fp32"
            print(f"exporting {model_label} to ONNX ({tag}) and measuring it", flush=True)
            reports[tag] = export_onnx(str(source), out_dir / f"{prefix}-onnx-{tag}", int8=int8, evaluate=True, **kw)
        pt_metrics = reports["fp32"]["before"]
        rows[f"{model_label} | PyTorch fp32"] = dict(
            model=model_label, runtime=f"torch {torch.__version__}", precision="fp32", timed="image+text forward",
            bytes=pt_metrics["size_bytes"], bytes_what="weights on disk (safetensors)", params=pt_metrics["params"],
            metrics=pt_metrics)
        for tag, report in reports.items():
            step = report["steps"][-1]
            rows[f"{model_label} | ONNX Runtime {tag}"] = dict(
                model=model_label, runtime=f"onnxruntime {onnxruntime.__version__}",
                precision="int8 (dynamic, QInt8 weights)" if tag == "int8" else "fp32", timed="image+text forward",
                bytes=sum(g["bytes"] for g in step["graphs"].values()), bytes_what="ONNX graphs (image + text)",
                params=report["after"]["params"], metrics=report["after"], parity=step["parity"],
                export_latency_vs_pytorch=report["after"].get("latency_vs_base"), folder=str(out_dir / f"{prefix}-onnx-{tag}"))
        return reports

    onnx_rows(TEACHER, teacher_path, "teacher")
    if not args.skip_bnb:
        import logging

        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
        for tag, config in (("LLM.int8", QuantizationConfig(bits=8)), ("nf4", QuantizationConfig(bits=4, quant_type="nf4"))):
            print(f"bitsandbytes {tag} of the teacher", flush=True)
            q = quantize(str(teacher_path), config)
            m = evaluate_model(q, processor, images_per_number=args.images_per_number, latency_batch_size=TARGET_BATCH)
            step = getattr(q, "vlmcompress_quantization", None)
            rows[f"{TEACHER} | bitsandbytes {tag}"] = dict(
                model=TEACHER, runtime=f"bitsandbytes {__import__('bitsandbytes').__version__} (torch)",
                precision=f"{tag} weights, fp32 activations", timed="image+text forward", bytes=m["size_bytes"],
                bytes_what="weights on disk (a fresh save_pretrained)", params=m["params"], metrics=m,
                quantization_step=step, _model=q)
    if student_info is not None:
        onnx_rows(STUDENT, student_path, "student")

    # 3. the ViT-B/32-sized tower
    vit_info = None
    if not args.skip_vit:
        print("building and exporting the ViT-B/32-sized image tower (random weights)", flush=True)
        vit, vit_pruned, removed = build_vits(torch)
        try:
            export_graphs(vit, None, out_dir / "vit-export-graphs")
            refused = None
        except VlmcompressError as exc:
            refused = str(exc)
        vit_info = {"config": VIT_CONFIG, "weights": "random (torch.manual_seed(0)); speed only, no accuracy",
                    "pruned": removed, "export": "torch.onnx.export opset 17 dynamo=False + "
                    "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8)",
                    "export_graphs_refused": refused}
        for label, model, prefix in ((VIT, vit, "vit"), (VIT_PRUNED, vit_pruned, "vit-pruned")):
            graphs = export_vit(torch, model, out_dir / prefix)
            params = sum(p.numel() for p in model.parameters())
            rows[f"{label} | PyTorch fp32"] = dict(
                model=label, runtime=f"torch {torch.__version__}", precision="fp32", timed="image tower forward",
                bytes=size_on_disk(model), bytes_what="weights on disk (safetensors)", params=params, metrics=None,
                _model=model)
            for tag, path in graphs.items():
                session = ort_session(path, args.threads)
                rows[f"{label} | ONNX Runtime {tag}"] = dict(
                    model=label, runtime=f"onnxruntime {onnxruntime.__version__}",
                    precision="int8 (dynamic, QInt8 weights)" if tag == "int8" else "fp32",
                    timed="image tower forward", bytes=path.stat().st_size, bytes_what="ONNX graph", params=params,
                    metrics=None, parity=parity(torch, model, session), _session=session)

    # 4. inputs and callables for the timing
    test = digits.load_digits_dataset("test", images_per_number=1)
    image_processor = getattr(processor, "image_processor", processor)
    tokenizer = getattr(processor, "tokenizer", processor)
    inputs = {}
    for b in args.batch_sizes:
        idx = [i % len(test) for i in range(b)]
        pv = image_processor(images=[test["image"][i] for i in idx], return_tensors="pt")["pixel_values"]
        enc = tokenizer([test["text"][i] for i in idx], truncation=True, return_tensors="pt",
                        **get_adapter(teacher).text_padding)
        vit_pv = torch.randn(b, 3, 224, 224, generator=torch.Generator().manual_seed(b))
        inputs[b] = (pv, enc["input_ids"], enc.get("attention_mask"), vit_pv)

    loaded = {}
    for name, row in rows.items():
        model_label, runtime = row["model"], name.split(" | ", 1)[1]
        if model_label in (TEACHER, STUDENT):
            if "_model" in row:
                model = row["_model"]
            elif runtime.startswith("ONNX"):
                model = OnnxModel(row["folder"], threads=args.threads)
            elif model_label == TEACHER:
                model = teacher.eval()
            else:
                model = load_checkpoint(str(student_path))[0].eval()
            adapter = get_adapter(model)

            def make(b, adapter=adapter):
                pv, ids, mask, _ = inputs[b]

                def fn():
                    with torch.inference_mode():
                        adapter.latency_forward(pv, ids, mask)
                return fn
        elif "_session" in row:
            def make(b, session=row["_session"]):
                x = np.ascontiguousarray(inputs[b][3].numpy())
                return lambda: session.run(None, {"pixel_values": x})
        else:
            def make(b, model=row["_model"]):
                x = inputs[b][3]

                def fn():
                    with torch.inference_mode():
                        model(pixel_values=x).image_embeds
                return fn
        loaded[name] = make
        reference = {TEACHER: f"{TEACHER} | PyTorch fp32", STUDENT: f"{STUDENT} | PyTorch fp32",
                     VIT: f"{VIT} | PyTorch fp32", VIT_PRUNED: f"{VIT} | PyTorch fp32"}[model_label]
        row["reference"] = reference

    # 5. interleaved rounds
    names = list(rows)
    per_round = {name: {b: [] for b in args.batch_sizes} for name in names}
    calls = {name: {b: [] for b in args.batch_sizes} for name in names}
    print(f"timing {len(names)} variants x batch {args.batch_sizes} over {args.rounds} interleaved rounds", flush=True)
    t_timing = time.perf_counter()
    for r in range(args.rounds):
        for b in args.batch_sizes:
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                figure, n = time_call(loaded[name](b), args.warmup, args.repeats, args.min_time_ms)
                per_round[name][b].append(figure)
                calls[name][b].append(n)
        print(f"  round {r + 1}/{args.rounds} done ({time.perf_counter() - t_timing:.0f} s)", flush=True)
    timing_s = time.perf_counter() - t_timing

    for name, row in rows.items():
        row["latency"] = {}
        for b in args.batch_sizes:
            ms = per_round[name][b]
            ref = per_round[row["reference"]][b]
            speedups = [rf / t for rf, t in zip(ref, ms)]
            row["latency"][str(b)] = {"ms": spread(ms), "ms_per_round": ms, "timed_calls_per_round": calls[name][b],
                                      "speedup_vs_reference": spread(speedups)}

    # 6. the chain row: prune -> distill -> ONNX int8, against the teacher in PyTorch fp32
    chain = None
    if student_info is not None:
        s_row, t_row = rows[f"{STUDENT} | ONNX Runtime int8"], rows[f"{TEACHER} | PyTorch fp32"]
        sm, tm = s_row["metrics"], t_row["metrics"]
        chain = {"row": f"{STUDENT} | ONNX Runtime int8", "against": f"{TEACHER} | PyTorch fp32",
                 "bytes": s_row["bytes"], "teacher_bytes": t_row["bytes"], "bytes_ratio": s_row["bytes"] / t_row["bytes"],
                 "latency": {}, "zero_shot_accuracy": sm["zero_shot_accuracy"],
                 "zero_shot_accuracy_heldout": sm["zero_shot_accuracy_heldout"],
                 "accuracy_kept_seen": sm["zero_shot_accuracy"] / tm["zero_shot_accuracy"],
                 "accuracy_kept_heldout": (sm["zero_shot_accuracy_heldout"] / tm["zero_shot_accuracy_heldout"]
                                           if tm["zero_shot_accuracy_heldout"] else None)}
        for b in args.batch_sizes:
            ms, ref = per_round[chain["row"]][b], per_round[chain["against"]][b]
            chain["latency"][str(b)] = {"ms": spread(ms), "teacher_ms": spread(ref),
                                        "speedup_vs_teacher": spread([rf / t for rf, t in zip(ref, ms)])}

    # 7. targets
    targets = {}
    if not args.skip_vit and TARGET_BATCH in args.batch_sizes:
        for key, name in (("vit_int8_speedup_b8", f"{VIT} | ONNX Runtime int8"),
                          ("vit_pruned_int8_speedup_b8", f"{VIT_PRUNED} | ONNX Runtime int8")):
            s = rows[name]["latency"][str(TARGET_BATCH)]["speedup_vs_reference"]
            text, threshold = TARGETS[key]
            targets[key] = {"target": text, "threshold": threshold, "row": name, "against": rows[name]["reference"],
                            "measured": s["median"], "measured_min": s["min"], "measured_max": s["max"],
                            "met": s["median"] >= threshold}
    else:
        for key in ("vit_int8_speedup_b8", "vit_pruned_int8_speedup_b8"):
            text, threshold = TARGETS[key]
            why = "--skip-vit" if args.skip_vit else f"batch {TARGET_BATCH} not in --batch-sizes"
            targets[key] = {"target": text, "threshold": threshold, "measured": None, "met": None,
                            "not_measured_because": why}
    pt, q8 = rows[f"{TEACHER} | PyTorch fp32"]["metrics"], rows[f"{TEACHER} | ONNX Runtime int8"]["metrics"]
    drops = {"seen": 100 * (pt["zero_shot_accuracy"] - q8["zero_shot_accuracy"]),
             "heldout": 100 * (pt["zero_shot_accuracy_heldout"] - q8["zero_shot_accuracy_heldout"])}
    text, threshold = TARGETS["teacher_int8_accuracy_drop"]
    targets["teacher_int8_accuracy_drop"] = {"target": text, "threshold": threshold,
                                             "row": f"{TEACHER} | ONNX Runtime int8", "against": f"{TEACHER} | PyTorch fp32",
                                             "measured": max(drops.values()), "measured_seen": drops["seen"],
                                             "measured_heldout": drops["heldout"],
                                             "met": max(drops.values()) <= threshold}

    # 8. print
    env = environment()
    settings = {"threads": args.threads, "torch_threads": torch.get_num_threads(),
                "onnxruntime_intra_op_threads": args.threads, "onnxruntime_inter_op_threads": 1,
                "batch_sizes": args.batch_sizes, "rounds": args.rounds, "warmup_calls": args.warmup,
                "timed_calls_per_figure": args.repeats,
                "min_time_per_figure_ms": args.min_time_ms, "max_timed_calls_per_figure": MAX_CALLS, "dtype": "float32 activations",
                "images_per_number": args.images_per_number,
                "eval_images": pt.get("eval_images"), "eval_dataset": pt.get("eval_dataset"),
                "teacher": "embedded teacher", "student": student_info, "vit": vit_info,
                "hardware": hardware(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "onnxruntime": onnxruntime.__version__, "timing_wall_s": timing_s,
                "wall_s": time.perf_counter() - started, "same_process": "torch and ONNX Runtime"}
    print(f"\n{hardware()}; torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
          f"{onnxruntime.__version__} (intra-op {args.threads}, inter-op 1), same process; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY') or 'unset'}; fp32 activations; latency: median over {args.rounds} "
          f"interleaved rounds (each the median of >= {args.repeats} calls, ~{args.min_time_ms:.0f} ms of them, after {args.warmup} warm-up) [min-max]; "
          f"x: speed-up against the group's PyTorch fp32, per round; accuracy on {pt.get('eval_images')} embedded "
          f"test images")
    bs = args.batch_sizes
    header = f"{'variant':48s} {'bytes':>11s} " + " ".join(f"{f'b{b} ms [min-max]':>22s} {'x':>5s}" for b in bs) \
        + f" {'seen':>6s} {'held':>6s}"
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        cells = []
        for b in bs:
            lat = row["latency"][str(b)]
            cells.append(f"{lat['ms']['median']:9.2f} [{lat['ms']['min']:.1f}-{lat['ms']['max']:.1f}]".rjust(22)
                         + f" {lat['speedup_vs_reference']['median']:5.2f}")
        m = row["metrics"] or {}
        acc = " ".join("     -" if m.get(k) is None else f"{100 * m[k]:5.1f}%"
                       for k in ("zero_shot_accuracy", "zero_shot_accuracy_heldout"))
        print(f"{name:48s} {row['bytes']:>11,d} " + " ".join(cells) + f" {acc}")
    if vit_info and vit_info["export_graphs_refused"]:
        print(f"note: export_graphs refused the one-tower model ({vit_info['export_graphs_refused']}); the tower "
              "was exported with torch.onnx.export directly")
    if chain:
        print(f"\nchain prune -> distill -> ONNX int8 ({chain['row']} vs {chain['against']}): bytes "
              f"{chain['bytes']:,d} / {chain['teacher_bytes']:,d} = {chain['bytes_ratio']:.3f}x; "
              + "; ".join(f"b{b} {chain['latency'][str(b)]['ms']['median']:.2f} ms vs "
                          f"{chain['latency'][str(b)]['teacher_ms']['median']:.2f} ms = "
                          f"{chain['latency'][str(b)]['speedup_vs_teacher']['median']:.2f}x faster" for b in bs)
              + f"; accuracy kept: seen {100 * chain['accuracy_kept_seen']:.1f}%, held-out "
              + ("-" if chain["accuracy_kept_heldout"] is None else f"{100 * chain['accuracy_kept_heldout']:.1f}%"))
    print("\ntargets:")
    for key, t in targets.items():
        if key == "teacher_int8_accuracy_drop":
            value = f"seen {t['measured_seen']:+.2f} pt, held-out {t['measured_heldout']:+.2f} pt"
        elif t["measured"] is None:
            value = f"not measured ({t['not_measured_because']})"
        else:
            value = f"{t['measured']:.2f}x (rounds {t['measured_min']:.2f}-{t['measured_max']:.2f})"
        result = "not measured" if t["met"] is None else "met" if t["met"] else "NOT met"
        print(f"  {t['target']}: {value} -> {result}")
    print(f"folders: {out_dir}; whole run {settings['wall_s']:.0f} s")

    if args.json:
        clean = {name: {k: v for k, v in row.items() if not k.startswith("_")} for name, row in rows.items()}
        data = {"environment": env, "settings": settings, "rows": clean, "chain": chain, "targets": targets}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


def run(argv=None) -> int:
    """main, with the library's one-line errors as one line on stderr and exit status 1."""
    try:
        return main(argv)
    except Exception as exc:  # noqa: BLE001 - only vlmcompress's own errors are shortened
        if type(exc).__name__ != "VlmcompressError":
            raise
        sys.exit(f"{SCRIPT}: {exc}")


if __name__ == "__main__":
    sys.exit(run())
