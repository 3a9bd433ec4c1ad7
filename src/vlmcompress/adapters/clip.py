"""CLIP and SigLIP: two towers with ``get_image_features`` / ``get_text_features``.

Both keep their transformer blocks in ``<tower>.encoder.layers``; each block has ``self_attn`` with square
``q_proj``/``k_proj``/``v_proj``/``out_proj`` Linears (the forward reshapes with ``view(..., -1, head_dim)``, so
fewer heads run unchanged) and ``mlp.fc1``/``mlp.fc2``.
"""

from __future__ import annotations

from ..errors import VlmcompressError
from .base import AttentionParts, ModelAdapter, MlpParts, TowerFeatures, _pooled


class ClipAdapter(ModelAdapter):
    family = "clip"
    model_types = ("clip", "clip_vision_model", "clip_text_model")
    display_name = "CLIP"
    tower_names = ("vision", "text")
    default_remote_class = "VlmcompressCLIPModel"
    citation = ("the CLIP model family", """@inproceedings{radford2021clip,
  title     = {Learning Transferable Visual Models From Natural Language Supervision},
  author    = {Radford, Alec and Kim, Jong Wook and Hallacy, Chris and Ramesh, Aditya and Goh, Gabriel and Agarwal, Sandhini and Sastry, Girish and Askell, Amanda and Mishkin, Pamela and Clark, Jack and Krueger, Gretchen and Sutskever, Ilya},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2021}
}""")
    tower_attributes = {"vision": "vision_model", "text": "text_model"}
    # the projection heads: every embedding passes through them
    quantization_keep = ("visual_projection", "text_projection")

    def image_embeddings(self, pixel_values):
        return _pooled(self.model.get_image_features(pixel_values=pixel_values))

    def text_embeddings(self, input_ids, attention_mask=None):
        return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    def training_loss(self, pixel_values, input_ids, attention_mask=None, labels=None):
        """The model's own contrastive objective on a batch (multi-positive when labels are given)."""
        dev = self.device()
        img = self.image_embeddings(pixel_values.to(device=dev, dtype=self.input_dtype()))
        txt = self.text_embeddings(input_ids.to(dev), None if attention_mask is None else attention_mask.to(dev))
        return self.pair_loss(img.float(), txt.float(), None if labels is None else labels.to(dev))

    def pair_loss(self, image_embeds, text_embeds, labels=None):
        from ..objectives import contrastive_loss

        return contrastive_loss(image_embeds, text_embeds, self.model.logit_scale.float(), labels)

    def features(self, model, pixel_values, input_ids, attention_mask=None, output_hidden_states=False,
                 with_itm=False):
        if not hasattr(self.model, "logit_scale"):
            raise VlmcompressError(f"{type(self.model).__name__} is one tower: image-text distillation needs the "
                                   "two-tower model (e.g. CLIPModel, SiglipModel)")
        dev = self.device()
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask.to(dev)}
        out = model(pixel_values=pixel_values.to(device=dev, dtype=self.input_dtype()), input_ids=input_ids.to(dev),
                    output_hidden_states=output_hidden_states, return_dict=True, **kwargs)
        hidden = {}
        if output_hidden_states:
            hidden = {"vision": out.vision_model_output.hidden_states, "text": out.text_model_output.hidden_states}
        return TowerFeatures(image_embeds=out.image_embeds, text_embeds=out.text_embeds,
                             logit_scale=self.model.logit_scale, hidden_states=hidden, text_mask=kwargs.get("attention_mask"))

    # --- structure -------------------------------------------------------------------------------------------
    def towers(self) -> dict:
        """Tower name -> the module holding ``encoder.layers`` (the model itself for a single-tower class)."""
        out = {}
        for name, attr in self.tower_attributes.items():
            module = getattr(self.model, attr, None)
            if module is not None:
                out[name] = module
        if not out:  # CLIPVisionModel / CLIPTextModel: the model is one tower
            kind = "vision" if "vision" in self.model.config.model_type else "text"
            inner = getattr(self.model, self.tower_attributes[kind], self.model)
            out[kind] = inner
        return out

    def tower_config(self, tower: str):
        # the tower module shares this object with model.config.<tower>_config, so edits reach both
        return self.towers()[tower].config

    def layers(self, tower: str):
        return self.towers()[tower].encoder.layers

    def set_layers(self, tower: str, layers) -> None:
        self.towers()[tower].encoder.layers = layers

    def attention(self, layer) -> AttentionParts:
        attn = layer.self_attn

        def set_num_heads(n):
            attn.num_heads = n

        return AttentionParts(
            module=attn, head_dim=attn.head_dim, names={"q": "q_proj", "k": "k_proj", "v": "v_proj", "out": "out_proj"},
            blocks={"q": 1, "k": 1, "v": 1}, set_num_heads=set_num_heads,
        )

    def mlp(self, layer) -> MlpParts:
        return MlpParts(module=layer.mlp, up_names=["fc1"], down_name="fc2")

    #: the model's Linear from each tower's pooled output into the shared embedding space
    tower_projections = {"vision": "visual_projection", "text": "text_projection"}

    def hidden_parts(self, tower: str) -> list:
        module = self.towers()[tower]
        emb = module.embeddings
        parts = []
        if tower == "vision":
            parts += [(emb.patch_embedding, "weight", 0), (emb.patch_embedding, "bias", 0), (emb, "class_embedding", 0),
                      (emb.position_embedding, "weight", 1)]
            norms = [module.pre_layrnorm, module.post_layernorm]
        else:
            parts += [(emb.token_embedding, "weight", 1), (emb.position_embedding, "weight", 1)]
            norms = [module.final_layer_norm]
        for layer in self.layers(tower):
            attn = layer.self_attn
            norms += [layer.layer_norm1, layer.layer_norm2]
            parts += [(getattr(attn, name), "weight", 1) for name in ("q_proj", "k_proj", "v_proj")]
            parts += [(attn.out_proj, "weight", 0), (attn.out_proj, "bias", 0), (layer.mlp.fc1, "weight", 1),
                      (layer.mlp.fc2, "weight", 0), (layer.mlp.fc2, "bias", 0)]
        parts += [(norm, name, 0) for norm in norms for name in ("weight", "bias")]
        projection = getattr(self.model, self.tower_projections[tower], None)
        if projection is not None:
            parts.append((projection, "weight", 1))
        return [(m, name, axis) for m, name, axis in parts if getattr(m, name, None) is not None]

    def set_hidden_size(self, tower: str, hidden_size: int, num_heads: int) -> None:
        config = self.tower_config(tower)
        old = config.hidden_size
        config.hidden_size, config.num_attention_heads = hidden_size, num_heads
        for module in self.towers()[tower].modules():
            if getattr(module, "embed_dim", None) == old:  # CLIPVisionEmbeddings, CLIPAttention, CLIPEncoderLayer
                module.embed_dim = hidden_size
        attr = {"vision": "vision_embed_dim", "text": "text_embed_dim"}[tower]
        if hasattr(self.model, attr):
            setattr(self.model, attr, hidden_size)


