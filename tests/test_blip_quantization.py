"""BLIP in 8-bit and 4-bit (real bitsandbytes CPU kernels): family defaults, stock reload, pruned + quantized,
generation, QLoRA on the captioner."""

import pytest
import torch
from torch import nn

from conftest import tiny_blip
from test_blip_pruning import blip_forward
from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized

bnb = pytest.importorskip("bitsandbytes")
CASES = [("BlipForImageTextRetrieval", QuantizationConfig(bits=8), "Linear8bitLt",
          ["vision_proj", "text_proj", "itm_head"]),
         ("BlipForConditionalGeneration", QuantizationConfig(bits=4), "Linear4bit",
          ["text_decoder.cls.predictions.decoder"])]


def cosine(a, b):
    return min(torch.nn.functional.cosine_similarity(x.flatten(1).float(), y.flatten(1).float(), dim=-1).min().item()
               for x, y in zip(a, b))


@pytest.mark.parametrize("cls_name,config,linear_class,kept", CASES, ids=["retrieval-int8", "captioner-nf4"])
def test_blip_quantizes_with_family_defaults_and_reloads_with_the_stock_class(cls_name, config, linear_class, kept,
                                                                               blip_processor, tmp_path):
    import transformers

    from vlmcompress.loading import load_checkpoint

    model = tiny_blip(cls_name, hidden=64)
    full = blip_forward(model)
    quantized = quantize(model, config)
    before = blip_forward(quantized)
    assert 0.9 < cosine(before, full)  # quantized, still the same model
    assert quantized.vlmcompress_quantization["skipped_by_default"] == kept
    assert save_quantized(quantized, blip_processor, tmp_path, config) == {"kind": "bitsandbytes", "class": cls_name}
    reloaded = getattr(transformers, cls_name).from_pretrained(tmp_path).eval()
    layer_linears = [m for n, m in reloaded.named_modules() if (".layers." in n or ".layer." in n) and isinstance(m, nn.Linear)]
    per_layer = 4 + 10  # vision: qkv, projection, fc1, fc2; text: q, k, v, out of self- and cross-attention + MLP
    assert len(layer_linears) == 2 * per_layer and {type(m).__name__ for m in layer_linears} == {linear_class}
    assert all(type(reloaded.get_submodule(name)) is nn.Linear for name in kept)
    assert cosine(blip_forward(reloaded), before) >= 0.9999
    ours = load_checkpoint(str(tmp_path))[0]
    for x, y in zip(blip_forward(ours), before):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    if "Generation" in cls_name:
        pixel_values = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(2))
        tokens = quantized.generate(pixel_values=pixel_values, max_new_tokens=5, do_sample=False)
        assert torch.equal(ours.generate(pixel_values=pixel_values, max_new_tokens=5, do_sample=False), tokens)


def test_pruned_then_quantized_blip_reloads_through_vlmcompress_and_remote_code(blip_processor, tmp_path):
    from transformers import AutoModel

    from vlmcompress.loading import load_checkpoint
    from vlmcompress.pruning import prune_heads, prune_mlp

    model = tiny_blip("BlipForConditionalGeneration", hidden=64)
    prune_heads(model, {"vision": {0: [1]}, "text_decoder": {1: [0, 2]}})
    prune_mlp(model, {"vision": {1: list(range(64))}})
    quantized = quantize(model, QuantizationConfig(bits=8))
    before = blip_forward(quantized)
    assert save_quantized(quantized, blip_processor, tmp_path)["kind"] == "remote_code"
    ours = load_checkpoint(str(tmp_path))[0]
    assert type(ours.vision_model.encoder.layers[0].self_attn).__name__ == "VlmcompressBlipAttention"
    assert type(ours.vision_model.encoder.layers[0].self_attn.qkv).__name__ == "Linear8bitLt"
    assert ours.vision_model.encoder.layers[0].self_attn.qkv.out_features == 3 * 3 * 16
    for x, y in zip(blip_forward(ours), before):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    remote = AutoModel.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert cosine(blip_forward(remote), before) >= 0.9999


def test_qlora_on_a_4bit_blip_captioner(blip_processor, tmp_path):
    from transformers import TrainingArguments

    from vlmcompress.embedded import digits
    from vlmcompress.data.collate import ImageTextCollator
    from vlmcompress.quantization.qlora import QLoRATrainer, own_loss_fn, lora_target_modules, prepare_qlora

    base = quantize(tiny_blip("BlipForConditionalGeneration", hidden=64), QuantizationConfig(bits=4))
    targets = lora_target_modules(base)
    assert len(targets) == 2 * 4 + 2 * 10  # vision qkv/projection/fc1/fc2; decoder self q/k/v/out, cross q/k/v/out, MLP
    assert any(".crossattention.self.query" in t for t in targets)
    model = prepare_qlora(base, r=4)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-2,
                             report_to=[], save_strategy="no", use_cpu=True, remove_unused_columns=False,
                             disable_tqdm=True, logging_steps=1)
    trainer = QLoRATrainer(model=model, args=args, train_dataset=digits.load_digits_dataset("train", images_per_number=1),
                           data_collator=ImageTextCollator(blip_processor), loss_fn=own_loss_fn)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 3 and all(l > 0 for l in losses)
    assert all(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
