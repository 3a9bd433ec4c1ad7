"""Physical pruning is exact, records original numbering, and reloads three ways."""

import copy
import json

import pytest
import torch
from transformers import CLIPModel, SiglipConfig, SiglipModel

from conftest import run_fresh_python, tiny_clip
from vlmcompress.errors import VlmcompressError
from vlmcompress.loading import load_checkpoint
from vlmcompress.modeling import save_compressed
from vlmcompress.pruning import prune_heads, prune_layers, prune_mlp
from vlmcompress.adapters import get_adapter


def tiny_siglip(seed=0):
    torch.manual_seed(seed)
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    cfg = SiglipConfig(text_config=dict(vocab_size=100, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, **common),
                       vision_config=dict(image_size=16, patch_size=8, num_channels=3, **common))
    return SiglipModel(cfg).eval()


def _inputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    vc, tc = model.config.vision_config, model.config.text_config
    pixel_values = torch.randn(3, vc.num_channels, vc.image_size, vc.image_size, generator=g)
    input_ids = torch.randint(2, tc.vocab_size, (3, 9), generator=g)
    eos = getattr(tc, "eos_token_id", None)
    if eos is not None:
        input_ids[:, -1] = eos
    return pixel_values, input_ids


@torch.no_grad()
def _outputs(model, seed=0):
    adapter = get_adapter(model)
    pixel_values, input_ids = _inputs(model, seed)
    return adapter.image_embeddings(pixel_values), adapter.text_embeddings(input_ids)


def _zero_input_hooks(model, plan, linear_and_width):
    """Reference: the unpruned model with the planned units' columns of a Linear's input zeroed."""
    adapter = get_adapter(model)
    handles = []
    for tower, layers in plan.items():
        for layer, units in layers.items():
            linear, width = linear_and_width(adapter, adapter.layers(tower)[int(layer)])
            mask = torch.ones(linear.in_features)
            for u in units:
                mask[u * width:(u + 1) * width] = 0
            handles.append(linear.register_forward_pre_hook(lambda m, args, mask=mask: (args[0] * mask,)))
    return handles


def _zero_heads_hooks(model, plan):
    """Heads: out_proj's input columns of each head."""
    return _zero_input_hooks(model, plan, lambda a, layer: (a.attention(layer).out, a.attention(layer).head_dim))


def _zero_neurons_hooks(model, plan):
    """Neurons: the down projection's input columns."""
    return _zero_input_hooks(model, plan, lambda a, layer: (a.mlp(layer).down, 1))


def _max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@pytest.fixture(params=["clip", "siglip"])
def family_model(request, processor):
    return tiny_clip(processor) if request.param == "clip" else tiny_siglip()


HEAD_PLAN = {"vision": {0: [1, 3], 1: [0]}, "text": {1: [2, 3, 0]}}
MLP_PLAN = {"vision": {0: list(range(0, 64, 3))}, "text": {1: [5, 6, 7, 60]}}


def test_head_pruning_equals_zeroed_heads(family_model):
    reference = copy.deepcopy(family_model)
    handles = _zero_heads_hooks(reference, HEAD_PLAN)
    expected = _outputs(reference)
    for h in handles:
        h.remove()
    step = prune_heads(family_model, HEAD_PLAN)
    assert _max_diff(_outputs(family_model), expected) <= 1e-5
    assert step == {"method": "head_pruning",
                    "removed_heads": {"vision": {"0": [1, 3], "1": [0]}, "text": {"1": [0, 2, 3]}}}
    attn = get_adapter(family_model).attention(get_adapter(family_model).layers("text")[1])
    assert attn.linear("q").out_features == attn.head_dim and attn.out.in_features == attn.head_dim
    assert family_model.config.vision_config.layer_num_heads == [2, 3]


def test_mlp_pruning_equals_zeroed_neurons(family_model):
    reference = copy.deepcopy(family_model)
    handles = _zero_neurons_hooks(reference, MLP_PLAN)
    expected = _outputs(reference)
    for h in handles:
        h.remove()
    width = family_model.config.vision_config.intermediate_size
    step = prune_mlp(family_model, MLP_PLAN)
    assert _max_diff(_outputs(family_model), expected) <= 1e-5
    assert step["removed_neurons"]["text"] == {"1": [5, 6, 7, 60]}
    assert family_model.config.vision_config.layer_intermediate_sizes == [width - 22, width]