class SiglipAdapter(ClipAdapter):
    family = "siglip"
    model_types = ("siglip", "siglip_vision_model", "siglip_text_model")
    display_name = "SigLIP"
    default_remote_class = "VlmcompressSiglipModel"
    citation = ("the SigLIP model family", """@inproceedings{zhai2023siglip,
  title     = {Sigmoid Loss for Language Image Pre-Training},
  author    = {Zhai, Xiaohua and Mustafa, Basil and Kolesnikov, Alexander and Beyer, Lucas},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2023}
}""")
    # SigLIP was trained on max-length padded text without an attention mask
    text_padding = {"padding": "max_length"}
    # the vision pooling head's MLP is sized by intermediate_size too: a changed config size would resize it
    stock_mlp_resize_ok = False
    # the vision tower's attention-pooling head (its MultiheadAttention reads out_proj.weight directly, so that
    # Linear must stay a Linear) and the text tower's projection head
    quantization_keep = ("vision_model.head", "text_model.head")

    def hidden_parts(self, tower: str) -> list:
        from ..errors import VlmcompressError

        raise VlmcompressError("slicing the hidden width is implemented for CLIP, not SigLIP (its attention-pooling "
                               "head reads its widths directly): remove heads, MLP neurons or layers instead")

    def pair_loss(self, image_embeds, text_embeds, labels=None):
        from ..objectives import sigmoid_loss

        return sigmoid_loss(image_embeds, text_embeds, self.model.logit_scale.float(), self.model.logit_bias.float(), labels)
