#!/usr/bin/env python
"""Real-sized models (random weights): does structural pruning turn into latency as its FLOPs say?

    python benchmarks/real_size.py --json benchmarks/results/real_size.json   # the full CPU run (~15-25 min, 2 cores)
    python benchmarks/real_size.py --quick --json /tmp/real_size.json         # < 60 s: tiny rounds, 2 layers per tower
    python benchmarks/real_size.py --device cuda --json $OUT/real_size_gpu.json  # on a GPU (fp16, int8, nf4)

Three parts, each built with vlmcompress's public API (``PruningConfig`` + ``prune_model``, ``QuantizationConfig`` +
``quantize``, ``DistillationTrainer``) on randomly initialised models with the published models' shapes (nothing is
downloaded; weights are random, so speed and memory only — random weights make the choice of units irrelevant and
magnitude importance is used):

1. CLIP with openai/clip-vit-base-patch32's shapes (text 512 x 12 layers, 8 heads, MLP 2048, vocab 49408, 77
   positions; vision 768 x 12 layers, 12 heads, MLP 3072, 224 px, patch 32; projection 512; quick_gelu). Variants:
   fp32, heads -50% (per layer, every layer, both towers), MLP -50% (per layer), both, half depth (every other layer
   dropped), bitsandbytes LLM.int8 and nf4. Timed: the image+text forward the harness times
   (``adapter.latency_forward``: both towers' embeddings) on a batch of random 224 px images and 77-token texts.
   FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one such forward at that batch. Ratios vs fp32: FLOP ratio,
   latency ratio (median over rounds of the per-round ratio) and latency ratio / FLOP ratio; target: for structural
   pruning that quotient lies within 1.1x (between 1/1.1 and 1.1) at every batch size.
2. A BLIP captioner with Salesforce/blip-image-captioning-base's shapes (``BlipForConditionalGeneration``; vision
   768 x 12, 12 heads, 384 px, patch 16; text decoder BERT 768 x 12, 12 heads, MLP 3072, vocab 30524): ``generate``
   with exactly --new-tokens new tokens (min = max, greedy, KV cache), fp32 vs decoder self- and cross-attention heads
   -50% vs half-depth decoder. The vision encoder alone is timed in the same turns, so the decoder's share of the time
   (generate - vision) and its achieved GFLOP/s are reported beside the FLOPs, with the number of aten ops one generate
   call dispatches.
3. Peak memory of one ``DistillationTrainer`` step (similarity KL + embedding loss, AdamW) with the ViT-B/32-sized
   teacher in fp32 vs bfloat16 (``DistillationConfig.teacher_dtype``); student: a half-depth copy inheriting the
   teacher's even layers (``prune_model`` with ``layer_strategy="every_k"``).

Latency: every (variant, batch) first runs once under the FLOP counter (the warm-up), then --rounds interleaved rounds;
in each round every batch size and every variant is timed once (--warmup untimed calls, then the median of --repeats
timed calls), the order of the variants rotating from round to round, so load from other processes on a shared machine
hits all variants alike; figures are the median (min-max) over rounds, ratios are per round (then median, min-max).

Memory on CPU: each measurement runs in its own fresh process (``--quick``: all in this process) that builds the model,
returns freed heap to the system (``malloc_trim``), reads its resident set (VmRSS), resets the kernel's peak
(``/proc/self/clear_refs`` = 5, which resets VmHWM), runs the work (one forward per batch size, smallest first, trimming and resetting the peak before each; one
training step) and reads the peak (VmHWM). Reported: the model's resident bytes (RSS after building minus RSS before), the peak
above that resident set during the work (activations, workspaces, for training also gradients and optimizer state),
the process peak, and ``get_memory_footprint()``. On CUDA: ``torch.cuda.max_memory_allocated`` in this process.

Threads: --threads (default 2) for torch. Refuses to run with OMP_WAIT_POLICY=ACTIVE. ``--json`` writes environment,
settings, every row with its FLOPs, latency (per round), ratios, memory, and each target with met / not met.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import SIMILARITY_KL_EMBEDDING, environment, hardware, refuse_active_wait_policy
else:  # run as a script: its folder is first on sys.path
    from _common import SIMILARITY_KL_EMBEDDING, environment, hardware, refuse_active_wait_policy

SCRIPT = "benchmarks/real_size.py"
TARGET_QUOTIENT = 1.1  # latency ratio / FLOP ratio within [1/1.1, 1.1]

#: openai/clip-vit-base-patch32's shapes
CLIP_TEXT = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                 num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=49406,
                 eos_token_id=49407, pad_token_id=1)
CLIP_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   image_size=224, patch_size=32, hidden_act="quick_gelu")
CLIP_PROJECTION = 512
TEXT_LEN = 77
#: Salesforce/blip-image-captioning-base's shapes
BLIP_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   image_size=384, patch_size=16)
BLIP_TEXT = dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=512, bos_token_id=30522, sep_token_id=102,
                 eos_token_id=2, pad_token_id=0)

#: name: (kind, options); kind "prune" -> PruningConfig, "quantize" -> QuantizationConfig
CLIP_VARIANTS = {
    "fp32": (None, None),
    "heads -50%": ("prune", dict(head_ratio=0.5, head_scope="per_layer", importance="magnitude")),
    "MLP -50%": ("prune", dict(mlp_ratio=0.5, mlp_scope="per_layer", importance="magnitude")),
    "heads -50% + MLP -50%": ("prune", dict(head_ratio=0.5, head_scope="per_layer", mlp_ratio=0.5,
                                            mlp_scope="per_layer", importance="magnitude")),
    "half depth": ("prune", dict(layer_strategy="every_k", keep_every=2)),
    "int8": ("quantize", dict(bits=8)),
    "nf4": ("quantize", dict(bits=4, quant_type="nf4")),
}
BLIP_VARIANTS = {
    "fp32": None,
    "decoder heads -50% (self + cross)": dict(towers=["text_decoder"], head_ratio=0.5, head_scope="per_layer",
                                              importance="magnitude"),
    "decoder half depth": dict(towers=["text_decoder"], layer_strategy="every_k", keep_every=2),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cuda-dtype", choices=("float16", "bfloat16"), default="float16",
                        help="--device cuda: the dtype of the unquantized rows and the 4-bit compute dtype")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--batch-sizes", default="8,32", help="CLIP latency/FLOPs/memory batch sizes")
    parser.add_argument("--rounds", type=int, default=8, help="CLIP interleaved latency rounds")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed calls per turn (every call was run once under the FLOP counter before timing)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per turn (their median is the turn's figure)")
    parser.add_argument("--blip-batch-sizes", default="1,8")
    parser.add_argument("--blip-rounds", type=int, default=4)
    parser.add_argument("--blip-repeats", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=20, help="generate exactly this many new tokens")
    parser.add_argument("--distill-batch-size", type=int, default=32)
    parser.add_argument("--skip-blip", action="store_true")
    parser.add_argument("--skip-memory", action="store_true", help="no memory rows (CLIP forward)")
    parser.add_argument("--skip-distill", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="1 layer per tower at half width, batches 1 and 2, 1 round, BLIP at 64 px, 2 new tokens, "
                             "memory measured in this process (a test of the script: < 60 s on a quiet machine)")
    parser.add_argument("--json", help="write environment, settings, rows and targets as JSON")
    parser.add_argument("--importance-cost", action="store_true",
                        help="only time scoring every head and neuron of the CLIP with each data-driven importance "
                        "(fisher, taylor measured; ablation measured on one batch, times the batches), e.g. --json "
                        "benchmarks/results/real_size_importance.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run memory jobs (JSON list) and print results
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.blip_batch_sizes = "1,2", "1,2"
        args.rounds, args.blip_rounds, args.repeats, args.blip_repeats, args.warmup = 1, 1, 1, 1, 0
        args.new_tokens, args.distill_batch_size = 2, 2
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",") if b.strip()]
    args.blip_batch_sizes = [int(b) for b in str(args.blip_batch_sizes).split(",") if b.strip()]
    if min(args.rounds, args.blip_rounds, args.repeats, args.blip_repeats, args.new_tokens, args.threads) < 1 \
            or args.warmup < 0 or min(args.batch_sizes + args.blip_batch_sizes) < 1:
        parser.error("rounds, repeats, new tokens, threads and batch sizes must be >= 1, --warmup >= 0")
    return args


# --- models -----------------------------------------------------------------------------------------------------
#: --quick: one layer per tower and half the widths (head counts kept), for a test of the script itself
QUICK_CLIP = ({"num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 1024, "vocab_size": 1024,
               "bos_token_id": 1022, "eos_token_id": 1023},
              {"num_hidden_layers": 2, "hidden_size": 384, "intermediate_size": 1536})
QUICK_BLIP = ({"num_hidden_layers": 2, "hidden_size": 384, "intermediate_size": 1536, "image_size": 64},
              {"num_hidden_layers": 2, "hidden_size": 384, "intermediate_size": 1536, "vocab_size": 1024,
               "bos_token_id": 1022})


def clip_config(quick: bool):
    from transformers import CLIPConfig

    text, vision = QUICK_CLIP if quick else ({}, {})
    return CLIPConfig(text_config={**CLIP_TEXT, **text}, vision_config={**CLIP_VISION, **vision},
                      projection_dim=CLIP_PROJECTION)


def blip_config(quick: bool):
    from transformers import BlipConfig

    vision, text = dict(BLIP_VISION), dict(BLIP_TEXT)
    if quick:
        vision.update(QUICK_BLIP[0])
        text.update(QUICK_BLIP[1])
    return BlipConfig(vision_config=vision, text_config=text, projection_dim=512)


def build_clip(args, name: str):
    """The CLIP variant ``name``: a fresh random model (seed 0, its own config copy), pruned or quantized."""
    import torch
    from transformers import CLIPModel

    from vlmcompress import PruningConfig, QuantizationConfig, prune_model, quantize

    torch.manual_seed(0)
    model = CLIPModel(copy.deepcopy(clip_config(args.quick))).eval()
    kind, options = CLIP_VARIANTS[name]
    cuda = args.device == "cuda"
    dtype = getattr(torch, args.cuda_dtype) if cuda else torch.float32
    steps = []
    if kind == "prune":
        steps = prune_model(model, PruningConfig(**options))
    if kind == "quantize":
        options = dict(options)
        if cuda:
            options["device"] = "cuda"
            if options["bits"] == 4:
                options["compute_dtype"] = args.cuda_dtype
        source = model.to(dtype)
        model = quantize(source, QuantizationConfig(**options)).eval()
        del source
        steps = [{"method": "quantization", **options}]
    elif cuda:
        model = model.to(device="cuda", dtype=dtype)
    return model.eval(), steps


def build_blip(args, name: str):
    import torch
    from transformers import BlipForConditionalGeneration

    from vlmcompress import PruningConfig, prune_model

    torch.manual_seed(0)
    model = BlipForConditionalGeneration(copy.deepcopy(blip_config(args.quick))).eval()
    options = BLIP_VARIANTS[name]
    steps = prune_model(model, PruningConfig(**options)) if options else []
    if args.device == "cuda":
        model = model.to(device="cuda", dtype=getattr(torch, args.cuda_dtype))
    return model.eval(), steps


def clip_inputs(torch, batch: int, device: str, dtype, quick: bool = False):
    text = {**CLIP_TEXT, **(QUICK_CLIP[0] if quick else {})}
    g = torch.Generator().manual_seed(batch)
    pixel_values = torch.randn(batch, 3, CLIP_VISION["image_size"], CLIP_VISION["image_size"], generator=g)
    input_ids = torch.randint(0, text["bos_token_id"] - 1, (batch, TEXT_LEN), generator=g)
    input_ids[:, 0] = text["bos_token_id"]
    input_ids[:, -1] = text["eos_token_id"]  # pooled from the last position
    return pixel_values.to(device=device, dtype=dtype), input_ids.to(device)


def structure_of(model) -> dict:
    """Layers, heads and MLP widths per tower as the model now has them (what the rows really are)."""
    from vlmcompress.adapters import get_adapter

    adapter = get_adapter(model)
    out = {}
    for tower in adapter.towers():
        layers = adapter.layers(tower)
        heads = {}
        for site, site_tower in adapter.head_sites().items():
            if site_tower == tower:
                heads[site] = [adapter.head_parts(site, layer).num_heads for layer in layers]
        out[tower] = {"layers": len(layers), "heads": heads,
                      "mlp_neurons": [adapter.mlp(layer).num_neurons for layer in layers]}
    return out


def count_flops(torch, fn, with_result: bool = False):
    """(total FLOPs, FLOPs per submodule[, what ``fn`` returned]) of one call of ``fn`` under FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=2)
    with counter:
        result = fn()
    per_module = {}
    for module, ops in counter.get_flop_counts().items():
        if str(module).count(".") <= 1:  # the model, its towers and their direct parts
            per_module[str(module)] = int(sum(ops.values()))
    out = (int(counter.get_total_flops()), per_module)
    return out + (result,) if with_result else out


