"""Real-size shapes through every method: random-init models with the widths, head counts and head_dim of released
checkpoints (``tests/fixtures/real_configs``: openai/clip-vit-base-patch32, openai/clip-vit-large-patch14,
google/siglip-base-patch16-224, Salesforce/blip-image-captioning-base, Salesforce/blip-itm-base-coco; configs only,
no weights) and fewer layers, pruned, saved, reloaded, quantized, distilled and trained.

Layer cut (every other shape key is the release's): 2 layers per tower, except ViT-L/14 with 1 layer per tower.
Inputs are tensors (pixel_values at the config's image_size, input_ids below its vocab_size); the folders carry the
embedded CLIP / BLIP processors (smaller vocabularies), which only loading needs.
"""

import copy
import importlib.util
import json

import pytest
import torch

from conftest import run_fresh_python
from real_size import REAL_NAMES, load_fixture, real_config, real_inputs, real_model
from vlmcompress.adapters import get_adapter
from vlmcompress.loading import load_model
from vlmcompress.modeling import save_compressed
from vlmcompress.pruning import prune_heads, prune_layers, prune_mlp

B32, L14, SIGLIP, CAPTIONER, ITM = REAL_NAMES
#: the layer cut per release
LAYERS = {B32: 2, L14: 1, SIGLIP: 2, CAPTIONER: 2, ITM: 2}
#: non-uniform plans (so the remote-code class is needed), every head site of each family, real head indices
HEAD_PLANS = {
    B32: {"vision": {0: [1, 5, 11], 1: [0]}, "text": {1: [2, 3, 7]}},
    L14: {"vision": {0: [0, 15]}, "text": {0: [3]}},
    SIGLIP: {"vision": {0: [1, 11]}, "text": {1: [0]}},
    CAPTIONER: {"vision": {0: [1, 3]}, "text_decoder": {1: [0]}, "text_decoder_cross": {0: [2, 11], 1: [0, 1, 3]}},
    ITM: {"vision": {1: [0]}, "text": {0: [4]}, "text_cross": {1: [7, 8]}},
}
MLP_PLANS = {
    B32: {"vision": {0: list(range(0, 3072, 7))}, "text": {1: [5, 6, 7, 2047]}},
    L14: {"vision": {0: [1, 2, 3, 4095]}},
    SIGLIP: {"vision": {1: list(range(100))}},
    CAPTIONER: {"vision": {1: [5, 6]}, "text_decoder": {0: [1, 2, 3]}},
    ITM: {"text": {1: [0, 3071]}},
}

# the same forward runs here and in a fresh process that never imports vlmcompress
FORWARD = r"""
import torch
def forward(model, pixel_values, input_ids, attention_mask):
    with torch.no_grad():
        if model.config.model_type != "blip":
            img = model.get_image_features(pixel_values=pixel_values)
            txt = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            return [getattr(img, "pooler_output", img), getattr(txt, "pooler_output", txt)]
        out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        return [out.last_hidden_state, out.itm_score if hasattr(out, "itm_score") else out.logits]
"""
_namespace: dict = {}
exec(FORWARD, _namespace)
forward = _namespace["forward"]

REMOTE_LOAD = FORWARD + r"""
import sys
from transformers import AutoModel
results = {}
for folder, inputs in torch.load(sys.argv[1]).items():
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    results[folder] = {"class": type(model).__name__, "outputs": forward(model, *inputs)}
    del model
assert not any(m.startswith("vlmcompress") for m in sys.modules), "vlmcompress was imported"
torch.save(results, sys.argv[2])
"""


def max_rel_diff(a, b):
    """Largest |a - b| over the largest |b| (outputs of random real-size models are not of size 1)."""
    return max(((x - y).abs().max() / y.abs().max().clamp_min(1e-6)).item() for x, y in zip(a, b))


def cosine(a, b):
    return min(torch.nn.functional.cosine_similarity(x.flatten(1).float(), y.flatten(1).float(), dim=-1).min().item()
               for x, y in zip(a, b))