def test_numbering_stays_original_across_steps(processor):
    model = tiny_clip(processor, layers=3)
    assert prune_layers(model, {"vision": [0]})["removed_layers"] == {"vision": [0]}
    # current vision layer 0 is original layer 1
    step = prune_heads(model, {"vision": {0: [1]}})
    assert step["removed_heads"] == {"vision": {"1": [1]}}
    # current head 1 of that layer is original head 2
    step = prune_heads(model, {"vision": {0: [1]}})
    assert step["removed_heads"] == {"vision": {"1": [2]}}
    prune_mlp(model, {"vision": {1: [0, 1]}})
    step = prune_mlp(model, {"vision": {1: [0]}})
    assert step["removed_neurons"] == {"vision": {"2": [2]}}
    assert prune_layers(model, {"vision": [1]})["removed_layers"] == {"vision": [2]}


def test_bad_plans_are_errors(processor):
    model = tiny_clip(processor)
    with pytest.raises(VlmcompressError, match="removes all 4 heads"):
        prune_heads(model, {"vision": {0: [0, 1, 2, 3]}})
    with pytest.raises(VlmcompressError, match="unknown tower 'visual'"):
        prune_heads(model, {"visual": {0: [0]}})
    with pytest.raises(VlmcompressError, match="heads 0..3"):
        prune_heads(model, {"text": {0: [4]}})
    with pytest.raises(VlmcompressError, match="layers 0..1"):
        prune_layers(model, {"text": [2]})
    with pytest.raises(VlmcompressError, match="all 2 layers"):
        prune_layers(model, {"text": [0, 1]})
    # nothing was changed by the failed calls
    assert get_adapter(model).attention(get_adapter(model).layers("vision")[0]).num_heads == 4


REMOTE_LOAD = r"""
import sys, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
g = torch.Generator().manual_seed(0)
vc, tc = model.config.vision_config, model.config.text_config
pv = torch.randn(3, vc.num_channels, vc.image_size, vc.image_size, generator=g)
ids = torch.randint(2, tc.vocab_size, (3, 9), generator=g)
if getattr(tc, "eos_token_id", None) is not None:
    ids[:, -1] = tc.eos_token_id
with torch.no_grad():
    img = model.get_image_features(pixel_values=pv)
    txt = model.get_text_features(input_ids=ids)
img = getattr(img, "pooler_output", img); txt = getattr(txt, "pooler_output", txt)
assert not any(m.startswith("vlmcompress") for m in sys.modules), "vlmcompress was imported"
torch.save({"img": img, "txt": txt, "class": type(model).__name__}, sys.argv[2])
"""


def _fresh_process_outputs(path, tmp_path):
    run_fresh_python(REMOTE_LOAD, path, tmp_path / "remote.pt", cwd=tmp_path)
    return torch.load(tmp_path / "remote.pt")


def test_head_pruned_checkpoint_reloads_three_ways(family_model, processor, tmp_path):
    stock_class = type(family_model)
    prune_heads(family_model, HEAD_PLAN)
    prune_mlp(family_model, MLP_PLAN)
    before = _outputs(family_model)
    path = tmp_path / "pruned"
    info = save_compressed(family_model, processor, path)
    assert info["kind"] == "remote_code"
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["auto_map"]["AutoModel"].startswith("modeling_vlmcompress.")
    assert cfg["vision_config"]["layer_num_heads"] == [2, 3]
    # (a) through vlmcompress
    model_a, _, _ = load_checkpoint(str(path))
    assert _max_diff(_outputs(model_a), before) <= 1e-6
    # (b) plain AutoModel + trust_remote_code in a fresh process that never imports vlmcompress
    remote = _fresh_process_outputs(path, tmp_path)
    assert remote["class"].startswith("Vlmcompress")
    assert _max_diff((remote["img"], remote["txt"]), before) <= 1e-6
    # the stock class cannot describe these shapes and must not load them silently
    with pytest.raises(Exception):
        stock_class.from_pretrained(path)


def test_layer_dropped_and_uniform_mlp_checkpoint_loads_with_stock_class(processor, tmp_path):
    model = tiny_clip(processor, layers=3)
    prune_layers(model, {"vision": [1], "text": [0, 2]})
    prune_mlp(model, {"vision": {i: [0, 1, 2, 3] for i in range(2)}, "text": {0: [10, 11, 12, 13]}})
    assert model.config.vision_config.intermediate_size == 124
    before = _outputs(model)
    path = tmp_path / "stock"
    assert save_compressed(model, processor, path)["kind"] == "stock"
    cfg = json.loads((path / "config.json").read_text())
    assert "auto_map" not in cfg and not (path / "modeling_vlmcompress.py").exists()
    reloaded = CLIPModel.from_pretrained(path).eval()
    assert reloaded.config.vision_config.num_hidden_layers == 2
    assert _max_diff(_outputs(reloaded), before) <= 1e-6
    assert (path / "tokenizer.json").exists() and (path / "processor_config.json").exists()


@pytest.mark.parametrize("cls_name", ["CLIPVisionModelWithProjection", "CLIPVisionModel", "CLIPTextModel",
                                      "CLIPTextModelWithProjection"])