def count_ops(torch, fn) -> int:
    """How many aten operators one call of ``fn`` dispatches (per-op overhead is paid this many times)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            _Count.n += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return _Count.n


# --- timing -----------------------------------------------------------------------------------------------------
class Clock:
    def __init__(self, torch, device: str):
        self.torch, self.cuda = torch, device == "cuda"

    def __call__(self, fn) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if self.cuda:
            self.torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1000


def turn(clock, fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(clock(fn) for _ in range(repeats))


def spread(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def rotated(names: list, r: int) -> list:
    k = r % len(names)
    return names[k:] + names[:k]


# --- memory (a child process per measurement on CPU) -------------------------------------------------------------
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _PeakMeter:
    """RSS before/after building and the peak during the work, from /proc/self/status (bytes)."""

    def __init__(self):
        _trim()
        self.rss_start = _status_kib("VmRSS") * 1024

    def built(self):
        _trim()
        self.rss_built = _status_kib("VmRSS") * 1024
        self.reset = _reset_peak()

    def done(self) -> dict:
        import resource

        peak = _status_kib("VmHWM") * 1024
        return {"resident_before_bytes": self.rss_start, "resident_built_bytes": self.rss_built,
                "model_resident_bytes": self.rss_built - self.rss_start, "peak_bytes": peak,
                "peak_above_resident_bytes": peak - self.rss_built,
                "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "peak_reset_before_work": self.reset,
                "method": "VmHWM reset via /proc/self/clear_refs" if self.reset else
                          "VmHWM since process start (clear_refs refused: includes the build)"}


def memory_clip_forward(args, torch, name: str, batches: list) -> dict:
    """{batch: memory of one forward}: the model is built once; before each batch (smallest first) freed heap is
    returned to the system and the peak is reset, so each figure is that batch's own peak."""
    from vlmcompress.adapters import get_adapter

    meter = _PeakMeter()
    model, _ = build_clip(args, name)
    adapter = get_adapter(model)
    out = {}
    for batch in sorted(batches):
        pixel_values, input_ids = clip_inputs(torch, batch, "cpu", torch.float32, args.quick)
        meter.built()
        with torch.inference_mode():
            adapter.latency_forward(pixel_values, input_ids, None)
        out[str(batch)] = {**meter.done(), "memory_footprint_bytes": int(model.get_memory_footprint()), "forwards": 1}
        del pixel_values, input_ids
    return out


