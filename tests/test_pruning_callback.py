"""Gradual pruning inside a plain transformers.Trainer."""

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from conftest import tiny_clip
from vlmcompress.adapters import get_adapter
from vlmcompress.embedded import digits
from vlmcompress.loading import load_checkpoint
from vlmcompress.pruning.config import PruningConfig
from vlmcompress.pruning.callback import PruningCallback, cubic_sparsity


def test_cubic_schedule():
    assert cubic_sparsity(0, 0.5, 10, 20) == 0.0
    assert cubic_sparsity(20, 0.5, 10, 20) == 0.5 == cubic_sparsity(99, 0.5, 10, 20)
    mid = cubic_sparsity(15, 0.5, 10, 20)
    assert 0.5 * 0.5 < mid < 0.5  # cubic: most of the pruning happens early
    assert cubic_sparsity(11, 0.5, 10, 20) < cubic_sparsity(12, 0.5, 10, 20)


class _Probe(TrainerCallback):
    """Checks, mid-training, that masked heads are dead and the optimizer still owns the live parameters."""

    def __init__(self, pruning):
        self.pruning, self.checked = pruning, False

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step != 14:
            return
        adapter = get_adapter(model)
        masked = 0
        for (tower, i), mask in self.pruning.head_masks.items():
            attn = adapter.attention(adapter.layers(tower)[i])
            for h in (~mask).nonzero().flatten().tolist():
                cols = attn.out.weight[:, h * attn.head_dim:(h + 1) * attn.head_dim]
                assert torch.count_nonzero(cols) == 0
                masked += 1
        assert masked == 8  # 50% of 8 heads in each of the two towers
        owned = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert all(id(p) in owned for p in model.parameters() if p.requires_grad)
        self.checked = True


def test_pruning_callback_masks_then_slices(processor, tmp_path):
    model = tiny_clip(processor)
    dataset = digits.load_digits_dataset("train", images_per_number=2)

    def collate(rows):
        enc = processor(text=[r["text"] for r in rows], images=[r["image"] for r in rows], padding=True,
                        return_tensors="pt")
        return {**enc, "return_loss": True}

    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=16, max_steps=20,
                             learning_rate=1e-3, report_to=[], save_strategy="no", remove_unused_columns=False,
                             use_cpu=True, disable_tqdm=True, logging_steps=5, seed=0)
    pruning = PruningCallback(PruningConfig(head_ratio=0.5, mlp_ratio=0.25), start_step=2, end_step=12, update_every=2)
    probe = _Probe(pruning)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[pruning, probe])
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    assert probe.checked
    # sliced: 50% of the 8 heads per tower, 25% of the neurons of every layer
    methods = [s["method"] for s in pruning.report_steps]
    assert methods == ["head_pruning", "mlp_pruning"]
    for tower in ("vision", "text"):
        removed = pruning.report_steps[0]["removed_heads"][tower]
        assert sum(len(h) for h in removed.values()) == 4 and all(len(h) < 4 for h in removed.values())
    assert model.config.vision_config.intermediate_size == 96
    assert sum(s["head_sparsity"] > 0 for s in pruning.sparsity_log) >= 3
    # live weights were trained
    after = model.state_dict()
    assert not torch.equal(start["vision_model.embeddings.patch_embedding.weight"],
                           after["vision_model.embeddings.patch_embedding.weight"])
    trainer.save_model(str(tmp_path / "final"))
    processor.save_pretrained(tmp_path / "final")
    assert (tmp_path / "final" / "modeling_vlmcompress.py").exists()
    reloaded, _, _ = load_checkpoint(str(tmp_path / "final"))
    pv = processor(images=dataset[:3]["image"], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        a = get_adapter(model.eval()).image_embeddings(pv)
        b = get_adapter(reloaded).image_embeddings(pv)
    assert (a - b).abs().max() <= 1e-6


def test_gradual_pruning_of_a_blip_captioner_with_its_cross_attention(blip_processor, tmp_path):
    from conftest import tiny_blip
    from vlmcompress.data.collate import ImageTextCollator
    from vlmcompress.distillation import DistillationConfig, DistillationTrainer

    teacher = tiny_blip("BlipForConditionalGeneration", text_init=0.3)
    student = tiny_blip("BlipForConditionalGeneration", text_init=0.3)
    pruning = PruningCallback(head_ratio=0.5, mlp_ratio=0.25, start_step=1, end_step=4, update_every=1)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=6, per_device_train_batch_size=8,
                             report_to=[], save_strategy="no", use_cpu=True, remove_unused_columns=False,
                             disable_tqdm=True, learning_rate=1e-3)
    trainer = DistillationTrainer(model=student, args=args, callbacks=[pruning],
                                  train_dataset=digits.load_digits_dataset("train", images_per_number=1),
                                  data_collator=ImageTextCollator(blip_processor), teacher=teacher,
                                  distillation_config=DistillationConfig.default_for(captioner=True))
    trainer.train()
    removed = {step["method"]: step for step in pruning.report_steps}
    assert set(removed["head_pruning"]["removed_heads"]) == {"vision", "text_decoder", "text_decoder_cross"}
    cfg = student.config.text_config
    assert sum(cfg.layer_num_heads) + sum(cfg.layer_num_cross_heads) + sum(student.config.vision_config.layer_num_heads) == 12
    trainer.save_model(str(tmp_path / "out"))
    blip_processor.save_pretrained(tmp_path / "out")
    reloaded = load_checkpoint(str(tmp_path / "out"))[0]
    pixel_values = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    assert torch.equal(reloaded.generate(pixel_values=pixel_values, max_new_tokens=4, do_sample=False),
                       student.eval().generate(pixel_values=pixel_values, max_new_tokens=4, do_sample=False))


def test_callback_config_is_one_clear_error_when_it_cannot_apply():
    from vlmcompress.errors import VlmcompressError

    for kwargs, message in ((dict(config=PruningConfig(head_plan={"vision": {"0": [1]}})), "prunes gradually by ratio"),
                            (dict(config=PruningConfig(head_ratio=0.5, importance="magnitude")), "must be 'taylor'"),
                            (dict(config=PruningConfig(head_ratio=0.5), head_ratio=0.2), "not both"),
                            (dict(config=PruningConfig(mlp_ratio=0.5), start_step=5, end_step=5), "start_step < end_step"),
                            (dict(head_ratio=1.5), "fraction in [0, 1)")):
        with pytest.raises(VlmcompressError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            PruningCallback(**kwargs)
