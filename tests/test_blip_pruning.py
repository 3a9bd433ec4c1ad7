"""BLIP: heads (fused vision qkv, BERT text self-attention), MLP neurons and layers are pruned exactly, the
decoder still generates, and checkpoints reload three ways."""

import copy
import json

import pytest
import torch
from transformers import BlipForConditionalGeneration

from conftest import run_fresh_python, tiny_blip
from vlmcompress.adapters import get_adapter
from vlmcompress.errors import VlmcompressError
from vlmcompress.loading import load_checkpoint
from vlmcompress.modeling import save_compressed
from vlmcompress.pruning import prune_heads, prune_layers, prune_mlp
from vlmcompress.pruning.importance import FisherImportance, MagnitudeImportance, TaylorImportance, calibration_batches

# the same script runs here and in a fresh process that never imports vlmcompress
FORWARD = r"""
import torch
def blip_forward(model):
    g = torch.Generator().manual_seed(0)
    vc, tc = model.config.vision_config, model.config.text_config
    pv = torch.randn(3, 3, vc.image_size, vc.image_size, generator=g)
    ids = torch.randint(6, tc.vocab_size, (3, 9), generator=g)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pv, attention_mask=mask)
    main = out.itm_score if hasattr(out, "itm_score") else out.logits
    return out.last_hidden_state, main
"""
_namespace: dict = {}
exec(FORWARD, _namespace)
blip_forward = _namespace["blip_forward"]

REMOTE_LOAD = FORWARD + r"""
import sys
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
outputs = blip_forward(model)
assert not any(m.startswith("vlmcompress") for m in sys.modules), "vlmcompress was imported"
torch.save({"outputs": outputs, "class": type(model).__name__}, sys.argv[2])
"""

CLASSES = ["BlipForImageTextRetrieval", "BlipForConditionalGeneration"]


def _max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def _plan(model, units):
    return {tower: units for tower in get_adapter(model).towers()}


def _head_plan(model, units):
    """Every head site: each tower's self-attention and the text tower's cross-attention ("<tower>_cross")."""
    return {site: units for site in get_adapter(model).head_sites()}


def _zeroed(model, plan, part, width):
    """The unpruned model with the planned units' input columns of the output Linear zeroed (hooks)."""
    adapter = get_adapter(model)
    sites = adapter.head_sites()
    handles = []
    for tower, layers in plan.items():
        for layer, units in layers.items():
            module = adapter.layers(sites[tower])[layer]
            linear, w = part(adapter, tower, module), width(adapter, tower, module)
            mask = torch.ones(linear.in_features)
            for u in units:
                mask[u * w:(u + 1) * w] = 0
            handles.append(linear.register_forward_pre_hook(lambda m, args, mask=mask: (args[0] * mask,)))
    return handles


@pytest.mark.parametrize("cls_name", CLASSES)
def test_head_and_mlp_pruning_equal_zeroed_units(cls_name):
    model = tiny_blip(cls_name)
    heads = _head_plan(model, {0: [1, 3], 1: [0]})
    heads[next(s for s in heads if s.endswith("_cross"))] = {0: [2], 1: [0, 1, 3]}
    neurons = _plan(model, {1: [5, 6, 7, 60], 0: list(range(0, 128, 3))})
    reference = copy.deepcopy(model)
    handles = _zeroed(reference, heads, lambda a, site, layer: a.head_parts(site, layer).out,
                      lambda a, site, layer: a.head_parts(site, layer).head_dim)
    handles += _zeroed(reference, neurons, lambda a, tower, layer: a.mlp(layer).down, lambda a, tower, layer: 1)
    expected = blip_forward(reference)
    for h in handles:
        h.remove()
    step = prune_heads(model, heads)
    prune_mlp(model, neurons)
    assert _max_diff(blip_forward(model), expected) <= 1e-5
    text_tower = "text" if "Retrieval" in cls_name else "text_decoder"
    assert step["removed_heads"][text_tower] == {"0": [1, 3], "1": [0]}
    assert step["removed_heads"][f"{text_tower}_cross"] == {"0": [2], "1": [0, 1, 3]}
    assert model.config.vision_config.layer_num_heads == [2, 3]
    assert model.config.text_config.layer_num_heads == [2, 3] and model.config.text_config.layer_num_cross_heads == [3, 1]
    vision_attn = get_adapter(model).attention(get_adapter(model).layers("vision")[0])
    assert vision_attn.linear("qkv").out_features == 3 * 2 * vision_attn.head_dim
    # the pruned model is not the unpruned one: removing heads changed the outputs
    assert _max_diff(blip_forward(model), blip_forward(tiny_blip(cls_name))) > 1e-3


def _fresh_process_outputs(path, tmp_path):
    run_fresh_python(REMOTE_LOAD, path, tmp_path / "remote.pt", cwd=tmp_path)
    return torch.load(tmp_path / "remote.pt")


