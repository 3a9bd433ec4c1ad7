#!/usr/bin/env python
"""GPU check: a ViT-B/32-sized CLIP (random init: nothing is downloaded) in fp16, LLM.int8 and nf4 on CUDA.

    python benchmarks/quantization_gpu.py --json $OUT/quantization_gpu.json

For each variant: latency of an image+text forward at batch 64 (median of timed batches after warm-up, CUDA
synchronized), peak GPU memory during those forwards, ``get_memory_footprint``, bytes on disk, bytes of the quantized
Linear weights against their fp32 bytes, the token embedding's share of the bytes, and the cosine of the image and text
embeddings against fp16 (minimum over the batch). Quantized variants go through ``vlmcompress.quantization.quantize``
(from_pretrained + BitsAndBytesConfig) exactly like on CPU. Exits with one line when there is no CUDA device.
Not a test-suite dependency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def vit_b32_config():
    """openai/clip-vit-base-patch32's shapes (vocab 49408, text 512x12, vision 768x12, patch 32, projection 512)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                         pad_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
        projection_dim=512,
    )


@torch.no_grad()
def forward(model, pixel_values, input_ids):
    image = model.get_image_features(pixel_values=pixel_values)
    text = model.get_text_features(input_ids=input_ids)
    image = getattr(image, "pooler_output", image)
    text = getattr(text, "pooler_output", text)
    return image.float(), text.float()


def measure(model, pixel_values, input_ids, warmup, repeats):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        forward(model, pixel_values, input_ids)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        forward(model, pixel_values, input_ids)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), torch.cuda.max_memory_allocated()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the rows as JSON")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("quantization_gpu: no CUDA device visible to torch; this check needs a GPU (the CPU benchmark is "
              "benchmarks/quantization.py)", file=sys.stderr)
        return 1

    from transformers import CLIPModel

    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized, weight_bytes
    from vlmcompress.report import weights_size_bytes

    device_name = torch.cuda.get_device_name(0)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="vlmcompress-gpu-"))
    CLIPModel(vit_b32_config()).half().save_pretrained(tmp / "fp16")  # config.json records dtype float16
    g = torch.Generator(device="cuda").manual_seed(0)
    pixel_values = torch.randn(args.batch_size, 3, 224, 224, device="cuda", generator=g, dtype=torch.float16)
    input_ids = torch.randint(2, 49405, (args.batch_size, 77), device="cuda", generator=g)
    input_ids[:, -1] = 49407  # eos last: pooled from a real position

    variants = {
        "fp16": None,
        "int8": QuantizationConfig(bits=8, device="cuda"),
        "nf4": QuantizationConfig(bits=4, quant_type="nf4", compute_dtype="float16", device="cuda"),
        "nf4+dq": QuantizationConfig(bits=4, quant_type="nf4", double_quant=True, compute_dtype="float16", device="cuda"),
    }
    rows, reference = {}, None
    for name, config in variants.items():
        torch.cuda.empty_cache()
        if config is None:
            model = CLIPModel.from_pretrained(tmp / "fp16", dtype=torch.float16).to("cuda").eval()
            folder = tmp / "fp16"
        else:
            model = quantize(str(tmp / "fp16"), config)
            folder = tmp / name
            save_quantized(model, None, folder, config)
        latency, peak = measure(model, pixel_values, input_ids, args.warmup, args.repeats)
        image, text = forward(model, pixel_values, input_ids)
        if reference is None:
            reference = (image, text)
        wb = weight_bytes(model, folder)
        rows[name] = {
            "latency_ms": latency,
            "latency_batch_size": args.batch_size,
            "peak_memory_bytes": peak,
            "memory_bytes": int(model.get_memory_footprint()),
            "size_bytes": weights_size_bytes(folder),
            "quantized_linear_ratio": wb.get("quantized_linear_ratio"),
            "token_embedding_share": wb["token_embedding_share"],
            "cosine_image_vs_fp16": torch.nn.functional.cosine_similarity(image, reference[0]).min().item(),
            "cosine_text_vs_fp16": torch.nn.functional.cosine_similarity(text, reference[1]).min().item(),
            "params": int(model.num_parameters()),
        }
        del model

    print(f"ViT-B/32-sized CLIPModel, random init, on {device_name}; torch {torch.__version__}; batch {args.batch_size} "
          f"image (224x224) + text (77 tokens) forward, median of {args.repeats} after {args.warmup} warm-up")
    header = f"{'variant':8s} {'lat ms':>8s} {'peak MiB':>9s} {'mem MiB':>8s} {'disk MiB':>9s} {'Linear x':>9s} {'tok-emb':>8s} {'cos img':>8s} {'cos txt':>8s}"
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        ratio = r["quantized_linear_ratio"]
        print(f"{name:8s} {r['latency_ms']:8.2f} {r['peak_memory_bytes'] / 2**20:9.1f} {r['memory_bytes'] / 2**20:8.1f} "
              f"{r['size_bytes'] / 2**20:9.1f} {'-' if ratio is None else f'{ratio:.3f}':>9s} "
              f"{100 * r['token_embedding_share']:7.1f}% {r['cosine_image_vs_fp16']:8.4f} {r['cosine_text_vs_fp16']:8.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": device_name, "torch": torch.__version__, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