def _synthetic_rows(torch, n: int, quick: bool):
    from torch.utils.data import Dataset

    pixel_values, input_ids = clip_inputs(torch, n, "cpu", torch.float32, quick)

    class Rows(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"pixel_values": pixel_values[i], "input_ids": input_ids[i],
                    "attention_mask": torch.ones_like(input_ids[i])}

    return Rows()


def distill_step(args, torch, teacher_dtype: str) -> dict:
    """One DistillationTrainer step (similarity KL + embedding loss, AdamW), the teacher in ``teacher_dtype``."""
    import logging

    from transformers import CLIPModel, TrainingArguments
    from transformers.utils import logging as hf_logging

    from vlmcompress import PruningConfig, prune_model
    from vlmcompress.distillation import DistillationConfig, DistillationTrainer

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    cuda = args.device == "cuda"
    meter = None if cuda else _PeakMeter()
    torch.manual_seed(0)
    teacher = CLIPModel(copy.deepcopy(clip_config(args.quick))).eval()
    student = copy.deepcopy(teacher)
    prune_model(student, PruningConfig(layer_strategy="every_k", keep_every=2))
    student.train()
    # the loss the committed figures were measured with (the former default), written out: the step's memory is the
    # two towers' activations and AdamW's state, which the default's contrastive term in place of the embedding term
    # does not change in kind
    cfg = DistillationConfig(**SIMILARITY_KL_EMBEDDING)
    cfg.teacher_dtype = None if teacher_dtype == "float32" else teacher_dtype
    cfg.validate()
    with tempfile.TemporaryDirectory(prefix="vlmcompress-bench-distill-") as tmp:
        targs = TrainingArguments(output_dir=tmp, max_steps=1, per_device_train_batch_size=args.distill_batch_size,
                                  learning_rate=1e-4, report_to=[], save_strategy="no", logging_strategy="no",
                                  remove_unused_columns=False, use_cpu=not cuda, disable_tqdm=True, seed=0,
                                  dataloader_num_workers=0)
        trainer = DistillationTrainer(model=student, args=targs, train_dataset=_synthetic_rows(torch, args.distill_batch_size, args.quick),
                                      teacher=teacher, distillation_config=cfg)
        teacher_bytes = int(trainer.teacher.get_memory_footprint())
        student_bytes = int(student.get_memory_footprint())
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            meter.built()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its run's metrics
            result = trainer.train()
        wall = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        out = {"resident_built_bytes": before, "peak_bytes": peak, "peak_above_resident_bytes": peak - before,
               "method": "torch.cuda.max_memory_allocated"}
    else:
        out = meter.done()
    out.update(teacher_dtype=teacher_dtype, teacher_memory_footprint_bytes=teacher_bytes,
               student_memory_footprint_bytes=student_bytes, batch_size=args.distill_batch_size,
               loss=float(result.training_loss), step_wall_s=wall,
               teacher_params=int(teacher.num_parameters()), student_params=int(student.num_parameters()),
               losses={k: v for k, v in cfg.active_losses().items()})
    return out