@pytest.mark.parametrize("cls_name", CLASSES)
def test_pruned_blip_reloads_three_ways(cls_name, blip_processor, tmp_path):
    import transformers

    model = tiny_blip(cls_name)
    prune_heads(model, _head_plan(model, {0: [0, 2], 1: [3]}))
    prune_mlp(model, _plan(model, {0: [1, 2, 3]}))
    before = blip_forward(model)
    path = tmp_path / "pruned"
    info = save_compressed(model, blip_processor, path)
    assert info == {"kind": "remote_code", "class": f"Vlmcompress{cls_name}"}
    assert json.loads((path / "config.json").read_text())["auto_map"]["AutoModel"] == f"modeling_vlmcompress.Vlmcompress{cls_name}"
    reloaded = load_checkpoint(str(path))[0]
    assert _max_diff(blip_forward(reloaded), before) <= 1e-6
    remote = _fresh_process_outputs(path, tmp_path)
    assert remote["class"] == f"Vlmcompress{cls_name}"
    assert _max_diff(remote["outputs"], before) <= 1e-6
    with pytest.raises(Exception):
        getattr(transformers, cls_name).from_pretrained(path)
    # (c) only layers dropped and the MLP cut uniformly: the stock class loads it
    model = tiny_blip(cls_name, layers=3)
    prune_layers(model, {"vision": [1], next(t for t in get_adapter(model).towers() if t != "vision"): [0]})
    prune_mlp(model, _plan(model, {0: [4, 5], 1: [6, 7]}))
    before = blip_forward(model)
    stock = tmp_path / "stock"
    assert save_compressed(model, blip_processor, stock)["kind"] == "stock"
    reloaded = getattr(transformers, cls_name).from_pretrained(stock).eval()
    assert reloaded.config.vision_config.num_hidden_layers == 2 and reloaded.config.text_config.intermediate_size == 126
    assert _max_diff(blip_forward(reloaded), before) <= 1e-6
    assert type(load_checkpoint(str(stock))[1]).__name__ == "BlipProcessor"


def test_decoder_generates_after_layers_are_dropped(blip_processor, tmp_path):
    model = tiny_blip("BlipForConditionalGeneration", layers=3)
    report = prune_layers(model, {"text_decoder": [0, 2]})
    assert report["removed_layers"] == {"text_decoder": [0, 2]}
    layer = get_adapter(model).layers("text_decoder")[0]
    assert layer.attention.self.layer_idx == 0 and layer.crossattention.self.layer_idx == 0
    pixel_values = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(3))
    cached = get_adapter(model).generate_captions(pixel_values, max_new_tokens=6)
    # the KV cache must give the tokens a full recomputation gives
    uncached = model.generate(pixel_values=pixel_values, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    save_compressed(model, blip_processor, tmp_path / "short")
    reloaded = BlipForConditionalGeneration.from_pretrained(tmp_path / "short").eval()
    assert torch.equal(reloaded.generate(pixel_values=pixel_values, max_new_tokens=6, do_sample=False), cached)


def test_importance_scores_for_blip(blip_processor):
    batches = calibration_batches(blip_processor, num_samples=16, batch_size=8)
    for cls_name in CLASSES:
        model = tiny_blip(cls_name)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        taylor = TaylorImportance()(model, batches)
        magnitude = MagnitudeImportance()(model)
        fisher = FisherImportance()(model, batches)  # per-sample gates through cross-attention and ITM negatives
        assert all(s >= 0 for layers in fisher["heads"].values() for v in layers.values() for s in v)
        for scores in (taylor, magnitude, fisher):
            assert set(scores["heads"]) == set(get_adapter(model).head_sites())
            assert {s for s in scores["heads"] if s.endswith("_cross")} == {
                "text_cross" if "Retrieval" in cls_name else "text_decoder_cross"}
            assert all(len(v) == 4 for layers in scores["heads"].values() for v in layers.values())
        assert all(s > 0 for layers in taylor["heads"].values() for v in layers.values() for s in v)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_blip_bad_plans_and_shared_configs():
    model = tiny_blip("BlipForConditionalGeneration")
    with pytest.raises(VlmcompressError, match="unknown tower 'text': this blip model has vision, text_decoder"):
        prune_heads(model, {"text": {0: [0]}})
    with pytest.raises(VlmcompressError, match="removes all 4 heads"):
        prune_heads(model, {"vision": {0: [0, 1, 2, 3]}})
    vqa = tiny_blip("BlipForQuestionAnswering")
    with pytest.raises(VlmcompressError, match="from one config"):
        prune_layers(vqa, {"text_decoder": [0]})
    prune_heads(vqa, {"vision": {0: [1]}})  # the vision tower has its own config
    assert vqa.config.vision_config.layer_num_heads == [3, 4]
    with pytest.raises(VlmcompressError, match="no image-text embedding heads"):
        get_adapter(model).image_embeddings(torch.zeros(1, 3, 56, 56))


def test_towers_and_head_sites_are_two_things(blip_processor):
    from vlmcompress.pruning.config import PruningConfig, prune_model

    model = tiny_blip("BlipForImageTextRetrieval")
    steps = prune_model(model, PruningConfig(towers=["text"], head_ratio=0.25, mlp_ratio=0.25, importance="magnitude"))
    heads, neurons = steps[0]["removed_heads"], steps[1]["removed_neurons"]
    assert set(heads) <= {"text", "text_cross"} and set(neurons) == {"text"}  # the tower's heads: self and cross
    model = tiny_blip("BlipForImageTextRetrieval")
    steps = prune_model(model, PruningConfig(head_sites=["text_cross"], head_ratio=0.25, importance="magnitude"))
    assert set(steps[0]["removed_heads"]) == {"text_cross"}
    # files written before head sites had their own key named them under towers: still read
    assert PruningConfig.from_dict({"towers": ["vision", "text_cross"], "head_ratio": 0.25}).head_sites == ["text_cross"]
    with pytest.raises(VlmcompressError, match="unknown head site"):
        prune_model(tiny_blip("BlipForConditionalGeneration"), PruningConfig(head_sites=["text_cross"], head_ratio=0.25))