def test_single_tower_classes_prune_and_reload(cls_name, processor, tmp_path):
    import transformers
    from transformers import AutoModel

    cls = getattr(transformers, cls_name)
    torch.manual_seed(0)
    full = tiny_clip(processor)
    tower = "vision" if "Vision" in cls_name else "text"
    model = cls(getattr(full.config, f"{tower}_config")).eval()
    prune_heads(model, {tower: {0: [1, 2]}})
    prune_mlp(model, {tower: {1: [0, 5, 9]}})
    if tower == "vision":
        inputs = {"pixel_values": torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))}
    else:
        inputs = {"input_ids": torch.tensor([[0, 20, 30, 1], [0, 40, 1, 1]])}
    with torch.no_grad():
        before = model(**inputs)[0]
    path = tmp_path / cls_name
    assert save_compressed(model, processor, path)["kind"] == "remote_code"
    assert json.loads((path / "config.json").read_text())["architectures"] == [f"Vlmcompress{cls_name}"]
    for reloaded in (load_checkpoint(str(path))[0], AutoModel.from_pretrained(path, trust_remote_code=True).eval()):
        assert isinstance(reloaded, cls)
        with torch.no_grad():
            assert (reloaded(**inputs)[0] - before).abs().max() <= 1e-6


# --- the hidden width (TinyCLIP/DistilBERT-style narrow students that inherit their weights) ---------------------
def test_hidden_ratio_slices_width_and_heads_into_a_stock_clip(processor, tmp_path):
    from vlmcompress.pruning.config import PruningConfig, prune_model

    model = tiny_clip(processor)  # hidden 32, 4 heads of 8, MLP 128, 2 layers per tower
    adapter = get_adapter(model)
    strong = [3, 9, 17, 30]  # made the largest dimensions of the vision stream: magnitude must keep them
    with torch.no_grad():
        for module, name, axis in adapter.hidden_parts("vision"):
            getattr(module, name).index_fill_(axis, torch.tensor(strong), 5.0)
    steps = prune_model(model, PruningConfig(hidden_ratio=0.5, mlp_ratio=0.5, importance="magnitude"), processor)
    assert [s["method"] for s in steps] == ["head_pruning", "mlp_pruning", "hidden_pruning"]
    hidden = steps[-1]
    for tower in ("vision", "text"):
        cfg = adapter.tower_config(tower)
        assert (cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (16, 2, 64)
        assert getattr(cfg, "layer_num_heads", None) is None  # expressible by the stock config
        assert adapter.attention(adapter.layers(tower)[0]).head_dim == 8
        kept, removed = cfg.vlmcompress_kept_hidden, hidden["removed_hidden"][tower]
        assert len(kept) == len(removed) == 16 and sorted(kept + removed) == list(range(32))
    assert set(strong) <= set(adapter.tower_config("vision").vlmcompress_kept_hidden)
    assert type(model) is CLIPModel  # head pruning made it the vlmcompress class; the sliced width is stock again
    assert model.visual_projection.in_features == 16 and model.text_projection.weight.shape == (16, 16)
    before = _outputs(model)
    model.save_pretrained(tmp_path)
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())
    reloaded = CLIPModel.from_pretrained(tmp_path).eval()
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())
    assert _max_diff(before, _outputs(reloaded)) < 1e-6


def test_hidden_width_errors_name_the_fix_and_change_nothing(processor):
    from vlmcompress.pruning import prune_hidden
    from vlmcompress.pruning.config import PruningConfig, prune_model

    with pytest.raises(VlmcompressError, match="leave head_ratio and head_plan unset"):
        PruningConfig(hidden_ratio=0.5, head_ratio=0.5)
    siglip = tiny_siglip()
    params = sum(p.numel() for p in siglip.parameters())
    with pytest.raises(VlmcompressError, match="implemented for CLIP, not SigLIP"):
        prune_model(siglip, PruningConfig(hidden_ratio=0.5, importance="magnitude"))
    assert sum(p.numel() for p in siglip.parameters()) == params
    model = tiny_clip(processor)
    with pytest.raises(VlmcompressError, match="keep 2 heads in every layer"):
        prune_hidden(model, {"vision": list(range(16))})  # 16 wide, but still 4 heads of 8
    prune_heads(model, {"vision": {0: [0]}})
    with pytest.raises(VlmcompressError, match="same number of heads in every vision layer"):
        prune_model(model, PruningConfig(hidden_ratio=0.5, importance="magnitude"), processor)
    assert adapter_width(model) == (32, 32)


def adapter_width(model):
    return model.config.vision_config.hidden_size, model.vision_model.post_layernorm.weight.shape[0]
