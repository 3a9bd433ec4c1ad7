#!/usr/bin/env python
"""GPU check: DistillationTrainer under accelerate's FSDP2 plugin on 2+ GPUs (NCCL), one machine.

    accelerate launch --config_file recipes/accelerate_configs/fsdp_gpu.yaml --num_processes 2 \\
        benchmarks/fsdp_gpu.py --output_dir $OUT/fsdp_gpu --json $OUT/fsdp_gpu.json

The student is a random CLIP (both towers ``--layers`` deep, hidden ``--hidden``) distilled from a bigger random CLIP
teacher held in bfloat16 (random init: nothing is downloaded). Records, per rank: the distributed type, that the
student is sharded (FSDP units, local vs full parameter count) and the teacher is not (a whole frozen bf16 copy in eval
mode), the losses, peak GPU memory, steps per second; then the saved student (``save_model``: the full state dict) is
reloaded with ``CLIPModel.from_pretrained`` and compared with ``trained_student()``. Exits with one line when
accelerate does not shard (no CUDA devices, or a single process). Not a test-suite dependency: tests/test_fsdp.py runs
the same checks on CPU over gloo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch


def clip_config(layers, hidden, heads, projection, vocab=49408):
    from transformers import CLIPConfig

    tower = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=heads)
    return CLIPConfig(text_config=dict(vocab_size=vocab, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                                       pad_token_id=1, **tower),
                      vision_config=dict(image_size=224, patch_size=32, **tower), projection_dim=projection)


class RandomPairs(torch.utils.data.Dataset):
    """Random images and token ids: distillation needs no labels."""

    def __init__(self, n, seq=32, vocab=49408):
        g = torch.Generator().manual_seed(0)
        self.pixels = torch.randn(n, 3, 224, 224, generator=g)
        self.ids = torch.randint(0, vocab - 2, (n, seq), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"pixel_values": self.pixels[i], "input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--json", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args(argv)

    from torch.distributed.fsdp import FSDPModule
    from transformers import CLIPModel, TrainingArguments

    from vlmcompress.distillation import DistillationConfig, DistillationTrainer
    from vlmcompress.distillation.fsdp import fsdp_inactive_reason, fsdp_version

    torch.manual_seed(0)
    teacher = CLIPModel(clip_config(12, 768, 12, 512))
    student = CLIPModel(clip_config(args.layers, args.hidden, 8, 512))
    targs = TrainingArguments(output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                              learning_rate=1e-4, logging_steps=5, remove_unused_columns=False, save_strategy="no",
                              report_to=[], disable_tqdm=True, dataloader_drop_last=True, seed=0,
                              bf16=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available())
    trainer = DistillationTrainer(model=student, args=targs, train_dataset=RandomPairs(args.batch_size * 8),
                                  teacher=teacher, distillation_config=DistillationConfig(teacher_dtype="bfloat16"))
    if fsdp_version(trainer.accelerator) != 2:
        reason = fsdp_inactive_reason(targs, trainer.accelerator)
        print(f"fsdp_gpu: {reason or 'FSDP2 is not on: launch with recipes/accelerate_configs/fsdp_gpu.yaml'}",
              file=sys.stderr)
        return 1
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    model = trainer.model
    params = list(model.parameters())
    record = {
        "rank": trainer.args.process_index, "world_size": trainer.args.world_size,
        "distributed": str(trainer.accelerator.distributed_type).split(".")[-1],
        "wrapped": type(trainer.model_wrapped).__name__,
        "fsdp_units": sum(isinstance(m, FSDPModule) for m in model.modules()),
        "local_numel": sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params),
        "full_numel": sum(p.numel() for p in params),
        "teacher": {"fsdp": any(isinstance(m, FSDPModule) for m in teacher.modules()), "training": teacher.training,
                    "dtype": str(next(teacher.parameters()).dtype), "device": str(next(teacher.parameters()).device)},
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "steps_per_s": args.steps / seconds,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    }
    saved = os.path.join(args.output_dir, "student")
    trainer.save_model(saved)  # every rank
    whole = trainer.trained_student()  # every rank; the model on rank 0
    if whole is not None:
        reloaded = CLIPModel.from_pretrained(saved).state_dict()
        state = whole.state_dict()
        record["saved"] = {"keys": len(reloaded), "logit_scale_shape": list(reloaded["logit_scale"].shape),
                           "equal_to_trained_student": all(torch.equal(reloaded[k], state[k].cpu()) for k in state)}
    print(json.dumps(record), flush=True)
    if args.json and whole is not None:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
