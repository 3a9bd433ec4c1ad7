"""bitsandbytes quantization on CPU (real kernels): checkpoints that reload right, skips, SigLIP, pruning + quantization."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from conftest import tiny_clip
from vlmcompress.errors import VlmcompressError
from vlmcompress.quantization import (
    QuantizationConfig,
    check_quantized_layout,
    plan_skips,
    quantize,
    save_quantized,
    weight_bytes,
)

bnb = pytest.importorskip("bitsandbytes")
LINEAR_CLASS = {8: "Linear8bitLt", 4: "Linear4bit"}


def _inputs(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 56, 56, generator=g), torch.randint(2, 60, (n, 8), generator=g)


@torch.no_grad()
def embeddings(model, pixel_values, input_ids):
    from vlmcompress.adapters import get_adapter

    adapter = get_adapter(model)
    return torch.cat([adapter.image_embeddings(pixel_values), adapter.text_embeddings(input_ids)], dim=-1).float()


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item()


@pytest.fixture(scope="module")
def clip64_dir(tmp_path_factory, processor):
    """Widths that bitsandbytes' 4-bit CPU blocks take (inputs a multiple of 64), so every layer gets quantized."""
    path = tmp_path_factory.mktemp("clip64")
    tiny_clip(processor, hidden=64).save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.mark.parametrize("config", [QuantizationConfig(bits=8), QuantizationConfig(bits=4, double_quant=True),
                                    QuantizationConfig(bits=4, quant_type="fp4")], ids=["int8", "nf4-dq", "fp4"])
def test_quantized_checkpoint_reloads_with_plain_from_pretrained(clip64_dir, processor, tmp_path, config):
    """The trap guard: the reloaded Linears are bnb classes (not float Linears holding int8 values) and give the
    outputs the model gave before saving."""
    from transformers import CLIPModel

    from vlmcompress.loading import load_checkpoint

    fp32 = CLIPModel.from_pretrained(clip64_dir)
    model = quantize(str(clip64_dir), config)
    x = _inputs()
    before = embeddings(model, *x)
    assert cosine(before, embeddings(fp32, *x)) > 0.9  # really quantized, still the same model
    loading = save_quantized(model, processor, tmp_path, config)
    assert loading == {"kind": "bitsandbytes", "class": "CLIPModel"}

    reloaded = CLIPModel.from_pretrained(tmp_path)  # no quantization_config, no device_map: config.json says it all
    encoder_linears = [m for n, m in reloaded.named_modules() if ".encoder.layers." in n and isinstance(m, nn.Linear)]
    assert len(encoder_linears) == 24
    assert {type(m).__name__ for m in encoder_linears} == {LINEAR_CLASS[config.bits]}
    assert type(reloaded.visual_projection) is nn.Linear and type(reloaded.text_projection) is nn.Linear
    saved = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert saved["llm_int8_skip_modules"] == ["visual_projection", "text_projection"]
    assert cosine(embeddings(reloaded, *x), before) >= 0.9999
    # through vlmcompress the 4-bit layout stays bitsandbytes' portable one: bit-identical
    ours, _, _ = load_checkpoint(str(tmp_path))
    torch.testing.assert_close(embeddings(ours, *x), before, rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "quantization_config.json").read_text())["bits"] == config.bits


