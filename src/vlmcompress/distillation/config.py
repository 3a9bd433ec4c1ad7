"""``DistillationConfig``: which losses, their weights, and how the teacher runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import VlmcompressError
from ..io import JsonConfig

LOSS_KINDS = ("mse", "cosine")
TEACHER_DTYPES = (None, "float32", "float16", "bfloat16")
ALL_TERMS = ("logit", "embedding", "hidden", "contrastive", "icl", "itm", "token", "caption", "text")
#: terms only a captioner (decoder, no image-text embeddings) has, and terms only two-tower models have
CAPTION_ONLY_TERMS = ("token", "caption")
TWO_TOWER_TERMS = ("logit", "embedding", "contrastive", "icl", "itm", "text")
#: terms that cached teacher outputs (final image/text embeddings) cannot serve, named for messages
UNCACHEABLE_TERMS = {"hidden": "hidden-state", "itm": "ITM", "token": "token-level", "caption": "captioning"}


CONFIG_FILENAME = "distillation_config.json"


@dataclass
class DistillationConfig(JsonConfig):
    """Weights of the loss terms (0 turns a term off) and their settings.

    The total loss is ``logit_weight * KL(similarity) + embedding_weight * feature loss + hidden_weight * hidden-state
    loss + contrastive_weight * the student's own contrastive loss + icl_weight * the contrastive loss of student against
    teacher embeddings (CLIP-KD's ICL) + text_weight * the text embeddings' feature loss on
    unpaired texts (+ itm_weight * KL of the image-text matching logits, BLIP retrieval)`` for two-tower models (CLIP,
    SigLIP, BLIP retrieval), and ``token_weight * token-level KL + hidden_weight * hidden-state loss + caption_weight *
    the student's own captioning loss`` for captioners (BLIP); every term is logged as ``loss_<name>``.
    """

    logit_weight: float = field(default=1.0, metadata={"help": "Weight of the similarity-matrix KL (both directions, x T^2)."})
    temperature: float = field(default=3.0, metadata={"help": "Softmax temperature T of the similarity-matrix KL."})
    temperature_end: float | None = field(default=1.0, metadata={"help": "Anneal T linearly from --temperature at the first step to this value at the last (3 -> 1 by default: soft targets early, the teacher's sharp ranking late); the value of --temperature (or None) keeps T fixed."})
    embedding_weight: float = field(default=0.0, metadata={"help": "Weight of the final-embedding (feature) loss (CLIP-KD); off by default: beside the similarity KL it cost held-out accuracy in our runs."})
    embedding_loss: str = field(default="mse", metadata={"help": "mse (||s-t||^2 of unit vectors) or cosine (1-cos)."})
    hidden_weight: float = field(default=0.0, metadata={"help": "Weight of the hidden-state loss over mapped layers."})
    hidden_loss: str = field(default="mse", metadata={"help": "mse or cosine, per token (text padding excluded)."})
    layer_map: str | None = field(default=None, metadata={"help": 'Teacher layer -> student layer per tower (a dict, or its JSON), 1-based layer outputs, e.g. {"vision": {"2": 1, "4": 2}} (default: the layers a student inherited, else uniform).'})
    contrastive_weight: float = field(default=1.0, metadata={"help": "Weight of the student's own contrastive (or sigmoid) loss."})
    icl_weight: float = field(default=0.0, metadata={"help": "Weight of CLIP-KD's interactive contrastive loss: the student's image embeddings contrasted against the teacher's text embeddings of the batch, and the student's text against the teacher's images."})
    text_weight: float | None = field(default=None, metadata={"help": "Weight of the text-only embedding loss on unpaired texts (--text_dataset): the student's text embeddings of a list the teacher embeds once, e.g. the class names and prompts you will query, classes without images included (default: 1 when unpaired texts are given, else 0)."})
    text_batch_size: int = field(default=64, metadata={"help": "Unpaired texts drawn per step for the text term."})
    itm_weight: float = field(default=0.0, metadata={"help": "BLIP retrieval: weight of the KL on the image-text matching head's logits (own and a shifted caption per image)."})
    token_weight: float = field(default=0.0, metadata={"help": "Captioners: weight of the token-level KL on the decoder's next-token logits."})
    token_temperature: float = field(default=1.0, metadata={"help": "Captioners: softmax temperature of the token-level KL (x T^2)."})
    caption_weight: float = field(default=0.0, metadata={"help": "Captioners: weight of the student's own next-token cross-entropy on the captions."})
    teacher_dtype: str | None = field(default=None, metadata={"help": "Run the teacher in float16/bfloat16 (default: as loaded)."})
    freeze_towers: str | None = field(default=None, metadata={"help": "Towers not trained, comma-separated (e.g. text): an inherited student keeps the teacher's copy of them, whole and frozen, and only the other towers are compressed. For deployments that precompute label embeddings with the teacher's text tower."})

    filename = CONFIG_FILENAME
    kind = "distillation"
    _argument_group_name = "distillation: the loss terms, their weights and the teacher (DistillationConfig)"
    command = "distill"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        weights = {f"{k}_weight": getattr(self, f"{k}_weight") or 0.0 for k in ALL_TERMS}  # text_weight None: not yet known
        if any(w < 0 for w in weights.values()):
            raise VlmcompressError(f"loss weights must be >= 0, got {weights}")
        if not any(weights.values()):
            raise VlmcompressError("every loss weight is 0: set at least one of " + ", ".join(weights))
        if self.text_batch_size < 1:
            raise VlmcompressError(f"text_batch_size must be at least 1, got {self.text_batch_size}")
        if self.temperature <= 0 or self.token_temperature <= 0 or (self.temperature_end is not None and self.temperature_end <= 0):
            given = ", ".join(f"{k} {getattr(self, k)}" for k in ("temperature", "temperature_end", "token_temperature"))
            raise VlmcompressError(f"temperatures must be > 0, got {given}")
        for name in ("embedding_loss", "hidden_loss"):
            if getattr(self, name) not in LOSS_KINDS:
                raise VlmcompressError(f"{name} must be one of {', '.join(LOSS_KINDS)}, got {getattr(self, name)!r}")
        if isinstance(self.layer_map, str):
            try:
                self.layer_map = json.loads(self.layer_map)
            except json.JSONDecodeError as exc:
                raise VlmcompressError(f"layer_map must be JSON like {{\"vision\": {{\"4\": 2}}}}: {exc}") from None
        if self.layer_map is not None and not isinstance(self.layer_map, dict):
            raise VlmcompressError("layer_map must map tower -> {teacher layer: student layer}")
        if self.freeze_towers is not None and not isinstance(self.freeze_towers, str):
            self.freeze_towers = ",".join(self.freeze_towers)  # a recipe's YAML list
        if self.teacher_dtype not in TEACHER_DTYPES:
            raise VlmcompressError(f"teacher_dtype must be float32, float16 or bfloat16, got {self.teacher_dtype!r}")

    @classmethod
    def default_for(cls, captioner: bool) -> "DistillationConfig":
        """The defaults for a student's task: the similarity KL (T annealed 3 -> 1) + the student's own contrastive loss
        (two towers), or the token-level KL (captioner)."""
        if captioner:
            return cls(logit_weight=0.0, embedding_weight=0.0, contrastive_weight=0.0, temperature_end=None,
                       token_weight=1.0)
        return cls()

    def with_texts(self, given: bool) -> "DistillationConfig":
        """This config with ``text_weight`` settled for a run that has unpaired texts (``given``) or none: left to the
        default (None), the text term is on at weight 1 with them and off without; a weight set stays as set."""
        if self.text_weight is None:
            self.text_weight = 1.0 if given else 0.0
        return self

    def uncacheable_losses(self) -> list[str]:
        """Names of the active terms that cached teacher embeddings cannot serve (they need the teacher's forward
        pass every step, or a captioner's outputs, which are not embeddings)."""
        return [name for term, name in UNCACHEABLE_TERMS.items() if getattr(self, f"{term}_weight")]

    def cache_conflict(self, where: str) -> str | None:
        """The one-line reason ``where`` (the teacher cache) cannot be used with these terms, or None."""
        names = self.uncacheable_losses()
        if not names:
            return None
        losses = " and ".join(names) + (" losses" if len(names) > 1 else " loss")
        return f"{where} stores image/text embeddings only, which the {losses} cannot use"

    def temperature_at(self, step: int, max_steps: int | None) -> float:
        """The similarity KL's temperature at optimizer step ``step`` of ``max_steps``: ``temperature``, or with
        ``temperature_end`` set the straight line from one to the other (the end value from the last step on; a run
        with no known length keeps ``temperature``)."""
        if self.temperature_end is None or not max_steps or max_steps <= 1:
            return self.temperature
        share = min(max(step / (max_steps - 1), 0.0), 1.0)
        return self.temperature + (self.temperature_end - self.temperature) * share

    def frozen_towers(self) -> list[str]:
        return [t.strip() for t in (self.freeze_towers or "").split(",") if t.strip()]

    def active_losses(self) -> dict:
        return {name: getattr(self, f"{name}_weight") for name in ALL_TERMS if getattr(self, f"{name}_weight")}

    def check_task(self, captioner: bool) -> None:
        """One clear error when a term does not exist for the student's task."""
        wrong = [f"{t}_weight" for t in (TWO_TOWER_TERMS if captioner else CAPTION_ONLY_TERMS) if getattr(self, f"{t}_weight")]
        if wrong:
            kind = "a captioner" if captioner else "a two-tower (image-text embedding) model"
            allowed = [t for t in ALL_TERMS if t not in (TWO_TOWER_TERMS if captioner else CAPTION_ONLY_TERMS)]
            raise VlmcompressError(f"{', '.join(wrong)} do not apply to {kind}: set them to 0 and use "
                                   + ", ".join(f"{t}_weight" for t in allowed))

