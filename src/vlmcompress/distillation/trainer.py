"""``DistillationTrainer``: a ``transformers.Trainer`` whose ``compute_loss`` distills a teacher into the model.

Only public Trainer hooks are used: ``compute_loss`` (the losses), ``create_optimizer`` (adds the learned width
projections, if any, to the optimizer Trainer builds; under FSDP2 ``create_scheduler``, after accelerate's
``prepare``), ``log`` (adds each loss term), ``train`` (loads the projections of a checkpoint being resumed),
``save_model`` (under FSDP2 only: the gathered state dict, written by Trainer's own ``_save``) and a
``TrainerCallback`` (saves the projections into checkpoints and averages their gradients across processes). The teacher runs in eval mode under ``no_grad`` on the student's
device and is never part of ``self.model``, so ``save_model`` writes the student alone.

Under accelerate's FSDP plugin (FSDP2) the student is made shardable before the Trainer shards it (``.fsdp``: CLIP's
0-dim ``logit_scale`` trains as shape (1,), saved back as 0-dim), the teacher stays a whole, unwrapped copy per process,
``save_model`` writes the whole student, and ``trained_student()`` gathers it into a plain model on the main process.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ..adapters import get_adapter
from ..errors import VlmcompressError
from ..utils import unwrap_model
from .config import DistillationConfig
from .fsdp import fsdp_inactive_reason, fsdp_version, make_shardable, rebuild_whole, restore_scalars
from .losses import (
    embedding_loss,
    hidden_state_loss,
    similarity_kl_loss,
    similarity_logits,
    token_kl_loss,
    uniform_layer_map,
)

PROJECTIONS_FILE = "distill_projections.pt"
#: batch keys a collator may add with precomputed teacher outputs (see ``cache_teacher_outputs``)
CACHED_KEYS = ("teacher_image_embeds", "teacher_text_embeds")


def default_layer_map(teacher_adapter, student_adapter, tower) -> dict:
    """Teacher layer output -> student layer output (1-based). A student whose layers were inherited from this
    teacher (its config records ``vlmcompress_kept_layers``) learns each layer from the teacher layer it came from;
    otherwise layers are spread uniformly."""
    n_t = len(teacher_adapter.layers(tower))
    s_cfg = student_adapter.tower_config(tower)
    n_s = len(student_adapter.layers(tower))
    kept = getattr(s_cfg, "vlmcompress_kept_layers", None)
    if kept and max(kept) < n_t and len(kept) == n_s:
        return {k + 1: j + 1 for j, k in enumerate(kept)}
    return uniform_layer_map(n_t, n_s)


def freeze_towers(student, towers) -> list[str]:
    """Stops ``towers`` (and their projections into the embedding space) from training; one clear error when a name
    is not a tower of the student or nothing would be left to train."""
    if not towers:
        return []
    adapter = get_adapter(student)
    for tower in towers:
        for module in adapter.tower_modules(tower):
            module.requires_grad_(False)
    if not any(p.requires_grad for name, p in student.named_parameters() if "logit_" not in name):
        raise VlmcompressError(f"freeze_towers={','.join(towers)} leaves no tower to train: freeze fewer towers")
    return list(towers)


class _ProjectionSync(TrainerCallback):
    """Keeps the trainer's learned projections in step across processes, zeroes their gradients after each optimizer
    step (Trainer only zeroes the model's) and saves them into checkpoints."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        projections = self.trainer.distill_projections
        if len(projections) and torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            for p in projections.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad.div_(world)

    def on_step_end(self, args, state, control, **kwargs):
        # Trainer zeroes the model's gradients after each optimizer step; the projections live outside the model
        self.trainer.distill_projections.zero_grad(set_to_none=True)

    def on_save(self, args, state, control, **kwargs):
        if len(self.trainer.distill_projections) and state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                torch.save(self.trainer.distill_projections.state_dict(), os.path.join(folder, PROJECTIONS_FILE))


class ProgressLines(TrainerCallback):
    """Where no progress bar is drawn (output not a terminal, ``--disable_tqdm``): one line per logging step with the
    step, the share done, the time taken, an estimate of the time left and the loss terms (the Trainer's own
    ``PrinterCallback`` prints the bare log dict)."""

    def __init__(self, file=None):
        self.file, self.started, self.first_step = file, None, 0

    @staticmethod
    def _clock(seconds: float) -> str:
        seconds = int(round(seconds))
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
            f"{seconds // 60}m{seconds % 60:02d}s"

    def on_train_begin(self, args, state, control, **kwargs):
        import time

        self.started, self.first_step = time.perf_counter(), state.global_step  # a resumed run counts from its step

    def on_log(self, args, state, control, logs=None, **kwargs):
        import sys
        import time

        if not state.is_world_process_zero or self.started is None or not logs:
            return
        done, total = state.global_step, state.max_steps
        elapsed = time.perf_counter() - self.started
        rate = (done - self.first_step) / elapsed if elapsed > 0 and done > self.first_step else None
        left = f", about {self._clock((total - done) / rate)} left" if rate and total and done < total else ""
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()
                          if k not in ("total_flos", "epoch") and not k.startswith("train_"))
        if not shown:  # the end-of-training summary: the command prints its own
            return
        share = f" ({done / total:.0%})" if total else ""
        print(f"step {done}/{total}{share}, {self._clock(elapsed)} elapsed{left}: {shown}", file=self.file or sys.stderr,
              flush=True)


