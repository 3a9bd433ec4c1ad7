"""Run by tests/test_fsdp.py under ``accelerate launch --config_file recipes/accelerate_configs/fsdp_cpu_2proc.yaml``
(2 processes, gloo on CPU).

1. As accelerate 1.16 really behaves on CPU: the FSDP config is not used (MULTI_CPU, DDP) and DistillationTrainer
   warns. This run is also the reference the FSDP run must match.
2. With ``emulate_fsdp_on_cpu()`` (test only): accelerate takes its FSDP2 path over gloo (``fsdp2_prepare_model``,
   ``fully_shard`` per CLIPEncoderLayer, ``get_model_state_dict``), the code a multi-GPU run goes through.

Each rank writes ``rank<i>.json``; rank 0 also writes the saved student (``saved/``) and the reference weights.
"""

import json
import os
import sys
import warnings

import torch


def emulate_fsdp_on_cpu():
    """Test-only switch: AcceleratorState turns FSDP on only from GPU-like device types; make MULTI_CPU + an FSDP
    plugin count as FSDP too, so everything after that (accelerate's and the Trainer's FSDP code) runs on gloo."""
    import accelerate.state as state
    from accelerate.utils import DistributedType

    original = state.AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    state.AcceleratorState.__init__ = init


def build(out, teacher, processor, train):
    from transformers import CLIPModel, TrainingArguments

    from vlmcompress.data.collate import ImageTextCollator
    from vlmcompress.distillation import DistillationConfig, DistillationTrainer
    from vlmcompress.embedded.clip_teacher import teacher_config

    torch.manual_seed(0)
    student = CLIPModel(teacher_config(processor.tokenizer, layers=2, hidden=32, heads=4, projection=16))
    args = TrainingArguments(output_dir=out, max_steps=4, per_device_train_batch_size=16, learning_rate=1e-2,
                             logging_steps=1, remove_unused_columns=False, use_cpu=True, save_strategy="no",
                             report_to=[], disable_tqdm=True, dataloader_drop_last=True, seed=0)
    cfg = DistillationConfig(teacher_dtype="bfloat16", hidden_weight=1.0, embedding_weight=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = DistillationTrainer(model=student, args=args, train_dataset=train, data_collator=ImageTextCollator(processor),
                                      processing_class=processor, teacher=teacher, distillation_config=cfg)
    return trainer, [str(w.message) for w in caught if "FSDP" in str(w.message)]


def main(out):
    from accelerate.state import AcceleratorState
    from torch.distributed.fsdp import FSDPModule

    import numpy as np
    from PIL import Image

    from vlmcompress.embedded import digits
    from vlmcompress.loading import load_checkpoint

    teacher, processor, _ = load_checkpoint(None)  # the embedded teacher
    # noise canvases with digit captions: enough to distill from, and no MNIST to load
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 56, 56), dtype=np.uint8)
    train = [{"image": Image.fromarray(im, mode="L"), "text": digits.caption(n, digits.TEMPLATES[0]), "label": n}
             for n, im in enumerate(pixels)]
    record = {"rank": int(os.environ["RANK"])}

    # 1. accelerate as it is: the FSDP config falls back to DDP on CPU
    ddp, caught = build(os.path.join(out, "ddp"), teacher, processor, train)
    ddp.train()
    record["plain"] = {"distributed": str(ddp.accelerator.distributed_type).split(".")[-1], "fsdp": ddp.is_fsdp_enabled,
                       "wrapped": type(ddp.model_wrapped).__name__, "warnings": caught,
                       "losses": [h["loss"] for h in ddp.state.log_history if "loss" in h]}
    reference = {k: v.detach().clone() for k, v in ddp.trained_student().state_dict().items()}
    init_scale = float(torch.log(torch.tensor(1 / 0.07)))

    # 2. accelerate's FSDP2 path, over gloo
    AcceleratorState._reset_state()
    emulate_fsdp_on_cpu()
    trainer, caught = build(os.path.join(out, "fsdp"), teacher, processor, train)
    trainer.train()
    model = trainer.model
    params = list(model.parameters())
    record["fsdp"] = {
        "distributed": str(trainer.accelerator.distributed_type).split(".")[-1], "fsdp": trainer.is_fsdp_enabled,
        "wrapped": type(trainer.model_wrapped).__name__, "warnings": caught,
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "sharded_layers": sum(isinstance(m, FSDPModule) for m in model.modules()),
        "local_numel": sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params),
        "full_numel": sum(p.numel() for p in params),
        "logit_scale_shape": list(model.logit_scale.shape),
        "teacher": {"fsdp": any(isinstance(m, FSDPModule) for m in teacher.modules()), "training": teacher.training,
                    "dtype": str(next(teacher.parameters()).dtype).split(".")[-1],
                    "requires_grad": any(p.requires_grad for p in teacher.parameters())},
        "projections": sorted(trainer.distill_projections.keys()),
        "projection_sum": float(sum(p.detach().sum() for p in trainer.distill_projections.parameters())),
    }
    trainer.save_model(os.path.join(out, "saved"))  # every rank: gathers the full state dict
    whole = trainer.trained_student()  # every rank: a collective; the model on rank 0
    if whole is not None:
        state = whole.state_dict()
        record["whole"] = {
            "class": type(whole).__name__, "keys": len(state), "reference_keys": len(reference),
            "max_diff_vs_ddp": max((state[k].float() - reference[k].float()).abs().max().item() for k in reference),
            "logit_scale": state["logit_scale"].tolist(), "logit_scale_init": init_scale,
        }
        torch.save(state, os.path.join(out, "whole.pt"))
    with open(os.path.join(out, f"rank{record['rank']}.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1])