def test_layers_the_config_does_not_describe_are_refused(clip64_dir, processor, tmp_path):
    """The known trap, built on purpose: int8 weights whose config.json does not say so reload into float Linears
    with no error. vlmcompress refuses to save such a model and refuses to load such a folder."""
    from transformers import CLIPModel

    from vlmcompress.loading import load_checkpoint

    model = quantize(str(clip64_dir), QuantizationConfig(bits=8))
    x = _inputs()
    good = embeddings(model, *x)
    save_quantized(model, processor, tmp_path / "q8")

    # a config that keeps a quantized module in full precision
    qc = model.config.quantization_config
    qc.llm_int8_skip_modules = qc.llm_int8_skip_modules + ["vision_model.encoder.layers.0.mlp.fc1"]
    with pytest.raises(VlmcompressError, match="layers.0.mlp.fc1 is quantized but the config keeps it"):
        save_quantized(model, processor, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    # no quantization_config at all (modules swapped by hand)
    del model.config.quantization_config
    with pytest.raises(VlmcompressError, match="no quantization_config"):
        check_quantized_layout(model)

    # the same folder with quantization_config deleted from config.json: the trap stock transformers walks into
    config_path = tmp_path / "q8" / "config.json"
    config = json.loads(config_path.read_text())
    del config["quantization_config"]
    config_path.write_text(json.dumps(config))
    trapped = CLIPModel.from_pretrained(tmp_path / "q8")
    assert type(trapped.vision_model.encoder.layers[0].mlp.fc1) is nn.Linear
    assert trapped.vision_model.encoder.layers[0].mlp.fc1.weight.abs().max() > 50  # int8 values as floats
    assert cosine(embeddings(trapped, *x), good) < 0.9
    with pytest.raises(VlmcompressError, match="no quantization_config"):
        load_checkpoint(str(tmp_path / "q8"))


def test_towers_and_skip_patterns(clip64_dir):
    model = quantize(str(clip64_dir), QuantizationConfig(bits=8, towers=["vision"], skip=["fc2"]))
    text_linears = [m for n, m in model.named_modules() if n.startswith("text_model") and isinstance(m, nn.Linear)]
    assert text_linears and all(type(m) is nn.Linear for m in text_linears)
    layer = model.vision_model.encoder.layers[1]
    assert type(layer.mlp.fc2) is nn.Linear and type(layer.mlp.fc1).__name__ == "Linear8bitLt"
    step = model.vlmcompress_quantization
    assert step["skipped_modules"] == ["visual_projection", "text_projection", "text_model", "fc2"]
    assert step["towers"] == ["vision"] and step["skipped_by_user"] == ["fc2"] and step["quantized_linears"] == 10
    # regex and prefix forms, as transformers reads them
    assert quantize(str(clip64_dir), QuantizationConfig(bits=8, skip=[r"vision_model\.encoder\.layers\.[01]"])
                    ).vlmcompress_quantization["quantized_linears"] == 12


def test_default_skip_off_quantizes_the_projections_and_reloads(processor, tmp_path):
    from transformers import CLIPModel

    source = tmp_path / "source"
    tiny_clip(processor, hidden=64, projection=64).save_pretrained(source)  # 4-bit CPU blocks need 64-wide outputs
    processor.save_pretrained(source)
    config = QuantizationConfig(bits=4, default_skip=False)
    model = quantize(str(source), config)
    assert type(model.visual_projection).__name__ == type(model.text_projection).__name__ == "Linear4bit"
    step = model.vlmcompress_quantization
    assert step["skipped_by_default"] == [] and step["skipped_modules"] == [] and step["quantized_linears"] == 26
    x = _inputs()
    before = embeddings(model, *x)
    save_quantized(model, processor, tmp_path / "q", config)
    reloaded = CLIPModel.from_pretrained(tmp_path / "q")
    assert type(reloaded.visual_projection).__name__ == "Linear4bit"
    assert cosine(embeddings(reloaded, *x), before) >= 0.9999
    with pytest.raises(VlmcompressError, match="default_skip must be true or false"):
        QuantizationConfig(bits=4, default_skip="no")


def test_dtype_keeps_what_stays_unquantized_in_bfloat16_and_reloads(clip64_dir, processor, tmp_path):
    """``dtype``: embeddings, LayerNorms and the Linears kept in full precision in bf16 (half their bytes), the
    4-bit Linears as they were; the folder reloads with plain from_pretrained in that dtype, giving the same outputs."""
    from transformers import CLIPModel

    both = {}
    for dtype in (None, "bfloat16"):
        config = QuantizationConfig(bits=4, compute_dtype=dtype or "float32", dtype=dtype)
        model = quantize(str(clip64_dir), config)
        save_quantized(model, processor, tmp_path / str(dtype), config)
        both[dtype] = (model, weight_bytes(model, tmp_path / str(dtype)))
    model, sizes = both["bfloat16"]
    fp32_model, fp32_sizes = both[None]
    assert model.text_model.embeddings.token_embedding.weight.dtype == torch.bfloat16
    assert model.visual_projection.weight.dtype == torch.bfloat16  # a Linear kept in full precision, by default
    assert fp32_model.text_model.embeddings.token_embedding.weight.dtype == torch.float32
    assert model.vlmcompress_quantization["dtype"] == "bfloat16" and fp32_model.vlmcompress_quantization["dtype"] == "float32"
    assert sizes["token_embedding"] * 2 == fp32_sizes["token_embedding"]
    assert abs(sizes["quantized_linear"] - fp32_sizes["quantized_linear"]) < 0.01 * fp32_sizes["quantized_linear"]  # (metadata)
    assert sizes["total"] < fp32_sizes["total"]
    x = _inputs()
    before = embeddings(model, x[0].to(torch.bfloat16), x[1])
    reloaded = CLIPModel.from_pretrained(tmp_path / "bfloat16")
    assert reloaded.text_model.embeddings.token_embedding.weight.dtype == torch.bfloat16
    assert type(reloaded.vision_model.encoder.layers[0].mlp.fc1).__name__ == "Linear4bit"
    assert cosine(embeddings(reloaded, x[0].to(torch.bfloat16), x[1]), before) >= 0.9999
    assert cosine(before, embeddings(fp32_model, *x)) >= 0.98  # bf16 rounding of the rest, not a different model
    with pytest.raises(VlmcompressError, match="--dtype must be one of"):
        QuantizationConfig(bits=4, dtype="int4")


def test_bad_options_are_one_clear_error(clip64_dir, processor):
    from transformers import CLIPModel

    cases = [(dict(bits=3), "--bits must be 8"), (dict(bits=8, quant_type="fp4"), "4-bit only"),
             (dict(bits=4, compute_dtype="int8"), "--compute-dtype"), (dict(bits=8, towers=["audio"]), "--towers"),
             (dict(bits=8, skip=["no_such_layer"]), "matches no Linear"), (dict(bits=8, skip=["embeddings"]), "matches no Linear")]
    for options, message in cases:
        with pytest.raises(VlmcompressError, match=message):
            quantize(str(clip64_dir), **options)
    quantized = quantize(str(clip64_dir), bits=8)
    with pytest.raises(VlmcompressError, match="already quantized"):
        quantize(quantized, bits=4)
    with pytest.raises(VlmcompressError, match="every Linear layer is skipped"):
        plan_skips(CLIPModel.from_pretrained(clip64_dir), QuantizationConfig(bits=8, skip=["vision_model", "text_model"]))


def test_4bit_keeps_layers_bitsandbytes_cpu_blocks_cannot_take(processor, tmp_path):
    """On AVX512-BF16 CPUs bitsandbytes' 4-bit kernel needs inputs in blocks of 64: narrower Linears stay full
    precision (listed in config.json), so the checkpoint runs after a plain reload anywhere."""
    from transformers import CLIPModel

    model = tiny_clip(processor, hidden=32)  # q/k/v/out and fc1 take 32 inputs; fc2 takes 128
    quantized = quantize(model, QuantizationConfig(bits=4))
    step = quantized.vlmcompress_quantization
    assert len(step["skipped_for_shape"]) == 20 and step["quantized_linears"] == 4
    assert all(n.endswith("fc2") for n, m in quantized.named_modules() if type(m).__name__ == "Linear4bit")
    x = _inputs()
    before = embeddings(quantized, *x)
    save_quantized(quantized, processor, tmp_path)
    assert cosine(embeddings(CLIPModel.from_pretrained(tmp_path), *x), before) >= 0.9999


def test_siglip_keeps_its_heads_and_reloads(tmp_path):
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=8, bos_token_id=1, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           image_size=56, patch_size=8))
    SiglipModel(config).save_pretrained(tmp_path / "fp")
    model = quantize(str(tmp_path / "fp"), QuantizationConfig(bits=4))
    assert model.vlmcompress_quantization["skipped_by_default"] == ["vision_model.head", "text_model.head"]
    assert type(model.vision_model.head.mlp.fc1) is nn.Linear and type(model.text_model.head) is nn.Linear
    assert type(model.vision_model.encoder.layers[0].mlp.fc2).__name__ == "Linear4bit"
    x = _inputs()
    before = embeddings(model, *x)
    save_quantized(model, None, tmp_path / "q")
    reloaded = SiglipModel.from_pretrained(tmp_path / "q")
    assert type(reloaded.vision_model.encoder.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert cosine(embeddings(reloaded, *x), before) >= 0.9999


FRESH_PROCESS = textwrap.dedent("""
    import sys, torch
    from transformers import AutoModel
    pixel_values, input_ids = torch.load(sys.argv[1])
    out = {}
    for path in sys.argv[3:]:
        model = AutoModel.from_pretrained(path, trust_remote_code=True)
        with torch.no_grad():
            out[path] = {
                "emb": torch.cat([model.get_image_features(pixel_values=pixel_values).pooler_output,
                                  model.get_text_features(input_ids=input_ids).pooler_output], -1),
                "classes": sorted({type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.Linear)}),
                "q_rows": [l.self_attn.q_proj.out_features for l in model.vision_model.encoder.layers],
            }
    assert not any(name.startswith("vlmcompress") for name in sys.modules), "vlmcompress was imported"
    torch.save(out, sys.argv[2])
""")


def test_head_pruned_then_quantized_reloads_through_vlmcompress_and_remote_code(processor, tmp_path):
    from vlmcompress.loading import load_checkpoint
    from vlmcompress.pruning import prune_heads, prune_mlp

    model = tiny_clip(processor, hidden=64, heads=4)
    prune_heads(model, {"vision": {0: [1, 3]}, "text": {1: [0]}})  # non-uniform: needs the remote-code class
    prune_mlp(model, {"vision": {1: list(range(128))}})
    x = _inputs()
    folders, outputs = [], {}
    for bits in (8, 4):
        quantized = quantize(model, QuantizationConfig(bits=bits))
        folder = tmp_path / f"pruned-int{bits}"
        assert save_quantized(quantized, processor, folder)["kind"] == "remote_code"
        assert (folder / "modeling_vlmcompress.py").exists()
        outputs[str(folder)] = embeddings(quantized, *x)
        folders.append(str(folder))
        ours, _, _ = load_checkpoint(str(folder))
        assert [l.self_attn.q_proj.out_features for l in ours.vision_model.encoder.layers] == [32, 64]
        torch.testing.assert_close(embeddings(ours, *x), outputs[str(folder)], rtol=0, atol=1e-6)
    # 4-bit: out_proj of the 2-head layer takes 32 inputs, below bitsandbytes' CPU block: kept full precision
    assert "vision_model.encoder.layers.0.self_attn.out_proj" in quantized.vlmcompress_quantization["skipped_for_shape"]

    torch.save(x, tmp_path / "inputs.pt")
    (tmp_path / "fresh.py").write_text(FRESH_PROCESS)
    r = subprocess.run([sys.executable, str(tmp_path / "fresh.py"), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt"),
                        *folders], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    fresh = torch.load(tmp_path / "out.pt")
    int8, nf4 = folders
    assert fresh[int8]["q_rows"] == [32, 64] and "Linear8bitLt" in fresh[int8]["classes"]
    assert "Linear4bit" in fresh[nf4]["classes"]
    torch.testing.assert_close(fresh[int8]["emb"], outputs[int8], rtol=0, atol=1e-6)  # 8-bit: bit-identical
    # 4-bit: stock bitsandbytes repacks for its AVX512-BF16 kernel (block scales in bf16), so not bit-identical
    assert cosine(fresh[nf4]["emb"], outputs[nf4]) >= 0.9999


def test_weight_bytes_by_kind(clip64_dir, tmp_path, processor):
    from transformers import CLIPModel

    fp32 = weight_bytes(CLIPModel.from_pretrained(clip64_dir), clip64_dir)
    assert fp32["quantized_linear"] == 0 and fp32["token_embedding"] == 4 * 64 * len(processor.tokenizer)
    model = quantize(str(clip64_dir), QuantizationConfig(bits=8))
    save_quantized(model, processor, tmp_path)
    q8 = weight_bytes(model, tmp_path)
    assert q8["quantized_linear_fp32"] == fp32["full_precision_linear"] - 2 * 64 * 16 * 4  # all but the projections
    assert 0.25 <= q8["quantized_linear_ratio"] <= 0.27
    assert q8["token_embedding"] == fp32["token_embedding"] and q8["total"] < fp32["total"]