class DistillationTrainer(Trainer):
    """``Trainer(model=student, ...)`` plus ``teacher=`` and ``distillation_config=``.

    Batches hold ``pixel_values``, ``input_ids`` (``attention_mask``) and optionally ``labels`` (used by the
    contrastive term: same label = positive) and cached teacher embeddings (``teacher_image_embeds``,
    ``teacher_text_embeds``), which replace the teacher's forward pass.
    """

    def __init__(self, *args, teacher, distillation_config: DistillationConfig | None = None, unpaired_texts=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.distillation_config = cfg = distillation_config or DistillationConfig()
        cfg.validate()
        # our loss is a mean over the batch: let Trainer divide it by the gradient-accumulation steps
        self.model_accepts_loss_kwargs = False
        self.student_adapter = get_adapter(unwrap_model(self.model))
        self._student_class = type(unwrap_model(self.model))
        self._fsdp_version = fsdp_version(self.accelerator)
        #: parameters made shape (1,) for fully_shard (CLIP's logit_scale): 0-dim again in everything saved
        self._fsdp_scalars = make_shardable(unwrap_model(self.model)) if self._fsdp_version == 2 else []
        inactive = fsdp_inactive_reason(self.args, self.accelerator)
        if inactive and self.is_world_process_zero():
            warnings.warn(inactive, stacklevel=2)
        cfg.check_task(self.student_adapter.is_captioner)
        self.frozen_towers = freeze_towers(unwrap_model(self.model), cfg.frozen_towers())
        if cfg.itm_weight and not self.student_adapter.has_itm:
            raise VlmcompressError(f"itm_weight needs an image-text matching head (BlipForImageTextRetrieval), not "
                                   f"{type(unwrap_model(self.model)).__name__}: set it to 0")
        if getattr(getattr(teacher, "config", None), "quantization_config", None) is None:
            dtype = getattr(torch, cfg.teacher_dtype) if cfg.teacher_dtype else None
            teacher = teacher.to(device=self.args.device, dtype=dtype)
        teacher.eval()
        teacher.requires_grad_(False)
        self.teacher = teacher
        self.teacher_adapter = get_adapter(teacher)
        if (self.teacher_adapter.family, self.teacher_adapter.is_captioner) != (self.student_adapter.family,
                                                                                 self.student_adapter.is_captioner):
            raise VlmcompressError(f"teacher ({type(teacher).__name__}) and student ({type(unwrap_model(self.model)).__name__}) "
                                   "must be the same model family and task")
        cfg.with_texts(unpaired_texts is not None)
        self.unpaired_texts = self._embed_unpaired_texts(unpaired_texts) if cfg.text_weight else None
        self.layer_maps = self._layer_maps(cfg.layer_map) if cfg.hidden_weight else {}
        self.distill_projections = self._projections().to(self.args.device)
        self._terms: dict = {}
        self._term_batches = 0
        self.add_callback(_ProjectionSync(self))

    # --- set-up ----------------------------------------------------------------------------------------------
    def _embed_unpaired_texts(self, texts) -> dict:
        """The unpaired texts' token ids and the teacher's embeddings of them, computed once."""
        if not texts or texts.get("input_ids") is None or not len(texts["input_ids"]):
            raise VlmcompressError("text_weight needs unpaired texts: pass --text_dataset (a file with one text per "
                                   "line, or embedded), or set text_weight to 0")
        ids, mask = texts["input_ids"], texts.get("attention_mask")
        dev = self.args.device
        with torch.no_grad():
            embeds = torch.cat([self.teacher_adapter.text_embeddings(
                ids[i:i + 256].to(dev), None if mask is None else mask[i:i + 256].to(dev)).float()
                for i in range(0, len(ids), 256)])
        return {"input_ids": ids, "attention_mask": mask, "teacher_embeds": embeds}

    def _unpaired_text_term(self):
        """The feature loss between the student's and the teacher's embeddings of a random draw of unpaired texts."""
        texts, cfg, dev = self.unpaired_texts, self.distillation_config, self.args.device
        pick = torch.randperm(len(texts["input_ids"]))[:cfg.text_batch_size]
        mask = texts["attention_mask"]
        student = self.student_adapter.text_embeddings(texts["input_ids"][pick].to(dev),
                                                       None if mask is None else mask[pick].to(dev))
        proj = self.distill_projections
        return embedding_loss(student, texts["teacher_embeds"][pick].to(dev),
                              proj["embed_text"] if "embed_text" in proj else None, cfg.embedding_loss)

    def _layer_maps(self, explicit) -> dict:
        maps = {}
        s_towers = self.student_adapter.towers()
        for tower in self.teacher_adapter.towers():
            if tower not in s_towers:
                continue
            n_t, n_s = len(self.teacher_adapter.layers(tower)), len(self.student_adapter.layers(tower))
            if explicit and tower in explicit:
                mapping = {int(t): int(s) for t, s in explicit[tower].items()}
            elif explicit:
                continue  # an explicit map names the towers it distills
            else:
                mapping = default_layer_map(self.teacher_adapter, self.student_adapter, tower)
            bad = {t: s for t, s in mapping.items() if not (0 <= t <= n_t and 0 <= s <= n_s)}
            if bad:
                raise VlmcompressError(f"layer_map for {tower} names layers that do not exist: {bad} (teacher has "
                                       f"{n_t} layers, student {n_s}; 0 is the embedding output, 1..N the layers)")
            maps[tower] = mapping
        return maps

    def _projections(self) -> nn.ModuleDict:
        """Learned Linear maps from student width to teacher width where they differ (trained, never saved)."""
        mods = {}
        for tower in self.layer_maps:
            s_w = self.student_adapter.tower_config(tower).hidden_size
            t_w = self.teacher_adapter.tower_config(tower).hidden_size
            if s_w != t_w:
                mods[f"hidden_{tower}"] = nn.Linear(s_w, t_w)
        cfg = self.distillation_config
        if cfg.embedding_weight or cfg.text_weight or cfg.icl_weight:
            s_p = getattr(unwrap_model(self.model).config, "projection_dim", None)
            t_p = getattr(self.teacher.config, "projection_dim", None)
            if s_p is not None and t_p is not None and s_p != t_p:
                mods["embed_image"] = nn.Linear(s_p, t_p)
                mods["embed_text"] = nn.Linear(s_p, t_p)
        return nn.ModuleDict(mods)

    def _add_projections(self, optimizer):
        if optimizer is not None and len(self.distill_projections) and not getattr(self, "_projections_added", False):
            optimizer.add_param_group({"params": list(self.distill_projections.parameters()), "weight_decay": 0.0})
            self._projections_added = True

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self._fsdp_version != 2:
            self._add_projections(optimizer)
        return optimizer

    def create_scheduler(self, num_training_steps, optimizer=None):
        # FSDP2: accelerate's prepare() swaps the optimizer's parameters for the model's sharded ones and refuses any
        # it cannot map (KeyError), so the projections join after prepare(), before the schedule is built over them
        self._add_projections(optimizer if optimizer is not None else self.optimizer)
        return super().create_scheduler(num_training_steps, optimizer)

    def train(self, resume_from_checkpoint=None, **kwargs):
        if resume_from_checkpoint and len(self.distill_projections):
            folder = resume_from_checkpoint
            if folder is True:
                folder = get_last_checkpoint(self.args.output_dir)
            path = os.path.join(folder or "", PROJECTIONS_FILE)
            if not os.path.isfile(path):
                raise VlmcompressError(f"{folder} has no {PROJECTIONS_FILE}: it was not written by a DistillationTrainer "
                                       "with the same student and teacher widths")
            self.distill_projections.load_state_dict(torch.load(path, map_location=self.args.device))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    # --- the trained student ---------------------------------------------------------------------------------
    def save_model(self, output_dir=None, _internal_call=False):
        """Trainer's ``save_model``; under FSDP2 the gathered full state dict, with the scalars made shardable put
        back to 0-dim, so the folder reloads with the stock ``from_pretrained``. Call it on every process."""
        if self._fsdp_version != 2:
            return super().save_model(output_dir, _internal_call=_internal_call)
        if _internal_call and "FULL_STATE_DICT" not in str(self.accelerator.state.fsdp_plugin.state_dict_type):
            return super().save_model(output_dir, _internal_call=_internal_call)  # sharded checkpoints: Trainer's
        state_dict = restore_scalars(self.accelerator.get_state_dict(self.model), self._fsdp_scalars)
        self._save(output_dir if output_dir is not None else self.args.output_dir, state_dict=state_dict)
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def trained_student(self):
        """The trained student as a plain model holding all its weights: ``self.model`` (unwrapped) without FSDP;
        under FSDP2 a collective (call it on every process) that returns a new unsharded student on the main
        process and None on the others."""
        if self._fsdp_version != 2:
            return unwrap_model(self.model)
        state_dict = self.accelerator.get_state_dict(self.model)  # full, gathered to rank 0 (cpu_offload)
        if not self.accelerator.is_main_process:
            return None
        return rebuild_whole(self._student_class, unwrap_model(self.model).config, state_dict, self._fsdp_scalars)

    # --- the loss --------------------------------------------------------------------------------------------
    def _teacher_features(self, inputs, cached, need_hidden, **extra):
        if cached:
            from ..adapters.base import TowerFeatures

            dev = self.args.device
            return TowerFeatures(image_embeds=cached["teacher_image_embeds"].to(dev),
                                 text_embeds=cached["teacher_text_embeds"].to(dev),
                                 logit_scale=self.teacher_adapter.logit_scale(), hidden_states={})
        with torch.no_grad():
            return self.teacher_adapter.features(self.teacher, output_hidden_states=need_hidden, **extra, **inputs)

    def distillation_terms(self, model, inputs) -> tuple[dict, object]:
        """Unweighted loss terms for one batch, and the student's features."""
        cfg = self.distillation_config
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        inputs.pop("return_loss", None)
        cached = {k: inputs.pop(k) for k in CACHED_KEYS if k in inputs}
        if cached and len(cached) != len(CACHED_KEYS):
            raise VlmcompressError(f"a batch with cached teacher outputs needs all of {', '.join(CACHED_KEYS)}")
        need_hidden = bool(cfg.hidden_weight)
        extra = {"with_itm": True} if cfg.itm_weight else {}
        conflict = cfg.cache_conflict("the teacher cache") if cached else None
        if conflict:
            raise VlmcompressError(f"{conflict}: turn the cache off or set their weights to 0")
        student = self.student_adapter.features(model, output_hidden_states=need_hidden, **extra, **inputs)
        teacher = self._teacher_features(inputs, cached, need_hidden, **extra)
        proj = self.distill_projections
        terms = {}
        if cfg.logit_weight:
            s_logits = similarity_logits(student.image_embeds, student.text_embeds, student.logit_scale)
            t_logits = similarity_logits(teacher.image_embeds, teacher.text_embeds, teacher.logit_scale)
            terms["logit"] = similarity_kl_loss(s_logits, t_logits, cfg.temperature_at(self.state.global_step,
                                                                                      self.state.max_steps))
        if cfg.embedding_weight:
            terms["embedding"] = (
                embedding_loss(student.image_embeds, teacher.image_embeds, proj["embed_image"] if "embed_image" in proj else None, cfg.embedding_loss)
                + embedding_loss(student.text_embeds, teacher.text_embeds, proj["embed_text"] if "embed_text" in proj else None, cfg.embedding_loss)
            ) / 2
        if cfg.hidden_weight:
            parts = []
            for tower, mapping in self.layer_maps.items():
                p = proj[f"hidden_{tower}"] if f"hidden_{tower}" in proj else None
                mask = None if tower == "vision" else student.text_mask
                for t_layer, s_layer in mapping.items():
                    parts.append(hidden_state_loss(student.hidden_states[tower][s_layer],
                                                   teacher.hidden_states[tower][t_layer], p, cfg.hidden_loss, mask))
            terms["hidden"] = torch.stack(parts).mean()
        if cfg.itm_weight:
            terms["itm"] = token_kl_loss(student.itm_logits, teacher.itm_logits, 1.0)
        if cfg.token_weight:
            terms["token"] = token_kl_loss(student.token_logits, teacher.token_logits, cfg.token_temperature,
                                           student.token_mask)
        if cfg.caption_weight:
            terms["caption"] = student.own_loss
        if cfg.text_weight:
            terms["text"] = self._unpaired_text_term()
        if cfg.icl_weight:
            terms["icl"] = self._interactive_contrastive(student, teacher, labels)
        if cfg.contrastive_weight:
            dev = student.image_embeds.device
            terms["contrastive"] = self.student_adapter.pair_loss(student.image_embeds.float(), student.text_embeds.float(),
                                                                  None if labels is None else labels.to(dev))
        return terms, student

    def _interactive_contrastive(self, student, teacher, labels):
        """CLIP-KD's ICL: the student's image embeddings against the teacher's text embeddings, and the student's text
        against the teacher's images, with the student's own pair loss (its temperature; same label = positive);
        a narrower student's embeddings pass through the width projections."""
        proj = self.distill_projections
        image, text = student.image_embeds.float(), student.text_embeds.float()
        if "embed_image" in proj:
            image, text = proj["embed_image"](image), proj["embed_text"](text)
        labels = None if labels is None else labels.to(image.device)
        t_image, t_text = teacher.image_embeds.float().to(image.device), teacher.text_embeds.float().to(image.device)
        return (self.student_adapter.pair_loss(image, t_text, labels)
                + self.student_adapter.pair_loss(t_image, text, labels)) / 2

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cfg = self.distillation_config
        terms, student = self.distillation_terms(model, inputs)
        loss = sum(getattr(cfg, f"{name}_weight") * value for name, value in terms.items())
        if model.training:
            for name, value in terms.items():
                self._terms[name] = self._terms.get(name, 0.0) + value.detach().float()
            self._term_batches += 1
        if return_outputs:
            if student.token_logits is not None:
                return loss, {"logits": student.token_logits}
            return loss, {"image_embeds": student.image_embeds, "text_embeds": student.text_embeds}
        return loss

    def log(self, logs, start_time=None):
        if "loss" in logs and self._term_batches:
            for name, total in self._terms.items():
                mean = total / self._term_batches
                if self.args.world_size > 1:
                    mean = self.accelerator.reduce(mean, reduction="mean")
                logs[f"loss_{name}"] = round(mean.item(), 4)
            self._terms, self._term_batches = {}, 0
        return super().log(logs, start_time)