def _zeroed(model, heads, neurons):
    """Hooks that zero the planned heads' input columns of each output Linear and the planned neurons' columns of
    each down projection: the unpruned model with those units removed."""
    adapter = get_adapter(model)
    sites = adapter.head_sites()
    handles = []
    for plan, part, width in ((heads, lambda site, layer: adapter.head_parts(site, layer).out,
                               lambda site, layer: adapter.head_parts(site, layer).head_dim),
                              (neurons, lambda tower, layer: adapter.mlp(layer).down, lambda tower, layer: 1)):
        for name, layers in plan.items():
            for i, units in layers.items():
                layer = adapter.layers(sites.get(name, name))[i]
                linear, w = part(name, layer), width(name, layer)
                mask = torch.ones(linear.in_features)
                for u in units:
                    mask[u * w:(u + 1) * w] = 0
                handles.append(linear.register_forward_pre_hook(lambda m, args, mask=mask: (args[0] * mask,)))
    return handles


def _processor(name, processor, blip_processor):
    return blip_processor if load_fixture(name)["model_type"] == "blip" else processor


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, processor, blip_processor):
    """Per release: the model with its heads and MLP neurons pruned, the same unpruned model with those units zeroed,
    the unpruned outputs, and the folder ``save_compressed`` wrote."""
    records = {}
    for name in REAL_NAMES:
        model = real_model(name, LAYERS[name])
        inputs = real_inputs(model.config)
        original = forward(model, *inputs)
        handles = _zeroed(model, HEAD_PLANS[name], MLP_PLANS[name])
        zeroed = forward(model, *inputs)
        for h in handles:
            h.remove()
        steps = [prune_heads(model, HEAD_PLANS[name]), prune_mlp(model, MLP_PLANS[name])]
        folder = tmp_path_factory.mktemp(name.split("/")[1])
        info = save_compressed(model, _processor(name, processor, blip_processor), folder)
        records[name] = dict(model=model, inputs=inputs, original=original, zeroed=zeroed, pruned=forward(model, *inputs),
                             steps=steps, folder=folder, info=info)
    return records


def test_fixtures_build_the_release_shapes(tmp_path):
    """Full-depth configs have the releases' shapes; ``layers`` cuts only the depth."""
    expected = {  # (vision hidden, heads, layers, image, patch), (text hidden, heads, layers, vocab)
        B32: ((768, 12, 12, 224, 32), (512, 8, 12, 49408)),
        L14: ((1024, 16, 24, 224, 14), (768, 12, 12, 49408)),
        SIGLIP: ((768, 12, 12, 224, 16), (768, 12, 12, 32000)),
        CAPTIONER: ((768, 12, 12, 384, 16), (768, 12, 12, 30524)),
        ITM: ((768, 12, 12, 384, 16), (768, 12, 12, 30524)),
    }
    for name, (vision, text) in expected.items():
        config = real_config(name)
        vc, tc = config.vision_config, config.text_config
        assert (vc.hidden_size, vc.num_attention_heads, vc.num_hidden_layers, vc.image_size, vc.patch_size) == vision
        assert (tc.hidden_size, tc.num_attention_heads, tc.num_hidden_layers, tc.vocab_size) == text
        assert vc.hidden_size // vc.num_attention_heads == tc.hidden_size // tc.num_attention_heads == 64
    cut = real_config(L14, layers={"vision": 1})
    assert (cut.vision_config.num_hidden_layers, cut.text_config.num_hidden_layers) == (1, 12)
    assert cut.vision_config.intermediate_size == 4096 and cut.projection_dim == 768
    assert real_config(CAPTIONER, layers=2).text_config.bos_token_id == 30522


