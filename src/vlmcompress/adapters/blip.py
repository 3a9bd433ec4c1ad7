"""BLIP: a ViT vision tower with a fused ``qkv`` Linear, and BERT-style text towers.

Where things live (transformers v5):

- vision (``vision_model.encoder.layers``): ``self_attn.qkv`` (rows: all q heads, then all k, then all v) and
  ``self_attn.projection``; the stock forward reshapes with ``embed_dim // num_heads``, so a layer with fewer heads
  gets ``VlmcompressBlipAttention`` (same weights, a forward that reads ``head_dim``). MLP: ``mlp.fc1``/``fc2``.
- text encoder (``text_encoder`` in retrieval/VQA, ``text_model`` in ``BlipModel``) and text decoder
  (``text_decoder.bert``): ``encoder.layer[i].attention.self.{query,key,value}`` + ``attention.output.dense``;
  cross-attention to the image in ``crossattention``, whose heads are a head site of their own named
  ``<tower>_cross`` (``text_cross``, ``text_decoder_cross``; config keys ``layer_num_cross_heads``);
  MLP ``intermediate.dense``/``output.dense``. Each layer and its attentions carry ``layer_idx`` for the KV cache,
  renumbered when layers are dropped so ``generate`` still works.

Tower names: ``vision``, ``text`` (encoder) and ``text_decoder``.
"""

from __future__ import annotations

import contextlib
import math

import torch

from ..errors import VlmcompressError
from ..modeling.structure import CROSS_HEAD_KEYS
from .base import AttentionParts, ModelAdapter, MlpParts, TowerFeatures, _pooled, get_path

#: original BLIP's ITC temperature (0.07); transformers' retrieval model does not carry it
BLIP_ITC_LOGIT_SCALE = math.log(1 / 0.07)
#: head sites of a text tower's cross-attention (to the image) are named "<tower>_cross"
CROSS_SUFFIX = "_cross"


class CrossHeadsConfig:
    """A text tower's config seen from its cross-attention: the per-layer head keys are the cross ones
    (``layer_num_cross_heads``, ``vlmcompress_kept_cross_heads``); everything else is the tower's own."""

    _KEYS = CROSS_HEAD_KEYS

    def __init__(self, config):
        object.__setattr__(self, "_config", config)

    def __getattr__(self, name):
        return getattr(self._config, self._KEYS.get(name, name))

    def __setattr__(self, name, value):
        setattr(self._config, self._KEYS.get(name, name), value)

    def __delattr__(self, name):
        delattr(self._config, self._KEYS.get(name, name))


