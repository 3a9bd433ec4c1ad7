"""The promise that adding a model family touches one module: a toy family registered in one file (this one) runs
prune -> save -> reload -> report -> card through the library, with no other change."""

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from vlmcompress.adapters import register_adapter
from vlmcompress.adapters.base import AttentionParts, MlpParts, ModelAdapter


class ToyConfig(PretrainedConfig):
    model_type = "toy_vlm"

    def __init__(self, hidden_size=16, num_attention_heads=4, intermediate_size=32, num_hidden_layers=2, **kw):
        super().__init__(**kw)
        self.hidden_size, self.num_attention_heads = hidden_size, num_attention_heads
        self.intermediate_size, self.num_hidden_layers = intermediate_size, num_hidden_layers


class ToyBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(c.hidden_size, c.hidden_size) for _ in range(4))
        self.up, self.down = nn.Linear(c.hidden_size, c.intermediate_size), nn.Linear(c.intermediate_size, c.hidden_size)
        self.head_dim = c.hidden_size // c.num_attention_heads

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, -1, self.head_dim).transpose(1, 2) for f in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / self.head_dim ** 0.5, -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        return x + self.down(torch.relu(self.up(x)))


class ToyEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.layers = nn.ModuleList(ToyBlock(c) for _ in range(c.num_hidden_layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class ToyModel(PreTrainedModel):
    config_class = ToyConfig

    def __init__(self, config):
        super().__init__(config)
        self.vision = ToyEncoder(config)
        self.post_init()

    def forward(self, x):
        return self.vision(x)


class ToyAdapter(ModelAdapter):
    family = "toy"
    model_types = ("toy_vlm",)
    display_name = "Toy"
    tower_names = ("vision",)

    def towers(self):
        return {"vision": self.model.vision}

    def tower_config(self, tower):
        return self.model.config

    def layers(self, tower):
        return self.model.vision.layers

    def set_layers(self, tower, layers):
        self.model.vision.layers = layers
        self.model.config.num_hidden_layers = len(layers)

    def attention(self, layer):
        return AttentionParts(module=layer, head_dim=layer.head_dim, names={"q": "q", "k": "k", "v": "v", "out": "o"},
                              blocks={"q": 1, "k": 1, "v": 1})

    def mlp(self, layer):
        return MlpParts(module=layer, up_names=["up"], down_name="down")


@pytest.fixture
def toy_family():
    """The toy family registered for one test only: the tests collected after this one see the shipped families."""
    from vlmcompress.adapters import ADAPTERS

    register_adapter(ToyAdapter)
    try:
        yield ToyAdapter
    finally:
        ADAPTERS.remove(ToyAdapter)


def test_the_toy_family_is_registered_only_inside_its_fixture(toy_family):
    from vlmcompress.adapters import ADAPTERS, adapter_for_family

    assert adapter_for_family("toy") is toy_family and ADAPTERS[0] is toy_family


def test_no_toy_family_outside_its_fixture():
    from vlmcompress.adapters import adapter_for_family, known_tower_names

    assert adapter_for_family("toy") is None and "toy" not in known_tower_names()


def test_a_family_in_one_module_prunes_saves_reloads_and_reports(tmp_path, toy_family):
    from vlmcompress import PruningConfig, finish_checkpoint, prune_model, read_report

    torch.manual_seed(0)
    model = ToyModel(ToyConfig()).eval()
    x = torch.randn(2, 5, 16)
    steps = prune_model(model, PruningConfig(head_plan={"vision": {"0": [1]}}, mlp_plan={"vision": {"1": list(range(8))}}))
    pruned_out = model(x)
    assert model.vision.layers[0].q.out_features == 12 and model.vision.layers[1].up.out_features == 24
    report = finish_checkpoint(model, None, tmp_path / "toy", base_model=None, steps=steps,
                               save=lambda m, p, folder: (m.save_pretrained(folder), {"kind": "stock", "class": "ToyModel"})[1])
    assert report["model_family"] == "toy"
    back = read_report(tmp_path / "toy")
    assert back["steps"][0]["removed_heads"] == {"vision": {"0": [1]}}
    assert "Toy" in (tmp_path / "toy" / "README.md").read_text()
    # the config records the shapes; a toy family rebuilds them as its own modeling code would
    reloaded = ToyModel(ToyConfig())
    for i, layer in enumerate(reloaded.vision.layers):
        heads = model.config.layer_num_heads[i] if getattr(model.config, "layer_num_heads", None) else 4
        width = heads * layer.head_dim
        layer.q, layer.k, layer.v = (nn.Linear(16, width) for _ in range(3))
        layer.o = nn.Linear(width, 16)
        n = (model.config.layer_intermediate_sizes or [32, 32])[i]
        layer.up, layer.down = nn.Linear(16, n), nn.Linear(n, 16)
    from safetensors.torch import load_file

    reloaded.load_state_dict(load_file(str(tmp_path / "toy" / "model.safetensors")))
    assert torch.allclose(reloaded.eval()(x), pruned_out, atol=1e-6)