def test_an_unsupported_architecture_is_one_line_naming_the_supported_classes(tmp_path):
    path = tmp_path / "bert.json"
    path.write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 768}))
    with pytest.raises(ValueError) as info:
        real_config(path)
    message = str(info.value)
    assert "\n" not in message and "BertModel" in message
    assert all(cls in message for cls in ("CLIPConfig", "SiglipConfig", "BlipConfig"))


@pytest.mark.parametrize("name", REAL_NAMES)
def test_pruning_equals_the_unpruned_model_with_those_units_zeroed(pruned, name):
    record = pruned[name]
    assert max_rel_diff(record["pruned"], record["zeroed"]) <= 1e-5
    assert max_rel_diff(record["pruned"], record["original"]) > 1e-3  # removing the units changed the outputs
    model, adapter = record["model"], get_adapter(record["model"])
    removed = record["steps"][0]["removed_heads"]
    assert removed == {site: {str(i): heads for i, heads in layers.items()} for site, layers in HEAD_PLANS[name].items()}
    for site, layers in HEAD_PLANS[name].items():
        for i, heads in layers.items():
            attn = adapter.head_parts(site, adapter.layers(adapter.head_sites()[site])[i])
            assert attn.head_dim == 64 and attn.out.in_features == 64 * attn.num_heads
    vc = model.config.vision_config
    assert vc.layer_num_heads[0] == vc.num_attention_heads - len(HEAD_PLANS[name]["vision"].get(0, []))


@pytest.mark.parametrize("name", REAL_NAMES)
def test_pruned_folder_reloads_through_vlmcompress_and_not_the_stock_class(pruned, name):
    import transformers

    record = pruned[name]
    arch = load_fixture(name)["architectures"][0]
    assert record["info"] == {"kind": "remote_code", "class": f"Vlmcompress{arch}"}
    reloaded = load_model(str(record["folder"]))
    assert type(reloaded).__name__ == f"Vlmcompress{arch}"
    assert max_rel_diff(forward(reloaded, *record["inputs"]), record["pruned"]) <= 1e-6
    with pytest.raises(Exception):  # the stock class cannot describe these shapes and must not load them silently
        getattr(transformers, arch).from_pretrained(record["folder"])


def test_pruned_folders_of_every_family_load_with_remote_code_in_a_fresh_process(pruned, tmp_path):
    """One fresh interpreter (no vlmcompress) loads a pruned folder of each family (CLIP, SigLIP, BLIP) with AutoModel."""
    records = {name: pruned[name] for name in (B32, SIGLIP, CAPTIONER)}
    torch.save({str(r["folder"]): r["inputs"] for r in records.values()}, tmp_path / "inputs.pt")
    run_fresh_python(REMOTE_LOAD, tmp_path / "inputs.pt", tmp_path / "out.pt", cwd=tmp_path)
    results = torch.load(tmp_path / "out.pt")
    for name, record in records.items():
        result = results[str(record["folder"])]
        assert result["class"] == f"Vlmcompress{load_fixture(name)['architectures'][0]}"
        assert max_rel_diff(result["outputs"], record["pruned"]) <= 1e-6, name


def test_dropped_layers_and_a_uniform_mlp_reload_with_the_stock_class(processor, tmp_path):
    """``prune_model`` with a layer plan and a per-layer MLP ratio (magnitude importance, no data needed)."""
    from transformers import CLIPModel

    from vlmcompress import PruningConfig, prune_model

    model = real_model(B32, layers=3)
    steps = prune_model(model, PruningConfig(drop_layers={"vision": [1], "text": [0, 2]}, mlp_ratio=0.25,
                                             importance="magnitude"))
    assert [s["method"] for s in steps] == ["layer_pruning", "mlp_pruning"]
    assert model.config.vision_config.intermediate_size == 2304 and model.config.text_config.intermediate_size == 1536
    inputs = real_inputs(model.config)
    before = forward(model, *inputs)
    assert save_compressed(model, processor, tmp_path / "stock")["kind"] == "stock"
    reloaded = CLIPModel.from_pretrained(tmp_path / "stock").eval()
    assert reloaded.config.vision_config.num_hidden_layers == 2 and reloaded.config.text_config.num_hidden_layers == 1
    assert max_rel_diff(forward(reloaded, *inputs), before) <= 1e-6