class BlipAdapter(ModelAdapter):
    family = "blip"
    model_types = ("blip", "blip_vision_model", "blip_text_model")
    display_name = "BLIP"
    pipeline_tag = "image-to-text"
    tower_names = ("vision", "text", "text_decoder")
    head_site_names = ("vision", "text", "text_decoder", "text" + CROSS_SUFFIX, "text_decoder" + CROSS_SUFFIX)
    default_remote_class = "VlmcompressBlipForImageTextRetrieval"
    citation = ("the BLIP model family", """@inproceedings{li2022blip,
  title     = {BLIP: Bootstrapping Language-Image Pre-training for Unified Vision-Language Understanding and Generation},
  author    = {Li, Junnan and Li, Dongxu and Xiong, Caiming and Hoi, Steven},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2022}
}""")
    tower_projections = {"vision": "vision_proj", "text": "text_proj"}
    #: tower name -> attribute paths, first present wins
    tower_paths = {"vision": ("vision_model",), "text": ("text_encoder", "text_model"), "text_decoder": ("text_decoder.bert",)}
    # the heads every embedding or token passes through: ITC projections, the ITM head, the LM head (tied to the
    # word embeddings, which bitsandbytes cannot share)
    quantization_keep = ("vision_proj", "text_proj", "itm_head", "visual_projection", "text_projection",
                         "text_decoder.cls.predictions.decoder")

    # --- structure -------------------------------------------------------------------------------------------
    def towers(self) -> dict:
        out = {}
        for name, paths in self.tower_paths.items():
            for path in paths:
                try:
                    out[name] = get_path(self.model, path)
                    break
                except AttributeError:
                    continue
        if not out:  # BlipVisionModel / BlipTextModel on their own
            kind = "vision" if "vision" in self.model.config.model_type else "text"
            out[kind] = self.model
        return out

    def tower_config(self, tower: str):
        towers = self.towers()
        config = towers[tower].config
        sharing = [name for name, module in towers.items() if name != tower and module.config is config]
        if sharing:
            raise VlmcompressError(
                f"{type(self.model).__name__} builds its {tower} and {sharing[0]} towers from one config, so their "
                f"shapes cannot differ: prune the vision tower only (or use BlipForImageTextRetrieval / "
                "BlipForConditionalGeneration)"
            )
        return config

    def layers(self, tower: str):
        encoder = self.towers()[tower].encoder
        return encoder.layers if hasattr(encoder, "layers") else encoder.layer

    def set_layers(self, tower: str, layers) -> None:
        encoder = self.towers()[tower].encoder
        if hasattr(encoder, "layers"):
            encoder.layers = layers
            return
        encoder.layer = layers
        for i, layer in enumerate(layers):  # the KV cache is indexed by layer_idx
            layer.layer_num = i
            for attention in (getattr(layer, "attention", None), getattr(layer, "crossattention", None)):
                if attention is not None:
                    attention.self.layer_idx = i

    def attention(self, layer) -> AttentionParts:
        if hasattr(layer, "self_attn"):  # vision: fused qkv
            attn = layer.self_attn

            def set_vision_heads(n):
                from ..modeling.modeling_vlmcompress import VlmcompressBlipAttention

                attn.__class__ = VlmcompressBlipAttention
                attn.num_heads = n

            return AttentionParts(module=attn, head_dim=attn.head_dim, names={"qkv": "qkv", "out": "projection"},
                                  blocks={"qkv": 3}, set_num_heads=set_vision_heads)
        return self._bert_parts(layer.attention)

    @staticmethod
    def _bert_parts(attention) -> AttentionParts:
        """A BERT-style attention (``BlipTextAttention``: self-attention or cross-attention to the image)."""
        inner = attention.self

        def set_heads(n):
            inner.num_attention_heads = n
            inner.all_head_size = n * inner.attention_head_size

        return AttentionParts(
            module=attention, head_dim=inner.attention_head_size,
            names={"q": "self.query", "k": "self.key", "v": "self.value", "out": "output.dense"},
            blocks={"q": 1, "k": 1, "v": 1}, set_num_heads=set_heads,
        )

    def head_sites(self) -> dict:
        sites = super().head_sites()
        for tower in list(sites):
            layers = self.layers(tower)
            if len(layers) and getattr(layers[0], "crossattention", None) is not None:
                sites[f"{tower}{CROSS_SUFFIX}"] = tower
        return sites

    def tower_reads(self, tower: str) -> tuple[str, ...]:
        # a text tower with cross-attention reads the image tower's output
        return ("vision",) if f"{tower}{CROSS_SUFFIX}" in self.head_sites() and "vision" in self.towers() else ()

    def head_parts(self, site: str, layer) -> AttentionParts:
        return self._bert_parts(layer.crossattention) if site.endswith(CROSS_SUFFIX) else self.attention(layer)

    def head_config(self, site: str):
        if site.endswith(CROSS_SUFFIX):
            return CrossHeadsConfig(self.tower_config(site[: -len(CROSS_SUFFIX)]))
        return self.tower_config(site)

    def mlp(self, layer) -> MlpParts:
        if hasattr(layer, "mlp"):
            return MlpParts(module=layer.mlp, up_names=["fc1"], down_name="fc2")
        return MlpParts(module=layer, up_names=["intermediate.dense"], down_name="output.dense")

    # --- embeddings and losses -------------------------------------------------------------------------------
    def _require(self, *attributes):
        missing = [a for a in attributes if not hasattr(self.model, a)]
        if missing:
            raise VlmcompressError(
                f"{type(self.model).__name__} has no image-text embedding heads ({', '.join(missing)}): retrieval "
                "and zero-shot need BlipForImageTextRetrieval or BlipModel; a captioner is measured by its captions "
                "and distilled through its decoder"
            )

    @staticmethod
    def usage(class_name: str) -> str:
        if "ConditionalGeneration" in class_name:
            return "caption"
        return "itc" if "ImageTextRetrieval" in class_name else "zero_shot"

    @property
    def is_captioner(self) -> bool:
        task = getattr(self.model, "vlmcompress_task", None)  # an exported model says what its graphs do
        if task is not None:
            return task == "caption"
        return hasattr(self.model, "text_decoder") and not hasattr(self.model, "text_encoder")

    @property
    def task_auto_classes(self) -> tuple[str, ...]:
        # the captioner serves the image-text-to-text pipeline; retrieval/ITM classes have no task pipeline
        return ("AutoModelForImageTextToText",) if self.is_captioner else ()

    def latency_forward(self, pixel_values, input_ids, attention_mask=None) -> None:
        if not self.is_captioner:
            return super().latency_forward(pixel_values, input_ids, attention_mask)
        ids, _ = self.caption_inputs(input_ids, attention_mask)
        self.model(pixel_values=pixel_values, input_ids=ids, attention_mask=attention_mask)

    def image_embeddings(self, pixel_values):
        if hasattr(self.model, "get_image_features"):
            return _pooled(self.model.get_image_features(pixel_values=pixel_values))
        self._require("vision_proj")
        return self.model.vision_proj(self.model.vision_model(pixel_values=pixel_values).last_hidden_state[:, 0])

    def text_embeddings(self, input_ids, attention_mask=None):
        if hasattr(self.model, "get_text_features"):
            return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        self._require("text_proj")
        hidden = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.model.text_proj(hidden[:, 0])

    def logit_scale(self) -> torch.Tensor:
        scale = getattr(self.model, "logit_scale", None)
        if scale is not None:
            return scale
        return torch.tensor(BLIP_ITC_LOGIT_SCALE, device=self.device())

    def caption_inputs(self, input_ids, attention_mask=None):
        """Decoder inputs and labels for captioning: the first token becomes the decoder's BOS (as ``generate``
        starts), padding is ignored by the loss."""
        config = self.model.config.text_config
        input_ids = input_ids.clone()
        input_ids[:, 0] = config.bos_token_id
        labels = input_ids.masked_fill(input_ids == config.pad_token_id, -100)
        if attention_mask is not None:
            labels = labels.masked_fill(attention_mask == 0, -100)
        return input_ids, labels

    def training_loss(self, pixel_values, input_ids, attention_mask=None, labels=None):
        """Captioners: the decoder's language-model loss; retrieval: ITC + ITM; BlipModel: ITC."""
        dev = self.device()
        pixel_values = pixel_values.to(device=dev, dtype=self.input_dtype())
        input_ids = input_ids.to(dev)
        attention_mask = None if attention_mask is None else attention_mask.to(dev)
        if self.is_captioner:
            ids, lm_labels = self.caption_inputs(input_ids, attention_mask)
            return self.model(pixel_values=pixel_values, input_ids=ids, attention_mask=attention_mask, labels=lm_labels).loss
        labels = None if labels is None else labels.to(dev)
        if not self.has_itm:
            img = self.image_embeddings(pixel_values)
            txt = self.text_embeddings(input_ids, attention_mask)
            return self.pair_loss(img.float(), txt.float(), labels)
        # retrieval: BLIP's own objective, ITC + ITM (each image with its caption and the next row's), so the
        # cross-attention the ITM head reads gets gradients too
        states = self.model.vision_model(pixel_values=pixel_values).last_hidden_state
        img = self.model.vision_proj(states[:, 0])
        txt = self.text_embeddings(input_ids, attention_mask)
        itc = self.pair_loss(img.float(), txt.float(), labels)
        itm = self._itm_logits(states, input_ids, attention_mask).float()
        matches = torch.ones(itm.shape[:2], dtype=torch.long, device=dev)
        matches[:, 1] = 0 if labels is None else (labels == labels.roll(1, dims=0)).long()
        return itc + torch.nn.functional.cross_entropy(itm.reshape(-1, 2), matches.reshape(-1))

    def pair_loss(self, image_embeds, text_embeds, labels=None):
        """BLIP's image-text contrastive loss (ITC) on projected embeddings, at its temperature (``logit_scale``)."""
        if self.is_captioner:
            return super().pair_loss(image_embeds, text_embeds, labels)
        from ..objectives import contrastive_loss

        return contrastive_loss(image_embeds, text_embeds, self.logit_scale().float(), labels)

    @contextlib.contextmanager
    def _recording(self, tower, active):
        """Collects a text tower's hidden states during a forward (the model does not return them): index 0 is the
        embedding output, i the output of layer i."""
        recorded, handles = [], []
        if active:
            layers = self.layers(tower)
            handles.append(layers[0].register_forward_pre_hook(lambda m, args: recorded.append(args[0])))
            for layer in layers:
                handles.append(layer.register_forward_hook(
                    lambda m, args, out: recorded.append(out[0] if isinstance(out, tuple) else out)))
        try:
            yield recorded
        finally:
            for h in handles:
                h.remove()

    @property
    def has_itm(self) -> bool:
        return hasattr(self.model, "itm_head")

    def _caption_features(self, model, pixel_values, input_ids, mask, output_hidden_states):
        ids, labels = self.caption_inputs(input_ids, mask)
        with self._recording("text_decoder", output_hidden_states) as recorded:
            out = model(pixel_values=pixel_values, input_ids=ids, attention_mask=mask, labels=labels,
                        output_hidden_states=output_hidden_states)
        hidden = {"vision": out.hidden_states, "text_decoder": tuple(recorded)} if output_hidden_states else {}
        return TowerFeatures(image_embeds=None, text_embeds=None, logit_scale=None, hidden_states=hidden, text_mask=mask,
                             token_logits=out.logits[:, :-1], token_mask=labels[:, 1:] != -100, own_loss=out.loss)

    def features(self, model, pixel_values, input_ids, attention_mask=None, output_hidden_states=False,
                 with_itm=False):
        dev = self.device()
        mask = None if attention_mask is None else attention_mask.to(dev)
        pixel_values, input_ids = pixel_values.to(device=dev, dtype=self.input_dtype()), input_ids.to(dev)
        if self.is_captioner:
            return self._caption_features(model, pixel_values, input_ids, mask, output_hidden_states)
        if hasattr(self.model, "logit_scale"):  # BlipModel: CLIP-style outputs
            with self._recording("text", output_hidden_states) as recorded:
                out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=mask,
                            output_hidden_states=output_hidden_states)
            hidden = {"vision": out.vision_model_output.hidden_states, "text": tuple(recorded)} if output_hidden_states else {}
            return TowerFeatures(image_embeds=out.image_embeds, text_embeds=out.text_embeds, logit_scale=self.logit_scale(),
                                 hidden_states=hidden, text_mask=mask)
        self._require("vision_proj", "text_proj")
        with self._recording("text", output_hidden_states) as recorded:
            out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=mask, use_itm_head=False,
                        output_hidden_states=output_hidden_states)
        image = self.model.vision_proj(out.last_hidden_state[:, 0])
        text = self.model.text_proj(out.question_embeds[:, 0])
        hidden = {"vision": out.hidden_states, "text": tuple(recorded)} if output_hidden_states else {}
        itm = self._itm_logits(out.last_hidden_state, input_ids, mask) if with_itm else None
        return TowerFeatures(image_embeds=image, text_embeds=text, logit_scale=self.logit_scale(), hidden_states=hidden,
                             text_mask=mask, itm_logits=itm)

    def _itm_logits(self, image_states, input_ids, mask):
        """(B, 2, 2) image-text matching logits of each image with its own caption and with the next row's caption
        (a negative, unless it names the same thing): the text encoder attends to the image's tokens."""
        b = input_ids.shape[0]
        ids = torch.cat([input_ids, input_ids.roll(1, dims=0)])
        att = None if mask is None else torch.cat([mask, mask.roll(1, dims=0)])
        states = torch.cat([image_states, image_states])
        image_mask = torch.ones(states.shape[:-1], dtype=torch.long, device=states.device)
        q = self.model.text_encoder(input_ids=ids, attention_mask=att, encoder_hidden_states=states,
                                    encoder_attention_mask=image_mask).last_hidden_state
        return self.model.itm_head(q[:, 0]).view(2, b, 2).transpose(0, 1)

    @torch.no_grad()
    def generate_captions(self, pixel_values, max_new_tokens: int = 12):
        """Greedy captions (token ids) for a batch of images; at most as many tokens as the decoder has positions."""
        if not self.is_captioner:
            raise VlmcompressError(f"{type(self.model).__name__} does not caption: expected BlipForConditionalGeneration")
        positions = getattr(self.model.config.text_config, "max_position_embeddings", None)
        if positions:
            max_new_tokens = max(1, min(max_new_tokens, positions - 2))  # the BOS prompt takes one position
        pixel_values = pixel_values.to(device=self.device(), dtype=self.input_dtype())
        return self.model.generate(pixel_values=pixel_values, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