def _preimport(job: dict) -> None:
    """Import (and initialise) what a job uses before its first RSS reading, so the model's resident bytes hold no
    library code or one-off runtime buffers."""
    import bitsandbytes  # noqa: F401
    import torch
    from transformers import CLIPModel  # noqa: F401

    import vlmcompress.adapters  # noqa: F401
    import vlmcompress.pruning.config  # noqa: F401
    import vlmcompress.quantization.core  # noqa: F401

    if job["kind"] == "distill":
        import transformers.trainer  # noqa: F401

        import vlmcompress.distillation  # noqa: F401
    with torch.inference_mode():  # the BLAS/oneDNN runtime's first-call set-up
        torch.nn.functional.linear(torch.randn(8, 64), torch.randn(64, 64))


def run_job(args, torch, job: dict) -> dict:
    _preimport(job)
    t0 = time.perf_counter()
    if job["kind"] == "clip_forward":
        out = memory_clip_forward(args, torch, job["variant"], job["batches"])
    else:
        out = distill_step(args, torch, job["teacher_dtype"])
    out["job_wall_s"] = time.perf_counter() - t0
    return out


def run_child(args) -> int:
    import logging
    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    torch.set_num_threads(args.threads)
    results = [run_job(args, torch, job) for job in json.loads(args.child)]
    print("RESULT " + json.dumps(results), flush=True)
    return 0


def child_argv(args) -> list:
    argv = [sys.executable, str(Path(__file__).resolve()), "--threads", str(args.threads), "--device", args.device,
            "--distill-batch-size", str(args.distill_batch_size)]
    return argv + (["--quick"] if args.quick else [])


