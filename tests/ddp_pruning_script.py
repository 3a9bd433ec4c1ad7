"""Run by tests/test_pruning_ddp.py under `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU)."""

import json
import os
import sys

import torch
from transformers import CLIPModel, Trainer, TrainingArguments

from vlmcompress.embedded import digits
from vlmcompress.pruning.callback import PruningCallback
from vlmcompress.embedded.clip_teacher import build_processor, teacher_config


def main(out):
    processor = build_processor()
    torch.manual_seed(0)
    model = CLIPModel(teacher_config(processor.tokenizer, layers=2, hidden=32, heads=4, projection=16))
    dataset = digits.load_digits_dataset("train", images_per_number=2)

    def collate(rows):
        enc = processor(text=[r["text"] for r in rows], images=[r["image"] for r in rows], padding=True,
                        return_tensors="pt")
        return {**enc, "return_loss": True}

    args = TrainingArguments(output_dir=os.path.join(out, "run"), per_device_train_batch_size=8, max_steps=12,
                             learning_rate=1e-3, report_to=[], save_strategy="no", remove_unused_columns=False,
                             disable_tqdm=True, logging_steps=4, seed=0, use_cpu=True)
    pruning = PruningCallback(head_ratio=0.5, start_step=1, end_step=8, update_every=2)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[pruning],
                      processing_class=processor)
    trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": int(os.environ.get("WORLD_SIZE", "1")), "steps": pruning.report_steps,
                   "dist_world_size": torch.distributed.get_world_size() if torch.distributed.is_initialized() else None,
                   "trainer_world_size": trainer.args.world_size,
                   "accelerator_processes": trainer.accelerator.num_processes,
                   "wrapped": type(trainer.model_wrapped).__name__, "parallel_mode": str(trainer.args.parallel_mode), "pid": os.getpid()}, f)
    trainer.save_model(os.path.join(out, "final"))


if __name__ == "__main__":
    main(sys.argv[1])