def test_the_captioner_with_pruned_cross_attention_heads_generates(pruned):
    record = pruned[CAPTIONER]
    pixel_values = record["inputs"][0]
    model = record["model"]
    cached = get_adapter(model).generate_captions(pixel_values, max_new_tokens=4)
    assert cached.shape == (1, 5)  # BOS + 4 new tokens (random weights never stop early on [SEP] here)
    # the KV cache (cross-attention keys of the pruned width included) gives what a full recomputation gives
    uncached = model.generate(pixel_values=pixel_values, max_new_tokens=4, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


# --- quantization ----------------------------------------------------------------------------------------------
bnb_required = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")


@bnb_required
def test_pruned_clip_in_8bit_reloads(pruned, processor, tmp_path):
    from torch import nn

    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized

    record = pruned[B32]
    config = QuantizationConfig(bits=8)
    quantized = quantize(str(record["folder"]), config)
    outputs = forward(quantized, *record["inputs"])
    assert cosine(outputs, record["pruned"]) >= 0.99
    assert save_quantized(quantized, processor, tmp_path, config)["kind"] == "remote_code"
    ours = load_model(str(tmp_path))
    layer = ours.vision_model.encoder.layers[0]
    assert type(layer.self_attn.q_proj).__name__ == "Linear8bitLt" and layer.self_attn.q_proj.out_features == 9 * 64
    assert type(ours.visual_projection) is nn.Linear  # the family default keeps the projections in full precision
    for x, y in zip(forward(ours, *record["inputs"]), outputs):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


@bnb_required
def test_pruned_captioner_in_nf4_reloads_and_generates(pruned, blip_processor, tmp_path):
    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized

    record = pruned[CAPTIONER]
    config = QuantizationConfig(bits=4, quant_type="nf4")
    quantized = quantize(str(record["folder"]), config)
    step = quantized.vlmcompress_quantization
    # the pruned MLP widths (3070, 3069) are not whole bitsandbytes CPU blocks: those Linears stay full precision
    assert "vision_model.encoder.layers.1.mlp.fc1" in step["skipped_for_shape"]
    assert "vision_model.encoder.layers.0.self_attn.qkv" not in step["skipped_for_shape"]
    cross = quantized.text_decoder.bert.encoder.layer[0].crossattention.self.query
    assert type(cross).__name__ == "Linear4bit" and cross.out_features == 10 * 64
    outputs = forward(quantized, *record["inputs"])
    assert cosine(outputs, record["pruned"]) >= 0.9
    assert save_quantized(quantized, blip_processor, tmp_path, config)["kind"] == "remote_code"
    ours = load_model(str(tmp_path))
    for x, y in zip(forward(ours, *record["inputs"]), outputs):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)
    pixel_values = record["inputs"][0]
    tokens = quantized.generate(pixel_values=pixel_values, max_new_tokens=3, do_sample=False)
    assert torch.equal(ours.generate(pixel_values=pixel_values, max_new_tokens=3, do_sample=False), tokens)


# --- training: distillation, gradual pruning, QLoRA ----------------------------------------------------------
def _rows(config):
    pixel_values, input_ids, mask = real_inputs(config, seed=1)
    return [{"pixel_values": p, "input_ids": i, "attention_mask": m} for p, i, m in zip(pixel_values, input_ids, mask)]


def _args(tmp_path, **kw):
    from transformers import TrainingArguments

    base = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=2, max_steps=1, learning_rate=1e-3,
                report_to=[], save_strategy="no", remove_unused_columns=False, use_cpu=True, disable_tqdm=True,
                logging_steps=1, seed=0)
    base.update(kw)
    return TrainingArguments(**base)