def run_jobs(args, jobs: list) -> list:
    """Each job in a fresh process (``--quick``: all in this one); returns their results in order."""
    if args.quick:
        import torch

        return [run_job(args, torch, job) for job in jobs]
    results = []
    for group in [[job] for job in jobs]:
        cmd = child_argv(args) + ["--child", json.dumps(group)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            sys.exit(f"{SCRIPT}: memory measurement {group} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        results += json.loads(lines[-1][len("RESULT "):])
        print(f"  memory: {group[0].get('variant') or 'distillation, teacher ' + group[0]['teacher_dtype']} done",
              flush=True)
    return results


def memory_cuda_forward(torch, model, pixel_values, input_ids) -> dict:
    from vlmcompress.adapters import get_adapter

    adapter = get_adapter(model)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.inference_mode():
        adapter.latency_forward(pixel_values, input_ids, None)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {"resident_built_bytes": before, "model_resident_bytes": before, "peak_bytes": peak,
            "peak_above_resident_bytes": peak - before, "memory_footprint_bytes": int(model.get_memory_footprint()),
            "method": "torch.cuda.max_memory_allocated"}


# --- the parts ----------------------------------------------------------------------------------------------------
def clip_part(args, torch, clock) -> dict:
    from vlmcompress.adapters import get_adapter

    cuda = args.device == "cuda"
    dtype = getattr(torch, args.cuda_dtype) if cuda else torch.float32
    models, rows = {}, {}
    for name in CLIP_VARIANTS:
        t0 = time.perf_counter()
        model, steps = build_clip(args, name)
        models[name] = model
        rows[name] = {"kind": CLIP_VARIANTS[name][0] or "baseline", "options": CLIP_VARIANTS[name][1],
                      "params": int(model.num_parameters()), "memory_footprint_bytes": int(model.get_memory_footprint()),
                      "structure": structure_of(model) if CLIP_VARIANTS[name][0] != "quantize" else None,
                      "steps": [{k: v for k, v in s.items() if k not in ("removed_heads", "removed_neurons")}
                                for s in steps],
                      "build_s": time.perf_counter() - t0, "batches": {}}
        print(f"  built {name}: {rows[name]['params']:,d} parameters ({rows[name]['build_s']:.1f} s)", flush=True)
    inputs = {b: clip_inputs(torch, b, args.device, dtype, args.quick) for b in args.batch_sizes}
    calls = {(name, b): (lambda a=get_adapter(m), x=inputs[b]: a.latency_forward(x[0], x[1], None))
             for name, m in models.items() for b in args.batch_sizes}
    with torch.inference_mode():
        for (name, b), fn in calls.items():
            flops, per_module = count_flops(torch, fn)
            entry = {"flops": flops, "flops_counted": flops, "flops_by_module": per_module}
            if rows[name]["kind"] == "quantize":
                # FlopCounterMode does not see bitsandbytes' kernels (it counts only what is left in aten: attention,
                # the patch convolution, the unquantized Linears); the quantized Linears do the fp32 model's work
                entry["flops"] = rows["fp32"]["batches"][str(b)]["flops"]
                entry["flops_note"] = ("the fp32 model's count: the same matmul shapes (FlopCounterMode does not see "
                                       "bitsandbytes' kernels; flops_counted is what it saw)")
            rows[name]["batches"][str(b)] = entry
        times = {key: [] for key in calls}
        names = list(models)
        t0 = time.perf_counter()
        for r in range(args.rounds):
            for b in args.batch_sizes:
                for name in rotated(names, r):
                    times[(name, b)].append(turn(clock, calls[(name, b)], args.warmup, args.repeats))
            print(f"  CLIP round {r + 1}/{args.rounds}: " + ", ".join(
                f"{n} {times[(n, args.batch_sizes[0])][-1]:.0f}" for n in names) + f" ms at batch {args.batch_sizes[0]}",
                flush=True)
        timing_s = time.perf_counter() - t0
    for b in args.batch_sizes:
        base = rows["fp32"]["batches"][str(b)]
        for name in names:
            entry = rows[name]["batches"][str(b)]
            per_round = [t / f for t, f in zip(times[(name, b)], times[("fp32", b)])]
            entry["latency_ms"] = spread(times[(name, b)])
            entry["latency_ms_rounds"] = times[(name, b)]
            entry["latency_ratio"] = spread(per_round)
            entry["flop_ratio"] = entry["flops"] / base["flops"]
            entry["latency_over_flop_ratio"] = entry["latency_ratio"]["median"] / entry["flop_ratio"]
            entry["gflops_per_s"] = entry["flops"] / (entry["latency_ms"]["median"] / 1000) / 1e9
            if rows[name]["kind"] == "prune":
                q = entry["latency_over_flop_ratio"]
                entry["target"] = {"target": f"latency ratio / FLOP ratio within {TARGET_QUOTIENT}x "
                                             f"(between {1 / TARGET_QUOTIENT:.3f} and {TARGET_QUOTIENT})",
                                   "measured": q, "met": 1 / TARGET_QUOTIENT <= q <= TARGET_QUOTIENT}
    if not args.skip_memory and cuda:  # on CPU: child processes, run by main() after every part was timed
        for name, model in models.items():
            for b in args.batch_sizes:
                rows[name]["batches"][str(b)]["memory"] = memory_cuda_forward(torch, model, *inputs[b])
    return {"rows": rows, "timing_wall_s": timing_s}


def blip_part(args, torch, clock) -> dict:
    cuda = args.device == "cuda"
    dtype = getattr(torch, args.cuda_dtype) if cuda else torch.float32
    size = blip_config(args.quick).vision_config.image_size
    models, rows = {}, {}
    for name in BLIP_VARIANTS:
        model, steps = build_blip(args, name)
        models[name] = model
        rows[name] = {"options": BLIP_VARIANTS[name], "params": int(model.num_parameters()),
                      "memory_footprint_bytes": int(model.get_memory_footprint()), "structure": structure_of(model),
                      "steps": [{k: v for k, v in s.items() if k not in ("removed_heads", "removed_neurons")}
                                for s in steps], "batches": {}}
        print(f"  built BLIP {name}: {rows[name]['params']:,d} parameters", flush=True)
    pixels = {b: torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(b)).to(args.device, dtype)
              for b in args.blip_batch_sizes}
    n = args.new_tokens

    def gen(m, x):
        return lambda: m.generate(pixel_values=x, min_new_tokens=n, max_new_tokens=n, do_sample=False, num_beams=1)

    def vis(m, x):
        return lambda: m.vision_model(pixel_values=x)

    # the decoder is all that differs: every variant has the same (unpruned, same-seed) vision tower
    vision_shapes = {name: rows[name]["structure"]["vision"] for name in rows}
    assert all(v == vision_shapes["fp32"] for v in vision_shapes.values()), vision_shapes
    names = list(models)
    with torch.inference_mode():
        vision_flops = {b: count_flops(torch, vis(models["fp32"], pixels[b]))[0] for b in args.blip_batch_sizes}
        b_ops = min(args.blip_batch_sizes)
        vision_ops = count_ops(torch, vis(models["fp32"], pixels[b_ops]))
        for name, model in models.items():
            ops = count_ops(torch, gen(model, pixels[b_ops]))
            for b in args.blip_batch_sizes:
                flops, per_module, out = count_flops(torch, gen(model, pixels[b]), with_result=True)
                rows[name]["batches"][str(b)] = {
                    "output_shape": list(out.shape), "flops": flops, "vision_flops": vision_flops[b],
                    "decoder_flops": flops - vision_flops[b], "flops_by_module": per_module,
                    "aten_ops": ops, "vision_aten_ops": vision_ops, "decoder_aten_ops": ops - vision_ops,
                    "aten_ops_counted_at_batch": b_ops}
        gen_t = {(m, b): [] for m in names for b in args.blip_batch_sizes}
        vis_t = {b: [] for b in args.blip_batch_sizes}
        t0 = time.perf_counter()
        for r in range(args.blip_rounds):
            for b in args.blip_batch_sizes:
                vis_t[b].append(turn(clock, vis(models["fp32"], pixels[b]), args.warmup, args.blip_repeats))
                for name in rotated(names, r):
                    gen_t[(name, b)].append(turn(clock, gen(models[name], pixels[b]), args.warmup, args.blip_repeats))
            print(f"  BLIP round {r + 1}/{args.blip_rounds}: " + ", ".join(
                f"{nm} {gen_t[(nm, b)][-1]:.0f}" for nm in names for b in args.blip_batch_sizes[-1:])
                + f" ms at batch {args.blip_batch_sizes[-1]}", flush=True)
        timing_s = time.perf_counter() - t0
    for b in args.blip_batch_sizes:
        base = rows["fp32"]["batches"][str(b)]
        base_dec = [g - v for g, v in zip(gen_t[("fp32", b)], vis_t[b])]
        for name in names:
            e = rows[name]["batches"][str(b)]
            dec = [g - v for g, v in zip(gen_t[(name, b)], vis_t[b])]
            e["generate_ms"] = spread(gen_t[(name, b)])
            e["generate_ms_rounds"] = gen_t[(name, b)]
            e["vision_ms"] = spread(vis_t[b])
            e["vision_ms_rounds"] = vis_t[b]
            e["decoder_ms"] = spread(dec)
            e["latency_ratio"] = spread([t / f for t, f in zip(gen_t[(name, b)], gen_t[("fp32", b)])])
            e["decoder_latency_ratio"] = spread([t / f for t, f in zip(dec, base_dec)])
            e["flop_ratio"] = e["flops"] / base["flops"]
            e["decoder_flop_ratio"] = e["decoder_flops"] / base["decoder_flops"]
            e["latency_over_flop_ratio"] = e["latency_ratio"]["median"] / e["flop_ratio"]
            e["decoder_latency_over_flop_ratio"] = e["decoder_latency_ratio"]["median"] / e["decoder_flop_ratio"]
            e["decoder_share_of_time"] = e["decoder_ms"]["median"] / e["generate_ms"]["median"]
            e["vision_gflops_per_s"] = e["vision_flops"] / (e["vision_ms"]["median"] / 1000) / 1e9
            e["decoder_gflops_per_s"] = e["decoder_flops"] / (max(e["decoder_ms"]["median"], 1e-6) / 1000) / 1e9
            e["decoder_ms_per_aten_op"] = e["decoder_ms"]["median"] / max(e["decoder_aten_ops"], 1)
    return {"rows": rows, "timing_wall_s": timing_s}


TEACHER_DTYPES = ("float32", "bfloat16")


def distill_cuda(args, torch) -> dict:
    rows = {}
    for dtype in TEACHER_DTYPES:
        rows[f"teacher {dtype}"] = distill_step(args, torch, dtype)
        torch.cuda.empty_cache()
    return rows


def cpu_memory(args, clip: dict) -> dict | None:
    """The CPU memory measurements, each in a fresh process (--quick: in this one): CLIP forwards go into the CLIP
    rows; returns the distillation rows (None when skipped)."""
    jobs = []
    if not args.skip_memory:
        jobs += [{"kind": "clip_forward", "variant": name, "batches": args.batch_sizes} for name in clip["rows"]]
    if not args.skip_distill:
        jobs += [{"kind": "distill", "teacher_dtype": d} for d in TEACHER_DTYPES]
    distill = {}
    for job, result in zip(jobs, run_jobs(args, jobs) if jobs else []):
        if job["kind"] == "clip_forward":
            job_s = result.pop("job_wall_s")
            for b, memory in result.items():
                clip["rows"][job["variant"]]["batches"][b]["memory"] = {**memory, "job_wall_s": job_s}
        else:
            distill[f"teacher {job['teacher_dtype']}"] = result
    return None if args.skip_distill else distill


# --- printing -----------------------------------------------------------------------------------------------------
def mib(x) -> str:
    return "-" if x is None else f"{x / 2**20:.0f}"


def print_clip(part, args):
    rows = part["rows"]
    for b in args.batch_sizes:
        print(f"\nCLIP ViT-B/32-sized, batch {b} (image 224 px + text {TEXT_LEN} tokens forward)")
        header = (f"{'variant':24s} {'GFLOP':>8s} {'FLOP x':>7s} {'lat ms':>9s} {'lat x':>6s} {'(min-max)':>11s} "
                  f"{'lat/FLOP':>8s} {'GFLOP/s':>8s} target")
        print(header)
        print("-" * len(header))
        for name, row in rows.items():
            e = row["batches"][str(b)]
            lr = e["latency_ratio"]
            target = e.get("target")
            print(f"{name:24s} {e['flops'] / 1e9:8.1f} {e['flop_ratio']:7.3f} {e['latency_ms']['median']:9.1f} "
                  f"{lr['median']:6.3f} {lr['min']:5.2f}-{lr['max']:<5.2f} {e['latency_over_flop_ratio']:8.3f} "
                  f"{e['gflops_per_s']:8.1f} {'-' if not target else 'met' if target['met'] else 'MISSED'}")
    print("GFLOP: FlopCounterMode (int8/nf4: the fp32 count, bitsandbytes' kernels are invisible to it); lat x: median "
          "over rounds of the per-round ratio to fp32; lat/FLOP = lat x / FLOP x")


def print_clip_memory(part, args):
    print("\nCLIP ViT-B/32-sized, memory of the forward (MiB)")
    header = (f"{'variant':24s} {'footprint':>9s} " + " ".join(
        f"{'b' + str(b) + ' model':>9s} {'b' + str(b) + ' peak+':>9s} {'b' + str(b) + ' peak':>9s}" for b in args.batch_sizes))
    print(header)
    print("-" * len(header))
    for name, row in part["rows"].items():
        cells = []
        for b in args.batch_sizes:
            mem = row["batches"][str(b)].get("memory") or {}
            cells.append(f"{mib(mem.get('model_resident_bytes')):>9s} {mib(mem.get('peak_above_resident_bytes')):>9s} "
                         f"{mib(mem.get('peak_bytes')):>9s}")
        print(f"{name:24s} {mib(row['memory_footprint_bytes']):>9s} " + " ".join(cells))
    print("footprint: get_memory_footprint(); model: resident bytes the built model added; peak+: peak resident above "
          "that during the forwards (activations, workspaces); peak: the process's peak resident set")


def print_blip(part, args):
    rows = part["rows"]
    for b in args.blip_batch_sizes:
        print(f"\nBLIP-base-sized captioner, generate {args.new_tokens} new tokens, batch {b}")
        header = (f"{'variant':34s} {'GFLOP':>7s} {'FLOP x':>7s} {'gen ms':>8s} {'lat x':>6s} {'lat/FLOP':>8s} "
                  f"{'vis ms':>7s} {'dec ms':>7s} {'dec FLOP x':>10s} {'dec lat x':>9s} {'dec GFLOP/s':>11s} "
                  f"{'dec ops':>8s} {'us/op':>6s}")
        print(header)
        print("-" * len(header))
        for name, row in rows.items():
            e = row["batches"][str(b)]
            print(f"{name:34s} {e['flops'] / 1e9:7.1f} {e['flop_ratio']:7.3f} {e['generate_ms']['median']:8.1f} "
                  f"{e['latency_ratio']['median']:6.3f} {e['latency_over_flop_ratio']:8.3f} "
                  f"{e['vision_ms']['median']:7.1f} {e['decoder_ms']['median']:7.1f} {e['decoder_flop_ratio']:10.3f} "
                  f"{e['decoder_latency_ratio']['median']:9.3f} {e['decoder_gflops_per_s']:11.1f} "
                  f"{e['decoder_aten_ops']:8d} {1000 * e['decoder_ms_per_aten_op']:6.1f}")


def print_distill(rows):
    print("\nOne DistillationTrainer step, ViT-B/32-sized teacher, half-depth student")
    header = f"{'teacher':18s} {'teacher MiB':>11s} {'student MiB':>11s} {'resident MiB':>12s} {'peak MiB':>9s} {'peak+ MiB':>9s} {'step s':>7s}"
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        print(f"{name:18s} {mib(r['teacher_memory_footprint_bytes']):>11s} {mib(r['student_memory_footprint_bytes']):>11s} "
              f"{mib(r['resident_built_bytes']):>12s} {mib(r['peak_bytes']):>9s} {mib(r['peak_above_resident_bytes']):>9s} "
              f"{r['step_wall_s']:7.1f}")


def importance_cost(args, torch) -> dict:
    """Seconds to score every head and neuron of the CLIP (random weights, random 224 px images and 77-token texts)
    with each data-driven importance at its default calibration settings (``importance.default_samples`` for this
    model at ``PruningConfig.calibration_batch_size``). fisher and taylor run whole; ablation's head scores (a pass per
    head and batch) are measured on one batch and multiplied by the batches, at the sample count its default gives
    this model (capped by ``head_sample_budget``) and at its uncapped ``default_samples``, plus its taylor neuron
    scores measured at each."""
    from vlmcompress import PruningConfig
    from vlmcompress.adapters import get_adapter
    from vlmcompress.pruning.importance import IMPORTANCE, default_samples

    model, _ = build_clip(args, "fp32")
    adapter = get_adapter(model)
    batch_size = PruningConfig.calibration_batch_size
    batch = 2 if args.quick else batch_size

    def batches(samples):
        out = []
        for _ in range(max(1, samples // batch_size)):
            pixel_values, input_ids = clip_inputs(torch, batch, "cpu", torch.float32, args.quick)
            out.append({"pixel_values": pixel_values, "input_ids": input_ids})
        return out

    heads = sum(a.num_heads for _, _, a in adapter.head_units())
    neurons = sum(m.num_neurons for _, _, m in adapter.mlp_units())
    rows = {}
    for name in ("fisher", "taylor"):
        samples = default_samples(name, model, batch_size)
        data = batches(samples)
        t0 = time.perf_counter()
        IMPORTANCE[name]()(model, data)
        rows[name] = {"seconds": time.perf_counter() - t0, "samples": samples, "batches": len(data),
                      "how": "measured: the whole scoring"}
        print(f"  {name}: {rows[name]['seconds']:.1f} s for {len(data)} batches", flush=True)
    # ablation: every head gated off alone on one batch, measured (each batch costs the same: its reference pass,
    # then per head the layers from the head's on, the rest replayed), times the batches of the default sample count
    # for this model and of the uncapped count, plus the taylor neuron scores measured at each
    full = IMPORTANCE["ablation"].default_samples
    data = batches(full)
    capped = data[: max(1, default_samples("ablation", model, batch_size) // batch_size)]
    t0 = time.perf_counter()
    IMPORTANCE["ablation"]()._head_scores(model, data[:1])
    batch_s = time.perf_counter() - t0
    print(f"  ablation: every head on one batch of {batch}: {batch_s:.1f} s", flush=True)
    for name, part in (("ablation", capped), (f"ablation, {full} samples (--calibration-samples {full})", data)):
        t0 = time.perf_counter()
        IMPORTANCE["taylor"]()(model, part)
        neuron_s = time.perf_counter() - t0
        samples = len(part) * batch_size
        rows[name] = {"seconds": neuron_s + len(part) * batch_s, "samples": samples, "batches": len(part),
                      "how": f"estimated: every head on 1 batch, measured ({batch_s:.1f} s), x {len(part)} batches + the "
                      f"taylor neuron scores measured at {samples} samples ({neuron_s:.1f} s)"}
        print(f"  {name}: ~{rows[name]['seconds']:.0f} s ({rows[name]['how']})", flush=True)
    return {"heads": heads, "neurons": neurons, "batch_size": batch, "rows": rows,
            "target": {"goal": "the default importance scores every head and neuron in <= 10 min on 2 CPU cores",
                       "limit_s": 600}}


def main(argv=None) -> int:
    args = parse_args(argv)
    refuse_active_wait_policy(SCRIPT)  # before torch (and its OpenMP runtime) is imported
    if args.child:
        return run_child(args)
    import logging
    import warnings

    import torch

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"{SCRIPT}: --device cuda but torch sees no CUDA device (the CPU run is the default)", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    if args.importance_cost:
        from vlmcompress import PruningConfig

        print(f"{SCRIPT}: importance scoring cost, {hardware()}, {torch.get_num_threads()} threads", flush=True)
        part = importance_cost(args, torch)
        default = PruningConfig.importance
        part["default_importance"] = default
        part["target"]["measured_s"] = part["rows"][default]["seconds"]
        part["target"]["met"] = None if args.quick else part["rows"][default]["seconds"] <= 600
        if args.json:
            data = {"environment": environment(),
                    "settings": {"hardware": hardware(), "threads": torch.get_num_threads(), "dtype": "float32",
                                 "quick": args.quick, "weights": "random (seed 0); nothing downloaded",
                                 "shapes_of": "openai/clip-vit-base-patch32",
                                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
                    "importance_cost": part}
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
            print(f"wrote {args.json}")
        return 0
    clock = Clock(torch, args.device)
    t_start = time.perf_counter()
    print(f"{SCRIPT}: {hardware() if args.device == 'cpu' else torch.cuda.get_device_name(0)}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY') or 'unset'}{'; QUICK' if args.quick else ''}", flush=True)
    parts_s = {}
    t0 = time.perf_counter()
    clip = clip_part(args, torch, clock)
    parts_s["clip"] = time.perf_counter() - t0
    print_clip(clip, args)
    t0 = time.perf_counter()
    blip = None if args.skip_blip else blip_part(args, torch, clock)
    parts_s["blip"] = time.perf_counter() - t0
    if blip:
        print_blip(blip, args)
    t0 = time.perf_counter()
    if args.device == "cuda":
        distill = None if args.skip_distill else distill_cuda(args, torch)
    else:
        gc.collect()
        distill = cpu_memory(args, clip)
    parts_s["memory_and_distillation"] = time.perf_counter() - t0
    if not args.skip_memory:
        print_clip_memory(clip, args)
    if distill:
        print_distill(distill)
    targets = {}
    for name, row in clip["rows"].items():
        for b, e in row["batches"].items():
            if "target" in e:
                targets[f"{name}, batch {b}"] = {**e["target"], "variant": name, "batch_size": int(b),
                                                 "flop_ratio": e["flop_ratio"],
                                                 "latency_ratio": e["latency_ratio"]["median"]}
    print("\ntargets (structural pruning: latency ratio / FLOP ratio within "
          f"{TARGET_QUOTIENT}x at every batch size):")
    for key, t in targets.items():
        print(f"  {key:34s} FLOP x {t['flop_ratio']:.3f}, latency x {t['latency_ratio']:.3f}, quotient "
              f"{t['measured']:.3f} -> {'met' if t['met'] else 'MISSED'}")
    wall = time.perf_counter() - t_start
    print(f"wall time {wall:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in parts_s.items()) + ")")
    if args.json:
        dtype = args.cuda_dtype if args.device == "cuda" else "float32"
        settings = {
            "hardware": hardware() if args.device == "cpu" else torch.cuda.get_device_name(0),
            "device": args.device, "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "dtype": dtype, "quick": args.quick,
            "weights": "random (seed 0); nothing downloaded",
            "clip": {"config": {"text": {**CLIP_TEXT, **(QUICK_CLIP[0] if args.quick else {})},
                                "vision": {**CLIP_VISION, **(QUICK_CLIP[1] if args.quick else {})},
                                "projection_dim": CLIP_PROJECTION},
                     "shapes_of": "openai/clip-vit-base-patch32", "text_tokens": TEXT_LEN,
                     "timed": "adapter.latency_forward: image and text embeddings (both towers)",
                     "batch_sizes": args.batch_sizes, "rounds": args.rounds, "warmup_calls": args.warmup,
                     "timed_calls_per_turn": args.repeats},
            "blip": None if args.skip_blip else {
                "config": {"vision": {**BLIP_VISION, **(QUICK_BLIP[0] if args.quick else {})},
                           "text": {**BLIP_TEXT, **(QUICK_BLIP[1] if args.quick else {})}},
                "shapes_of": "Salesforce/blip-image-captioning-base", "class": "BlipForConditionalGeneration",
                "new_tokens": args.new_tokens, "generate": "greedy, num_beams=1, min_new_tokens = max_new_tokens, KV cache",
                "batch_sizes": args.blip_batch_sizes, "rounds": args.blip_rounds, "warmup_calls": args.warmup,
                "timed_calls_per_turn": args.blip_repeats},
            "distillation": None if args.skip_distill else {
                "batch_size": args.distill_batch_size, "text_tokens": TEXT_LEN, "optimizer": "AdamW (Trainer default)",
                "student": "teacher layers 0, 2, 4, ... of both towers (prune_model, layer_strategy every_k, keep_every 2)",
                "steps": 1},
            "flops": "torch.utils.flop_counter.FlopCounterMode over one call at that batch (matmuls, convolutions, "
                     "attention; elementwise ops are not counted; bitsandbytes' own kernels are not counted)",
            "latency": "median over interleaved rounds (order rotating) of each turn's median of timed calls after "
                       "warm-up; ratios vs fp32 are per round, then median (min-max)",
            "memory": ("CPU: a fresh process per measurement (--quick: all in the benchmark's own process); model resident = VmRSS "
                       "after building - VmRSS before (after malloc_trim); peak above resident = VmHWM during the work "
                       "(reset by /proc/self/clear_refs after building and again before each batch) - VmRSS before the work; "
                       "the work is 1 forward per batch size, smallest first (CLIP) or 1 Trainer step (distillation)" if args.device == "cpu" else
                       "CUDA: torch.cuda.max_memory_allocated - memory_allocated before the work, in this process"),
            "target": f"structural pruning rows: latency ratio / FLOP ratio between {1 / TARGET_QUOTIENT:.3f} and "
                      f"{TARGET_QUOTIENT} at every CLIP batch size",
            "wall_s": wall, "parts_wall_s": parts_s,
            "timing_wall_s": {"clip": clip["timing_wall_s"], "blip": blip and blip["timing_wall_s"]},
        }
        data = {"environment": environment(), "settings": settings, "clip": clip["rows"],
                "blip": blip and blip["rows"], "distillation": distill, "targets": targets}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
