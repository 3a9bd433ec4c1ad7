"""QLoRA on a 4-bit CLIP (CPU): trains through Trainer with a pluggable loss, keeps the adapter or merges it."""

import pytest
import torch

from conftest import tiny_clip
from test_quantization import cosine, embeddings, _inputs
from vlmcompress.data.collate import ImageTextCollator
from vlmcompress.errors import VlmcompressError
from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized

pytest.importorskip("bitsandbytes")
pytest.importorskip("peft")


def _args(tmp_path, steps=3):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=steps, per_device_train_batch_size=16,
                             learning_rate=5e-3, use_cpu=True, report_to=[], save_strategy="no",
                             remove_unused_columns=False, disable_tqdm=True, logging_steps=1)


def test_qlora_trains_adapters_then_keeps_or_merges_them(processor, tmp_path):
    from peft import PeftModel
    from transformers import CLIPModel

    from vlmcompress.embedded import digits
    from vlmcompress.quantization.qlora import (
        QLoRATrainer, own_loss_fn, load_qlora, lora_target_modules, merge_qlora,
        prepare_qlora, qlora_step, save_qlora_adapter)

    config = QuantizationConfig(bits=4)
    base = quantize(tiny_clip(processor, hidden=64), config)
    base_folder = tmp_path / "qlora"
    save_quantized(base, processor, base_folder, config)  # the base the adapter belongs to
    x = _inputs()
    base_out = embeddings(base, *x)
    assert len(lora_target_modules(base)) == 24  # q, k, v, out, fc1, fc2 of 2 layers x 2 towers
    frozen = base.vision_model.encoder.layers[0].mlp.fc1.weight.clone()

    model = prepare_qlora(base, r=4)
    calls = []

    def loss_fn(model, inputs):  # pluggable: any (model, inputs) -> loss, e.g. distillation later
        calls.append(sorted(inputs))
        return own_loss_fn(model, inputs)

    train = digits.load_digits_dataset("train", images_per_number=1)
    trainer = QLoRATrainer(model=model, args=_args(tmp_path), train_dataset=train,
                           data_collator=ImageTextCollator(processor), loss_fn=loss_fn)
    trainer.train()
    assert len(calls) == 3 and calls[0] == ["attention_mask", "input_ids", "labels", "pixel_values"]
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # adapters moved from their zero init
    assert torch.equal(model.get_base_model().vision_model.encoder.layers[0].mlp.fc1.base_layer.weight, frozen)
    step = qlora_step(model, max_steps=3, kept="adapter")
    assert step["method"] == "qlora" and step["adapted_linears"] == 24 and step["trainable_params"] > 0

    # three steps barely move B from zero: give it a clearly visible update so the merge is really tested
    with torch.no_grad():
        for p in lora_b:
            p.normal_(0, 0.05)
    model.eval()
    tuned = embeddings(model.get_base_model(), *x)
    assert cosine(tuned, base_out) < 0.99

    # kept as an adapter beside the base
    save_qlora_adapter(model, base_folder)
    plain = PeftModel.from_pretrained(CLIPModel.from_pretrained(base_folder), str(base_folder / "lora"))
    assert cosine(embeddings(plain.get_base_model(), *x), tuned) >= 0.9999
    ours, _ = load_qlora(str(base_folder))
    torch.testing.assert_close(embeddings(ours.get_base_model(), *x), tuned, rtol=0, atol=1e-6)

    # merged: dequantize, add BA (exact), quantize again through the same from_pretrained path (one more
    # rounding to 4 bits, of the size quantizing this random model costs in the first place)
    full = merge_qlora(str(base_folder), requantize=False)
    assert cosine(embeddings(full, *x), tuned) >= 0.9999
    merged = merge_qlora(str(base_folder))
    assert type(merged.vision_model.encoder.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    merged_out = embeddings(merged, *x)
    assert cosine(merged_out, tuned) > 0.95 > 0.8 > cosine(base_out, tuned)
    save_quantized(merged, processor, tmp_path / "merged", config)
    assert cosine(embeddings(CLIPModel.from_pretrained(tmp_path / "merged"), *x), merged_out) >= 0.9999


def test_training_quantized_weights_directly_points_to_qlora(processor, tmp_path):
    from vlmcompress.quantization.qlora import QLoRATrainer, prepare_qlora

    model = tiny_clip(processor, hidden=64)
    with pytest.raises(VlmcompressError, match="quantize it first"):
        prepare_qlora(model)
    quantized = quantize(model, bits=8)
    with pytest.raises(VlmcompressError, match=r"cannot be trained directly: train LoRA adapters on it \(QLoRA\)"):
        QLoRATrainer(model=quantized, args=_args(tmp_path))


def test_recipe_quantizes_and_keeps_a_qlora_adapter(processor, tmp_path):
    from peft import PeftModel
    from transformers import CLIPModel, TrainingArguments

    from vlmcompress.report import read_report
    from vlmcompress.workflows.quantize import QuantizeArguments, quantize_and_recover

    tiny_clip(processor, hidden=64).save_pretrained(tmp_path / "fp")
    processor.save_pretrained(tmp_path / "fp")
    out = tmp_path / "nf4-qlora"
    args = QuantizeArguments(model_name_or_path=str(tmp_path / "fp"), bits=4, qlora=True, lora_r=4,
                             train_images_per_number=1, eval_images_per_number=1, latency_batch_size=4)
    targs = TrainingArguments(output_dir=str(out), max_steps=2, per_device_train_batch_size=16, use_cpu=True,
                              report_to=[], save_strategy="no", disable_tqdm=True)
    quantize_and_recover(args, targs)  # what recipes/quantize_clip.py runs
    report = read_report(out)
    assert [s["method"] for s in report["steps"]] == ["quantization", "qlora"]
    assert report["steps"][1]["kept"] == "adapter" and report["steps"][1]["max_steps"] == 2
    assert report["steps"][1]["loss"] == "distillation"  # the full-precision model taught its 4-bit copy
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (out / "lora").iterdir()}
    assert not (out / "trainer").exists()
    model = PeftModel.from_pretrained(CLIPModel.from_pretrained(out), str(out / "lora"))
    assert type(model.get_base_model().text_model.encoder.layers[0].mlp.fc1.base_layer).__name__ == "Linear4bit"