def test_distillation_step_from_a_bfloat16_teacher_into_an_inherited_student(tmp_path):
    from transformers import CLIPModel

    from vlmcompress.distillation import DistillationConfig, DistillationTrainer

    teacher = real_model(B32, layers=2)
    student = copy.deepcopy(teacher)
    prune_layers(student, {"vision": [0], "text": [1]})
    before = {k: v.clone() for k, v in student.state_dict().items()}
    cfg = DistillationConfig(teacher_dtype="bfloat16", hidden_weight=1.0, embedding_weight=1.0, contrastive_weight=0.5)
    trainer = DistillationTrainer(model=student, args=_args(tmp_path), train_dataset=_rows(teacher.config),
                                  teacher=teacher, distillation_config=cfg)
    assert next(trainer.teacher.parameters()).dtype == torch.bfloat16
    # each kept layer learns from the teacher layer it came from; widths are equal: no projections
    assert trainer.layer_maps == {"vision": {2: 1}, "text": {1: 1}} and len(trainer.distill_projections) == 0
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 1 and all(logged[0][f"loss_{t}"] > 0 for t in ("logit", "embedding", "hidden", "contrastive"))
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in before.items())
    trainer.save_model(str(tmp_path / "student"))
    reloaded = CLIPModel.from_pretrained(tmp_path / "student").eval()
    inputs = real_inputs(student.config)
    assert max_rel_diff(forward(reloaded, *inputs), forward(student.eval(), *inputs)) <= 1e-6


def test_pruning_callback_step_on_siglip(tmp_path):
    """One Trainer step of SigLIP's own sigmoid loss with gradual pruning that reaches its target at once."""
    from transformers import Trainer

    from vlmcompress.modeling import VlmcompressSiglipModel
    from vlmcompress.pruning.callback import PruningCallback
    from vlmcompress.pruning.config import PruningConfig

    model = real_model(SIGLIP, layers=2)
    pruning = PruningCallback(PruningConfig(head_ratio=0.25, mlp_ratio=0.25), start_step=0, end_step=1, update_every=1)
    collate = torch.utils.data.default_collate
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=_rows(model.config), callbacks=[pruning],
                      data_collator=lambda rows: {**collate(rows), "return_loss": True})
    trainer.train()
    assert [step["method"] for step in pruning.report_steps] == ["head_pruning", "mlp_pruning"]
    vc, tc = model.config.vision_config, model.config.text_config
    assert sum(vc.layer_num_heads) + sum(tc.layer_num_heads) == 4 * 12 - 12  # 25% of the 48 heads (global scope)
    # 25% of every layer's 3072 neurons; SigLIP keeps per-layer sizes (its pooling head is sized by intermediate_size)
    assert vc.layer_intermediate_sizes == tc.layer_intermediate_sizes == [2304, 2304]
    assert model.vision_model.head.mlp.fc1.out_features == 3072
    inputs = real_inputs(model.config)
    embeds = forward(model.eval(), *inputs)
    assert all(torch.isfinite(e).all() for e in embeds)
    save_compressed(model, None, tmp_path / "pruned")
    reloaded = VlmcompressSiglipModel.from_pretrained(tmp_path / "pruned").eval()
    assert max_rel_diff(forward(reloaded, *inputs), embeds) <= 1e-6


@bnb_required
def test_qlora_step_on_the_pruned_clip_in_nf4(pruned, tmp_path):
    from vlmcompress.quantization import QuantizationConfig, quantize
    from vlmcompress.quantization.qlora import QLoRATrainer, own_loss_fn, prepare_qlora

    record = pruned[B32]
    model = prepare_qlora(quantize(str(record["folder"]), QuantizationConfig(bits=4)), r=4)
    trainer = QLoRATrainer(model=model, args=_args(tmp_path, learning_rate=1e-2),
                           train_dataset=_rows(record["model"].config), loss_fn=own_loss_fn)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 1 and losses[0] > 0
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # one step moved every adapter from its zero init
