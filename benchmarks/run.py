#!/usr/bin/env python
"""The evidence: where each method pays off, against honest baselines, as tables and a Pareto picture.

    python benchmarks/run.py                    # every suite, full (CLIP: about an hour on 2 CPU cores)
    python benchmarks/run.py --suite clip       # one suite
    python benchmarks/run.py --quick            # every row shortened (a few steps, 2 test images per number): a
                                                # few minutes; the test suite runs it so the benchmark cannot rot

Every row is a recipe run by ``run_recipe`` (what ``vlmcompress compress`` runs) in one training process per suite
(OMP_WAIT_POLICY=ACTIVE), each row in its own folder under --work: prune, distill and quantize stages of the library,
nothing copied from it. A run that stops resumes from its last finished row when given the same --work. The rows of the CLIP suite:

* **students**: the same student shape trained the same number of steps with the same data and seed, four ways:
  (i) inherited from the teacher (every 2nd layer, 25% of MLP neurons removed by Taylor importance) + distillation
  (the distill command's default loss: the similarity KL with T annealed 3 -> 1 + the student's own contrastive
  loss); (ii) the same inherited student, its own contrastive loss only; (iii) the same shape from random
  initialisation, contrastive loss only; (iv) random initialisation + distillation.
* **narrow**: a student with under 25% of the teacher's parameters (every 2nd layer, half the hidden width and heads,
  MLP -25%), inherited by slicing the teacher's widths (``hidden_ratio``, TinyCLIP-style) + distillation, with the
  hidden-state loss through learned width projections added, and the same shape from random initialisation with and
  without distillation.
* **losses**: the inherited student distilled with (i)'s similarity KL alone (no contrastive term), and with the
  hidden-state loss added to (i)'s loss; **cache**: (i) again with the teacher's forward pass every step instead of
  its cached embeddings (samples/s of the two, same steps, one after the other in the same process).
* **pruning**: heads -50% (per layer), MLP -50%, both, and half depth, each with taylor, magnitude and random
  importance; accuracy right after pruning (one-shot) and after the same short recovery (distillation from the
  unpruned teacher).
* **combined**: prune -> distill -> quantize chains (nf4 and int8; the clip_small recipe with every Linear in nf4),
  bytes on disk, memory, latency and accuracy at each stage.

The other suites: **clip_small** (the <= 10% tier: one distilled student quantized four ways, down to every Linear
in nf4 and the rest in bf16, and smaller students in that layout: MLP -75%, half depth and narrow, the last two
distilled longer); **blip** (the captioner: four students, pruning with recovery); **blip_retrieval** (a BlipForImageTextRetrieval
teacher trained first by recipes/train_blip_retrieval_teacher.py, four students distilled with the ITC and ITM terms,
the ITM term left out, heads/MLP pruning with recovery); **generalization** (CLIP held-out accuracy over 3 seeds:
distillation variants of (i)'s student (which loss terms, the text term on unpaired class prompts, CLIP-KD's
interactive contrastive loss, the teacher's text tower frozen, the default and the former default (similarity KL +
embedding) at the distill command's 900 steps, the similarity KL at temperature 1 or 2 with and without the label set
as unpaired texts, and the similarity KL with the student's contrastive loss and no embedding term at a fixed
temperature: the other candidates for the default; the default with the label set as unpaired texts, the text term's
weight from 1 to 100; the similarity KL at T=3 weighted 1/9, as strong as at T=1 and as soft as at 3), and heads /
heads+MLP pruning by ablation, fisher and magnitude importance, one-shot and after recovery (by the default, the
former default, the candidates and the default with the label set); mean, sd and the seed noise);
**generalization_long** (the same at 1800 steps: the default (with and without the label set), the former default
and the label-set candidates against contrastive-only, the narrow tier, ablation on fewer calibration samples; then
WiSE-FT: the default's, the former default's and contrastive-only's students' weights interpolated toward their
inherited students', measured without training).

``--reuse RESULTS ...`` takes the rows an earlier run measured alike (an evidence results file or a --work folder's
done.json; the same recipe and, stage by stage, the effective settings today's code resolves) and runs only the
rest: a new row costs its own training, not the suite's; the page says which rows were reused and on which machines
every row ran.

Accuracy: the embedded digits test split (100 numbers; --images-per-number per number; "held-out" = the 10 numbers
no model was trained on). Latency: after every row has run, the teacher and every row's final checkpoint are loaded
into this process and timed in --latency-rounds interleaved rounds (each turn the median of 7 image+text forwards at
--latency-batch-size, fp32, CPU, --threads threads), so load from other processes hits them alike; the figure is the
median over rounds of the per-round ratio to the teacher. Training runs with OMP_WAIT_POLICY=ACTIVE in its own
process; the timing process refuses to run with it set.

Writes ``benchmarks/results/evidence_<suite>.json`` (environment, settings, every row with every stage's report
figures, the targets with met / not met) and ``docs/benchmarks/evidence_<suite>.md`` (``render_pages.py`` renders
the same page from the JSON) with the tables, the Pareto plots and
the "if you need X, use Y" table generated from the frontier; ``--out DIR`` writes both under DIR instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vlmcompress.io import atomic_write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

if __package__:  # imported as benchmarks.<script> (tests, render_pages)
    from ._common import (environment, hardware, mean_sd, pct, recipe_effective, refuse_active_wait_policy,
                          SIMILARITY_KL_EMBEDDING, stages_current, table)
else:  # run as a script: its folder is first on sys.path
    from _common import (environment, hardware, mean_sd, pct, recipe_effective, refuse_active_wait_policy,
                         SIMILARITY_KL_EMBEDDING, stages_current, table)

SUITES = ("clip", "clip_small", "blip", "blip_retrieval", "generalization", "generalization_long")
#: small_steps: the <= 10% chain's distillation (the clip_small recipe's 1800 steps); blip_batch_size: the BLIP
#: distillation default (its training images are 64 per step); default_steps: the distill command's max_steps
FULL = dict(steps=400, recovery_steps=200, small_steps=1800, default_steps=900, batch_size=128, blip_batch_size=64, images_per_number=100,
            train_images_per_number=160, eval_rounds=3, latency_rounds=5, latency_batch_size=32, retrieval_teacher_steps=600)
QUICK = dict(steps=3, recovery_steps=2, small_steps=3, default_steps=4, batch_size=16, blip_batch_size=8, images_per_number=1,
             train_images_per_number=2, eval_rounds=1, latency_rounds=1, latency_batch_size=4, retrieval_teacher_steps=2,
             stage_defaults={"prune": {"calibration_samples": 16}, "distill": {"logging_steps": 1}},
             seeds=(42, 43), seeded_variants=2)  # the first two variants of each seeded list on two seeds show the
# seed groups, the sd and the noise bars work; the other variants run on the first seed only (a full run: every
# variant on every one of SEEDS)
#: what each suite's accuracy is: zero-shot top-1 (CLIP) or how often the greedy caption names the number (BLIP)
ACCURACY = {"clip": "zero_shot_accuracy", "clip_small": "zero_shot_accuracy", "blip": "caption_accuracy",
            "blip_retrieval": "zero_shot_accuracy", "generalization": "zero_shot_accuracy",
            "generalization_long": "zero_shot_accuracy"}
#: the recipes' family of each suite: two-tower (CLIP, SigLIP, BLIP retrieval) or the captioner
RECIPE_FAMILY = {"clip": "clip", "clip_small": "clip", "blip": "blip", "blip_retrieval": "clip", "generalization": "clip",
                 "generalization_long": "clip"}
#: suites whose teacher is trained first, in the suite's work folder, by a recipe (there is no shipped one)
TEACHER_RECIPES = {"blip_retrieval": "train_blip_retrieval_teacher.py"}
#: what that recipe runs: vlmcompress.embedded.training's function and its arguments dataclass
TEACHER_TRAINERS = {"blip_retrieval": ("train_blip_retrieval_teacher", "RetrievalTeacherArguments")}
TEACHER_DIR = "teacher"  # where in a suite's work folder its trained teacher goes


def _default_importance() -> str:
    from vlmcompress.pruning.config import PruningConfig

    return PruningConfig.importance


DEFAULT_IMPORTANCE = _default_importance()  # the library's default: the rows and targets name it
IMPORTANCES = tuple(dict.fromkeys((DEFAULT_IMPORTANCE, "taylor", "magnitude", "random")))
PRUNINGS = {
    "heads -50%": {"head_ratio": 0.5, "head_scope": "per_layer"},
    "MLP -50%": {"mlp_ratio": 0.5},
    "heads -50% + MLP -50%": {"head_ratio": 0.5, "head_scope": "per_layer", "mlp_ratio": 0.5},
}
INHERITED = {"keep_every": 2, "mlp_ratio": 0.25, "importance": "taylor"}  # distill's inherited student (neurons only:
# taylor and ablation rank neurons alike)
CONTRASTIVE_ONLY = {"logit_weight": 0.0, "embedding_weight": 0.0, "contrastive_weight": 1.0}
LOADED = 3.0  # a 1-minute load average above this on 2 cores: something else ran beside the training process
NOISE_POINTS = {"seen": 0.5, "heldout": 1.3}  # one standard error over 9,000 / 1,000 test images, in points


# ------------------------------------------------------------------------------------------------------------ rows
NARROW = {**INHERITED, "hidden_ratio": 0.5}  # the narrow tier: (i)'s student at half the width (and heads)


def random_student_overrides(teacher_config: dict, inherited: dict = INHERITED) -> dict:
    """A stock config of an inherited student's shape (every 2nd layer, 75% of MLP neurons, and for the narrow tier
    half the width and heads: head_dim kept), for random init."""
    out = {}
    for tower in ("vision_config", "text_config"):
        c = teacher_config[tower]
        shape = {"num_hidden_layers": len(range(0, c["num_hidden_layers"], inherited["keep_every"])),
                 "intermediate_size": c["intermediate_size"] - round(c["intermediate_size"] * inherited["mlp_ratio"])}
        if inherited.get("hidden_ratio"):
            heads = c["num_attention_heads"]
            kept = heads - round(heads * inherited["hidden_ratio"])
            shape.update(num_attention_heads=kept, hidden_size=kept * (c["hidden_size"] // heads))
        out[tower] = shape
    return out


def clip_rows(s: dict, teacher_config: dict) -> list[dict]:
    """Each row: name, section, its recipe stages (and optionally ``base``: (row, stage) whose folder it starts from)."""
    batch = {"per_device_train_batch_size": s["batch_size"]}
    steps, recovery = {"max_steps": s["steps"], **batch}, {"max_steps": s["recovery_steps"], **batch}
    random_init = {"student_config": random_student_overrides(teacher_config)}
    rows = [
        {"section": "students", "name": "(i) inherited + distillation", "stages": [{"distill": {**INHERITED, **steps}}]},
        {"section": "students", "name": "(ii) inherited, contrastive only",
         "stages": [{"distill": {**INHERITED, **CONTRASTIVE_ONLY, **steps}}]},
        {"section": "students", "name": "(iii) random init, contrastive only",
         "stages": [{"distill": {**random_init, **CONTRASTIVE_ONLY, **steps}}]},
        {"section": "students", "name": "(iv) random init + distillation",
         "stages": [{"distill": {**random_init, **steps}}]},
        {"section": "narrow", "name": "narrow: inherited + distillation", "stages": [{"distill": {**NARROW, **steps}}]},
        {"section": "narrow", "name": "narrow: inherited + distillation + hidden states (projected)",
         "stages": [{"distill": {**NARROW, "hidden_weight": 1.0, **steps}}]},
        {"section": "narrow", "name": "narrow: random init + distillation",
         "stages": [{"distill": {"student_config": random_student_overrides(teacher_config, NARROW), **steps}}]},
        {"section": "narrow", "name": "narrow: random init, contrastive only",
         "stages": [{"distill": {"student_config": random_student_overrides(teacher_config, NARROW),
                                 **CONTRASTIVE_ONLY, **steps}}]},
        {"section": "losses", "name": "inherited, similarity KL only (no contrastive term)",
         "stages": [{"distill": {**INHERITED, "contrastive_weight": 0.0, **steps}}]},
        {"section": "losses", "name": "inherited, default loss + hidden states",
         "stages": [{"distill": {**INHERITED, "hidden_weight": 1.0, **steps}}]},
        {"section": "cache", "name": "(i) without the teacher cache",
         "stages": [{"distill": {**INHERITED, "cache_teacher": False, **steps}}]},
    ]
    rows += pruning_rows(recovery)
    # how heads are ranked, one-shot (heads -50% in every layer): calibration size and the scoring objective
    for importance, samples in (("taylor", 512), ("taylor", 1024), ("ablation", 256)):
        rows.append({"section": "importance", "name": f"heads -50%, one-shot ({importance}, {samples} samples)",
                     "importance": importance, "samples": samples,
                     "stages": [{"prune": {**PRUNINGS["heads -50%"], "importance": importance,
                                           "calibration_samples": samples}}]})
    # the head scope: every layer keeps half its heads (per_layer) or heads compete across a tower's layers (global)
    for what in ("heads -50%", "heads -50% + MLP -50%"):
        options = {**PRUNINGS[what], "head_scope": "global", "importance": DEFAULT_IMPORTANCE}
        rows.append({"section": "pruning", "name": f"{what} ({DEFAULT_IMPORTANCE}, global head scope)", "pruning": what,
                     "importance": DEFAULT_IMPORTANCE, "head_scope": "global",
                     "stages": [{"prune": options}, {"distill": dict(recovery)}]})
    # gradual: the same final shape reached while distilling (PruningCallback), in the same total steps
    rows.append({"section": "pruning", "name": "heads -50% + MLP -50% (gradual, while distilling)",
                 "pruning": "heads -50% + MLP -50%", "importance": "gradual (taylor accumulated)", "gradual": True,
                 "stages": [{"distill": {"keep_every": 1, "head_ratio": 0.5, "head_scope": "per_layer", "mlp_ratio": 0.5,
                                         "prune_gradually": True, **recovery}}]})
    both = {**PRUNINGS["heads -50% + MLP -50%"], "importance": DEFAULT_IMPORTANCE}
    rows += [
        {"section": "combined", "name": "heads/MLP -50% + distill + nf4",
         "stages": [{"prune": both}, {"distill": dict(steps)}, {"quantize": {"bits": 4, "quant_type": "nf4"}}]},
        {"section": "combined", "name": "heads/MLP -50% + distill + int8", "base": ("heads/MLP -50% + distill + nf4", 2),
         "stages": [{"quantize": {"bits": 8}}]},
        {"section": "combined", "name": "half depth, heads -50%, MLP -75% + distill + nf4 (all Linears)",
         "stages": [{"prune": {"layer_strategy": "every_k", "keep_every": 2, "head_ratio": 0.5,
                               "head_scope": "per_layer", "mlp_ratio": 0.75}},
                    {"distill": {"max_steps": s["small_steps"], **batch}},
                    {"quantize": {"bits": 4, "quant_type": "nf4", "default_skip": False}}]},
    ]
    return rows


def spelled(options: dict) -> dict:
    """``options`` with every loss setting it leaves to the library written out as SIMILARITY_KL_EMBEDDING's (the
    distill command's former default loss). A generalization variant that varies the loss is spelled, so that its row
    measures the loss it names whatever the library's default is; only the rows named "default" take the library's own
    (today the similarity KL with T annealed from 3 to 1 plus the student's own contrastive loss, no embedding term)."""
    return {**SIMILARITY_KL_EMBEDDING, **options}


FORMER_DEFAULT = "similarity KL + embedding (the former default)"
DEFAULT = "default (similarity KL, T 3 to 1 + contrastive)"
#: the default loss with the text term on the label set (unpaired class prompts)
DEFAULT_PROMPTS = "default + unpaired class prompts"
TEXT_WEIGHTS = (1.0, 3.0, 9.0, 30.0, 100.0)
#: the library's default where unpaired texts are given (the text term at weight 1, written out)
DEFAULT_WITH_TEXTS = f"{DEFAULT_PROMPTS} (text weight 1)"
#: the narrow tier's rows of the longer schedules: distilled by the default loss, and by the former default (which the
#: clip_small recipe and page were measured with)
NARROW_DEFAULT = "narrow (half width): default, 1800 steps"
NARROW_LONG = f"narrow (half width): {FORMER_DEFAULT}, 1800 steps"
#: a candidate default: the similarity KL at temperature 1 and the text term on the label set (unpaired class prompts)
KL_T1_PROMPTS = "similarity KL at T=1 + unpaired class prompts"
KL_T1_PROMPTS_OPTIONS = spelled({"temperature": 1.0, "embedding_weight": 0.0, "text_weight": 1.0})
#: a candidate that needs no label set: the former default's similarity KL without its embedding term, plus the
#: student's own contrastive loss (the default anneals its temperature as well)
KL_CONTRASTIVE = "similarity KL + contrastive (no embedding term)"
KL_CONTRASTIVE_OPTIONS = spelled({"embedding_weight": 0.0, "contrastive_weight": 1.0})
#: the similarity KL's temperature moved in a straight line from 3 to 1 over training (--temperature_end)
SCHEDULE = {"temperature": 3.0, "temperature_end": 1.0}
#: the other candidates measured for the default: each gets a target line against contrastive-only at each step count
#: it ran (the default itself, KL_CONTRASTIVE with SCHEDULE, was the candidate that won on the worse of the two)
CANDIDATES = (KL_T1_PROMPTS, f"{KL_T1_PROMPTS} + contrastive", KL_CONTRASTIVE)

#: the generalization suite: each distillation variant of the inherited student, once per seed; a variant is judged on
#: the worse of its seen and held-out kept (CLIP is used zero-shot on classes its compression data never showed)
SEEDS = (42, 43, 44)
GENERALIZATION = (
    (DEFAULT, {}),
    ("contrastive only (no teacher)", CONTRASTIVE_ONLY),
    (FORMER_DEFAULT, {}),
    ("similarity KL + embedding + contrastive", {"contrastive_weight": 1.0}),
    ("embedding only", {"logit_weight": 0.0}),
    ("similarity KL + embedding at lr 1e-3", {"learning_rate": 1e-3}),
    # the label set a user will query, as unpaired texts: the zero-shot prompts of all 100 numbers (no image and no
    # training caption of a held-out number; its prompts' teacher embeddings only)
    ("similarity KL + embedding + unpaired class prompts (text term)", {"text_weight": 1.0}, {"texts": "embedded"}),
    ("contrastive + unpaired class prompts (text term only from the teacher)", {**CONTRASTIVE_ONLY, "text_weight": 1.0},
     {"texts": "embedded"}),
    # which teacher term costs held-out: the similarity KL alone, then with the text term and the student's own loss
    ("similarity KL only", {"embedding_weight": 0.0}),
    ("similarity KL + unpaired class prompts", {"embedding_weight": 0.0, "text_weight": 1.0}, {"texts": "embedded"}),
    ("similarity KL + contrastive + unpaired class prompts",
     {"embedding_weight": 0.0, "contrastive_weight": 1.0, "text_weight": 1.0}, {"texts": "embedded"}),
    # CLIP-KD's interactive contrastive loss: the student's embeddings contrasted with the teacher's of the batch
    ("similarity KL + embedding + interactive contrastive (CLIP-KD ICL)", {"icl_weight": 1.0}),
    ("interactive contrastive only", {"logit_weight": 0.0, "embedding_weight": 0.0, "icl_weight": 1.0}),
    # for deployments that embed their labels once with the teacher's text tower: only the image tower is compressed
    ("image tower only (the teacher's text tower, frozen), similarity KL + embedding", {"freeze_towers": "text"}),
    # at the distill command's default steps (900; a step count named as a setting is read from the settings)
    ("default, 900 steps", {"max_steps": "default_steps"}),
    (f"{FORMER_DEFAULT}, 900 steps", {"max_steps": "default_steps"}),
    # the similarity KL at temperature 1 (the default's 3 scales the KL by 9 and softens it) beside the text term on
    # the label set: candidates for the default, with and without the student's own contrastive loss
    (KL_T1_PROMPTS, KL_T1_PROMPTS_OPTIONS, {"texts": "embedded"}),
    (f"{KL_T1_PROMPTS} + contrastive", {**KL_T1_PROMPTS_OPTIONS, "contrastive_weight": 1.0}, {"texts": "embedded"}),
    # and without a label set
    (KL_CONTRASTIVE, KL_CONTRASTIVE_OPTIONS),
    # the label-set candidate and contrastive-only at the distill command's default steps, beside the default's row
    ("contrastive only (no teacher), 900 steps", {**CONTRASTIVE_ONLY, "max_steps": "default_steps"}),
    (f"{KL_T1_PROMPTS}, 900 steps", {**KL_T1_PROMPTS_OPTIONS, "max_steps": "default_steps"}, {"texts": "embedded"}),
    # the temperature: the similarity KL at T=1 or 2 instead of 3, with and without the embedding term and the label
    # set, and T moved from 3 to 1 over training (--temperature_end)
    ("similarity KL at T=1 + embedding (no label set)", {"temperature": 1.0}),
    ("similarity KL at T=1 only (no label set)", {"temperature": 1.0, "embedding_weight": 0.0}),
    ("similarity KL at T=1 + embedding + unpaired class prompts", {"temperature": 1.0, "text_weight": 1.0},
     {"texts": "embedded"}),
    ("similarity KL at T=2 + unpaired class prompts", {"temperature": 2.0, "embedding_weight": 0.0, "text_weight": 1.0},
     {"texts": "embedded"}),
    # at the distill command's 900 steps
    ("similarity KL + embedding, T 3 to 1, 900 steps", {**SCHEDULE, "max_steps": "default_steps"}),
    (f"{KL_CONTRASTIVE}, 900 steps", {**KL_CONTRASTIVE_OPTIONS, "max_steps": "default_steps"}),
    ("similarity KL at T=1 only (no label set), 900 steps",
     {"temperature": 1.0, "embedding_weight": 0.0, "max_steps": "default_steps"}),
    ("similarity KL at T=2 + unpaired class prompts, 900 steps",
     {"temperature": 2.0, "embedding_weight": 0.0, "text_weight": 1.0, "max_steps": "default_steps"},
     {"texts": "embedded"}),
    (f"{KL_T1_PROMPTS} + contrastive, 900 steps",
     {**KL_T1_PROMPTS_OPTIONS, "contrastive_weight": 1.0, "max_steps": "default_steps"}, {"texts": "embedded"}),
    # the default loss (T 3 to 1 + contrastive) with the text term on the label set: the KL is scaled by T^2 (9 at the
    # start), so the text term's weight is tried from 1 to 100
    *((f"{DEFAULT_PROMPTS} (text weight {w:g})", {"text_weight": w}, {"texts": "embedded"}) for w in TEXT_WEIGHTS),
    (f"{DEFAULT_WITH_TEXTS}, 900 steps", {"text_weight": 1.0, "max_steps": "default_steps"}, {"texts": "embedded"}),
    # softness or strength: the KL at T=3 is scaled by 9; at weight 1/9 it is as strong as at T=1 and as soft as at 3
    ("similarity KL at T=1 + contrastive (no label set)",
     {"temperature": 1.0, "embedding_weight": 0.0, "contrastive_weight": 1.0}),
    ("similarity KL at T=3, weight 1/9 + contrastive (no label set)",
     {"logit_weight": 1 / 9, "embedding_weight": 0.0, "contrastive_weight": 1.0}),
    ("similarity KL at T=3, weight 1/9 + contrastive + unpaired class prompts",
     {"logit_weight": 1 / 9, "embedding_weight": 0.0, "contrastive_weight": 1.0, "text_weight": 1.0},
     {"texts": "embedded"}),
)
#: the rows that measure the library's default loss (every other variant names its loss: spelled)
DEFAULT_LOSS_VARIANTS = (DEFAULT, "default, 900 steps", "default, 1800 steps", NARROW_DEFAULT)


def spell_variants(variants) -> tuple:
    """Each (name, options[, data]) with its loss spelled out, the DEFAULT_LOSS_VARIANTS (and the default's rows with
    the label set, DEFAULT_PROMPTS) aside."""
    return tuple((name, options if name in DEFAULT_LOSS_VARIANTS or name.startswith(DEFAULT_PROMPTS)
                  else spelled(options), *data) for name, options, *data in variants)


GENERALIZATION = spell_variants(GENERALIZATION)


#: pruning over seeds (the seed draws the calibration samples and the recovery's data order): one-shot and after the
#: recovery, per importance; fisher is the empirical Fisher of per-sample gates, one backward pass per batch
GENERALIZATION_PRUNINGS = (("heads -50%", ("ablation", "fisher", "magnitude")),
                           ("heads -50% + MLP -50%", ("ablation", "fisher")))
#: the head scope the library defaults to (heads ranked across a tower's layers), beside PRUNINGS' per-layer shapes
GLOBAL_HEADS = "heads -50% (global) + MLP -50%"
GENERALIZATION_SHAPES = {**PRUNINGS, GLOBAL_HEADS: {**PRUNINGS["heads -50% + MLP -50%"], "head_scope": "global"}}


#: the longer schedules (their own suite, as each row costs 3-5 minutes): the default against contrastive-only at
#: the clip_small recipe's 1800 steps, and the narrow tier (<= 25% of the parameters) over seeds at 1800 steps
GENERALIZATION_LONG = (
    ("default, 1800 steps", {"max_steps": "small_steps"}),
    ("contrastive only (no teacher), 1800 steps", {**CONTRASTIVE_ONLY, "max_steps": "small_steps"}),
    (NARROW_LONG, {"hidden_ratio": NARROW["hidden_ratio"], "max_steps": "small_steps"}),
    (f"{KL_T1_PROMPTS}, 1800 steps", {**KL_T1_PROMPTS_OPTIONS, "max_steps": "small_steps"}, {"texts": "embedded"}),
    (f"{FORMER_DEFAULT}, 1800 steps", {"max_steps": "small_steps"}),
    (NARROW_DEFAULT, {"hidden_ratio": NARROW["hidden_ratio"], "max_steps": "small_steps"}),
    # with the label set as unpaired texts: the default (the text term on), and the candidate at T=1
    (f"{DEFAULT_WITH_TEXTS}, 1800 steps", {"text_weight": 1.0, "max_steps": "small_steps"}, {"texts": "embedded"}),
    (f"{KL_T1_PROMPTS} + contrastive, 1800 steps",
     {**KL_T1_PROMPTS_OPTIONS, "contrastive_weight": 1.0, "max_steps": "small_steps"}, {"texts": "embedded"}),
)
GENERALIZATION_LONG = spell_variants(GENERALIZATION_LONG)


def suite_seeds(s: dict) -> tuple:
    """The seeds a run's settings name (a quick run's two), else SEEDS (full runs, and results recorded before
    settings carried them)."""
    return tuple(s.get("seeds", SEEDS))


def variant_seeds(s: dict, index: int) -> tuple:
    """The seeds of the ``index``-th variant of a seeded list: every seed of the run, or in a quick run past its
    ``seeded_variants`` the first one (one row shows that a variant runs; two seeded variants show the noise)."""
    seeds = suite_seeds(s)
    return seeds if index < s.get("seeded_variants", index + 1) else seeds[:1]


def seeded_distillations(s: dict, variants) -> list[dict]:
    """Each distillation variant of the inherited student once per seed; a variant's max_steps may name a setting."""
    steps = {"max_steps": s["steps"], "per_device_train_batch_size": s["batch_size"]}
    return [{"section": "generalization", "name": f"{variant}, seed {seed}", "variant": variant, "seed": seed,
             "stages": [{"distill": {**INHERITED, **steps, **options, "seed": seed,
                                     **({"max_steps": s[options["max_steps"]]} if isinstance(options.get("max_steps"), str)
                                        else {})}}], **({"data": data[0]} if data else {})}
            for i, (variant, options, *data) in enumerate(variants) for seed in variant_seeds(s, i)]


#: ablation's calibration size: its head scores cost a pass per head and batch, so a quarter of the default samples
#: costs a quarter (benchmarks/real_size.py --importance-cost); one-shot and after the recovery, beside the default
#: sample count and magnitude (no data)
ABLATION_SAMPLES = 128


def seeded_prunings(s: dict, prunings) -> list[dict]:
    """Each (pruning, importance, calibration samples or None for the default[, (name, recovery options, data)]) once
    per seed: one-shot, then the recovery (the default distillation for recovery_steps, or the named options)."""
    recovery = {"max_steps": s["recovery_steps"], "per_device_train_batch_size": s["batch_size"]}
    return [{"section": "generalization-pruning", "variant": variant, "name": f"{variant}, seed {seed}",
             "pruning": what, "importance": importance, "seed": seed, **({"samples": samples} if samples else {}),
             "stages": [{"prune": {**GENERALIZATION_SHAPES[what], "importance": importance, "seed": seed,
                                   **({"calibration_samples": samples} if samples else {})}},
                        {"distill": {**recovery, **(how[1] if how else {}), "seed": seed}}],
             **({"data": how[2]} if how else {})}
            for i, (what, importance, samples, *other) in enumerate(prunings) for seed in variant_seeds(s, i)
            for how in [other[0] if other else None]
            for variant in [f"{what} ({importance}" + (f", {samples} samples)" if samples else ")")
                            + (f", recovered by {how[0]}" if how else "")]]


#: WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"): each seed's distilled student of these
#: rows with its weights interpolated toward the inherited student it started from (alpha 1 is the distilled student
#: itself, alpha 0 the inherited one); measured after the rows, no training
WISE_FT = {"generalization_long": {"variants": ("default, 1800 steps", f"{FORMER_DEFAULT}, 1800 steps",
                                                "contrastive only (no teacher), 1800 steps"),
                                   "alphas": (0.5, 0.7, 0.85)}}


def inherited_student(options: dict, s: dict):
    """(model, processor): the inherited student a CLIP distill stage with ``options`` started from, rebuilt as the
    stage builds it (the same pruning on the same calibration split: no randomness left)."""
    from vlmcompress.data.sources import standard_columns
    from vlmcompress.embedded import digits
    from vlmcompress.loading import load_checkpoint
    from vlmcompress.workflows.distill import DataArguments, StudentArguments, build_student

    teacher, processor, _ = load_checkpoint(options.get("teacher"))
    data = DataArguments(train_images_per_number=s["train_images_per_number"])
    train = digits.load_digits_dataset("train", images_per_number=data.train_images_per_number)
    names = StudentArguments.__dataclass_fields__
    student, _ = build_student(teacher, processor, StudentArguments(**{k: v for k, v in options.items() if k in names}),
                               standard_columns(train, data.image_column, data.caption_column))
    return student, processor


def wise_ft_rows(rows, s: dict, spec: dict, key: str, log) -> list[dict]:
    """One row per (distilled row of ``spec["variants"]``, alpha): its final student's weights lerped toward its
    inherited student's, measured on the suite's test split (no latency)."""
    import copy

    import torch

    from vlmcompress.evaluation.harness import evaluate_model
    from vlmcompress.loading import load_checkpoint

    out, starts = [], {}
    for r in rows:
        if r.get("variant") not in spec["variants"]:
            continue
        stage = r["stages"][-1]
        if not Path(stage["folder"]).is_dir() and r.get("_wise_ft") is not None:
            got = [{**w, "variant": f"{r['variant']}, alpha {w['alpha']}", "interpolates": r["variant"],
                    "reused_from": r["reused_from"]} for w in r["_wise_ft"] if w["alpha"] in spec["alphas"]]
            if len(got) != len(spec["alphas"]):
                raise SystemExit(f"benchmarks/run.py: WiSE-FT: {r['name']} was reused without its folders or its "
                                 "WiSE-FT rows; rerun without --reuse")
            out += got
            continue
        how = json.dumps({k: v for k, v in stage["options"].items() if k not in ("seed", "max_steps")}, sort_keys=True)
        if how not in starts:  # rows built alike share their inherited student
            starts[how] = inherited_student(stage["options"], s)
        start, processor = starts[how]
        end = load_checkpoint(stage["folder"])[0]
        first, last = start.state_dict(), end.state_dict()
        if first.keys() != last.keys() or any(first[k].shape != last[k].shape for k in last):
            raise SystemExit(f"benchmarks/run.py: WiSE-FT: {stage['folder']} does not have its inherited student's shapes")
        for alpha in spec["alphas"]:
            model = copy.deepcopy(end)
            model.load_state_dict({k: torch.lerp(first[k], v, alpha) if v.is_floating_point() else v
                                   for k, v in last.items()})
            metrics = evaluate_model(model, processor, images_per_number=s["images_per_number"], latency_repeats=0)
            out.append({"section": "wise-ft", "variant": f"{r['variant']}, alpha {alpha}", "interpolates": r["variant"],
                        "alpha": alpha, "seed": r["seed"], "stages": [{"after": slim(metrics)}]})
            log(f"  WiSE-FT {out[-1]['variant']}, seed {r['seed']}: {pct(metrics.get(key))} / "
                f"{pct(metrics.get(key + '_heldout'))}")
    return out


def generalization_long_rows(s: dict, teacher_config: dict) -> list[dict]:
    return seeded_distillations(s, GENERALIZATION_LONG) + seeded_prunings(
        s, [("heads -50%", "ablation", ABLATION_SAMPLES), ("heads -50%", "ablation", None),
            ("heads -50%", "magnitude", None)])


def generalization_rows(s: dict, teacher_config: dict) -> list[dict]:
    return seeded_distillations(s, GENERALIZATION) + seeded_prunings(
        s, [(what, importance, None) for what, importances in GENERALIZATION_PRUNINGS for importance in importances]
        + [("heads -50% + MLP -50%", DEFAULT_IMPORTANCE, None, (FORMER_DEFAULT, SIMILARITY_KL_EMBEDDING, {})),
           ("heads -50% + MLP -50%", DEFAULT_IMPORTANCE, None, (KL_T1_PROMPTS, KL_T1_PROMPTS_OPTIONS,
                                                              {"texts": "embedded"})),
           ("heads -50% + MLP -50%", DEFAULT_IMPORTANCE, None, (KL_CONTRASTIVE, KL_CONTRASTIVE_OPTIONS, {})),
           ("heads -50% + MLP -50%", DEFAULT_IMPORTANCE, None, (DEFAULT_WITH_TEXTS, {"text_weight": 1.0},
                                                              {"texts": "embedded"})),
           (GLOBAL_HEADS, DEFAULT_IMPORTANCE, None)])


def seed_groups(rows, teacher, key, section: str = "generalization", stage: int = -1) -> list[dict]:
    """The rows of each variant of ``section`` over its seeds, at ``stage``: mean and sd of the accuracy and of what
    is kept, seen and held-out."""
    groups = {}
    for r in rows:
        if r.get("variant") and r["section"] == section:
            groups.setdefault(r["variant"], []).append(r)
    out = []
    for variant, members in groups.items():
        g = {"variant": variant, "seeds": [r["seed"] for r in members]}
        for name, heldout in (("seen", False), ("heldout", True)):
            metric = f"{key}_heldout" if heldout else key
            acc = [r["stages"][stage]["after"][metric] for r in members]
            g[name] = statistics.mean(acc)
            g[f"{name}_sd"] = statistics.stdev(acc) if len(acc) > 1 else None
            g[f"{name}_kept"] = kept({metric: g[name]}, teacher, key, heldout=heldout)
        g["worse_kept"] = min(g["seen_kept"], g["heldout_kept"])
        params = [r["stages"][stage]["after"].get("params") for r in members]
        seconds = [r["stages"][stage].get("seconds") for r in members]
        g["params"] = statistics.mean(params) if None not in params else None
        g["seconds"] = statistics.mean(seconds) if None not in seconds else None
        g["steps"] = (members[0]["stages"][stage].get("options") or {}).get("max_steps")
        out.append(g)
    return out


def seed_noise(groups) -> dict:
    """The seed-to-seed noise: the pooled sd of the variants (each over its seeds), seen and held-out, in points; a
    variant the seed does not move (sd 0: magnitude importance, one-shot) is left out of the pool, and a variant whose
    figures repeat another's (the same one-shot pruning, recovered another way) counts once."""
    out, unique = {}, {}
    for g in groups:
        unique.setdefault(tuple(g[k] for k in ("seen", "heldout", "seen_sd", "heldout_sd")), g)
    groups = list(unique.values())
    for name in ("seen", "heldout"):
        sds = [g[f"{name}_sd"] for g in groups if g[f"{name}_sd"]]
        out[name] = 100 * (statistics.mean(sd * sd for sd in sds) ** 0.5) if sds else None
    return out


def noise_bar(sd_points: float, seeds: int) -> float:
    """Where a difference of two ``seeds``-seed means leaves the noise: 2 standard errors of that difference."""
    return 2 * sd_points * (2 / seeds) ** 0.5


def kept_target(what: str, group: dict, share: float = 0.97) -> dict:
    """The target "``what``: kept >= ``share`` of the teacher's seen and held-out accuracy" of a seed group."""
    return {"target": f"{what}: kept >= {share:.0%} seen and >= {share:.0%} held-out (mean of {len(group['seeds'])} "
            "seeds)", "value": f"{pct(group['seen_kept'], 2)} seen, {pct(group['heldout_kept'], 2)} held-out",
            "met": group["seen_kept"] >= share and group["heldout_kept"] >= share}


def versus(group: dict, other: dict, noise: dict) -> tuple:
    """(held-out points, seen points, the held-out noise bar): ``group``'s 3-seed means against ``other``'s."""
    return (100 * (group["heldout"] - other["heldout"]), 100 * (group["seen"] - other["seen"]),
            noise_bar(noise["heldout"], len(group["seeds"])))


def group_mean_sd(group: dict, name: str) -> str:
    """A seed group's mean accuracy and its sd in points, e.g. '88.4% ± 0.4'."""
    return mean_sd(group[name], group[f"{name}_sd"])


NF4 = {"bits": 4, "quant_type": "nf4"}
#: the smallest 4-bit layout measured: every Linear in nf4, and what bitsandbytes leaves unquantized (token and
#: position embeddings, the patch convolution, LayerNorms, biases) in bf16; double quantization is a row of its own
#: (at these widths its per-Linear tables outweigh the block scales it shrinks)
NF4_SMALLEST = {**NF4, "default_skip": False, "dtype": "bfloat16", "compute_dtype": "bfloat16"}
SMALLEST = "nf4 (all Linears, the rest in bf16)"


def small_rows(s: dict, teacher_config: dict) -> list[dict]:
    """The <= 10% tier: one distilled heads/MLP -50% student quantized four ways (nf4 as the CLIP suite does it, every
    Linear in nf4, the rest in bf16 too, and double quantization on top), then smaller students in the smallest layout:
    MLP -75%, and the half-depth and narrow students distilled for small_steps."""
    batch = {"per_device_train_batch_size": s["batch_size"]}
    both = {**PRUNINGS["heads -50% + MLP -50%"], "importance": DEFAULT_IMPORTANCE}
    base = "heads/MLP -50% + distill + nf4"
    return [
        {"section": "combined", "name": base,
         "stages": [{"prune": both}, {"distill": {"max_steps": s["steps"], **batch}}, {"quantize": dict(NF4)}]},
        {"section": "combined", "name": "heads/MLP -50% + distill + nf4 (all Linears)", "base": (base, 2),
         "stages": [{"quantize": {**NF4, "default_skip": False}}]},
        {"section": "combined", "name": f"heads/MLP -50% + distill + {SMALLEST}", "base": (base, 2),
         "stages": [{"quantize": dict(NF4_SMALLEST)}]},
        {"section": "combined", "name": "heads/MLP -50% + distill + nf4 (all Linears, double quant, the rest in bf16)",
         "base": (base, 2), "stages": [{"quantize": {**NF4_SMALLEST, "double_quant": True}}]},
        {"section": "combined", "name": f"heads -50%, MLP -75% + distill + {SMALLEST}",
         "stages": [{"prune": {**both, "mlp_ratio": 0.75}}, {"distill": {"max_steps": s["steps"], **batch}},
                    {"quantize": dict(NF4_SMALLEST)}]},
        {"section": "combined", "name": f"half depth, heads -50%, MLP -75% + distill, longer + {SMALLEST}",
         "stages": [{"prune": {"layer_strategy": "every_k", "keep_every": 2, "head_ratio": 0.5,
                               "head_scope": "per_layer", "mlp_ratio": 0.75}},
                    {"distill": {"max_steps": s["small_steps"], **batch}}, {"quantize": dict(NF4_SMALLEST)}]},
        {"section": "combined", "name": f"narrow (half width) + distill, longer + {SMALLEST}",
         "stages": [{"distill": {**NARROW, "max_steps": s["small_steps"], **batch}},
                    {"quantize": dict(NF4_SMALLEST)}]},
    ]


def pruning_rows(recovery: dict, towers=None) -> list[dict]:
    """Heads -50% (per layer), MLP -50% and both by each importance, and half depth; each recovered by distillation
    from the unpruned model. Ablation ranks neurons as taylor does, so MLP -50% has no ablation row."""
    where = {"towers": towers} if towers else {}
    rows = []
    for what, options in PRUNINGS.items():
        for importance in IMPORTANCES:
            if importance == "ablation" and "head_ratio" not in options:
                continue
            rows.append({"section": "pruning", "name": f"{what} ({importance})", "pruning": what,
                         "importance": importance,
                         "stages": [{"prune": {**where, **options, "importance": importance}},
                                    {"distill": dict(recovery)}]})
    rows.append({"section": "pruning", "name": "half depth (every 2nd layer)", "pruning": "half depth",
                 "importance": "layers 0, 2, ...",
                 "stages": [{"prune": {**where, "layer_strategy": "every_k", "keep_every": 2}},
                            {"distill": dict(recovery)}]})
    return rows


BLIP_INHERITED = {"keep_every": 2, "mlp_ratio": 0.35}  # distill_blip's default student: vision and decoder halved
CAPTION_ONLY = {"token_weight": 0.0, "caption_weight": 1.0}


def blip_rows(s: dict, teacher_config: dict) -> list[dict]:
    """The captioner: the four students (token-level KL + caption loss vs caption loss only), pruning with recovery
    (heads of the vision tower, the decoder and its cross-attention; MLP neurons; half depth)."""
    batch = {"per_device_train_batch_size": s["blip_batch_size"]}
    steps, recovery = {"max_steps": s["steps"], **batch}, {"max_steps": s["recovery_steps"], **batch}
    random_init = {"student_config": random_student_overrides(teacher_config, BLIP_INHERITED)}
    rows = [
        {"section": "students", "name": "(i) inherited + distillation", "stages": [{"distill": {**BLIP_INHERITED, **steps}}]},
        {"section": "students", "name": "(ii) inherited, caption loss only",
         "stages": [{"distill": {**BLIP_INHERITED, **CAPTION_ONLY, **steps}}]},
        {"section": "students", "name": "(iii) random init, caption loss only",
         "stages": [{"distill": {**random_init, **CAPTION_ONLY, **steps}}]},
        {"section": "students", "name": "(iv) random init + distillation",
         "stages": [{"distill": {**random_init, **steps}}]},
    ]
    # the default importance against magnitude (taylor is what ablation's neurons use): two hours of rows fit in one
    # CLIP + BLIP run on 2 cores
    return rows + [r for r in pruning_rows(recovery) if r["importance"] in (DEFAULT_IMPORTANCE, "magnitude", "layers 0, 2, ...")
                   or (r["pruning"] == "MLP -50%" and r["importance"] == "taylor")]


ITM = {"itm_weight": 1.0, "cache_teacher": False}  # the ITM KL needs the teacher's cross-attention pass: no cache


def retrieval_rows(s: dict, teacher_config: dict) -> list[dict]:
    """BLIP retrieval (ITC + ITM), distilled from the retrieval teacher the suite trains first: the four students
    (distillation = the distill command's default loss + the ITM KL), the ITM term left out, and heads/MLP -50% with
    recovery by the default importance and by magnitude."""
    batch = {"per_device_train_batch_size": s["blip_batch_size"]}
    steps, recovery = {"max_steps": s["steps"], **batch}, {"max_steps": s["recovery_steps"], **batch}
    random_init = {"student_config": random_student_overrides(teacher_config, INHERITED)}
    rows = [
        {"section": "students", "name": "(i) inherited + distillation",
         "stages": [{"distill": {**INHERITED, **ITM, **steps}}]},
        {"section": "students", "name": "(ii) inherited, contrastive only",
         "stages": [{"distill": {**INHERITED, **CONTRASTIVE_ONLY, **steps}}]},
        {"section": "students", "name": "(iii) random init, contrastive only",
         "stages": [{"distill": {**random_init, **CONTRASTIVE_ONLY, **steps}}]},
        {"section": "students", "name": "(iv) random init + distillation",
         "stages": [{"distill": {**random_init, **ITM, **steps}}]},
        {"section": "losses", "name": "inherited, ITC distillation without the ITM term",
         "stages": [{"distill": {**INHERITED, **steps}}]},
    ]
    for importance in (DEFAULT_IMPORTANCE, "magnitude"):
        what = "heads -50% + MLP -50%"
        rows.append({"section": "pruning", "name": f"{what} ({importance})", "pruning": what, "importance": importance,
                     "stages": [{"prune": {**PRUNINGS[what], "importance": importance}},
                                {"distill": {**ITM, **recovery}}]})
    return rows


ROWS = {"clip": clip_rows, "clip_small": small_rows, "blip": blip_rows,
        "blip_retrieval": retrieval_rows, "generalization": generalization_rows,
        "generalization_long": generalization_long_rows}
NOTES = {"clip": ["The <= 10% tier (the smallest 4-bit layout: every Linear in nf4, the rest in bf16; smaller "
                  "students in it, among them the narrow student distilled longer) has its own page: "
                  "[evidence_clip_small.md](evidence_clip_small.md)."],
         "clip_small": ["What is left in full precision dominates a small 4-bit checkpoint: the token embedding, "
                        "position embeddings, patch convolution, LayerNorms and biases, which bitsandbytes does not "
                        "quantize. Storing them in bf16 (`--dtype bfloat16`) halves those bytes and "
                        "`--no-default-skip` puts the projections in nf4 too; `--double-quant` stores a 256-entry table "
                        "per Linear, more than it saves on layers this small. The first four rows share one distilled "
                        "student (stages marked shared); 'longer' rows distil for the longer step count of the training "
                        "line."],
         "blip": ["BLIP retrieval (a BlipForImageTextRetrieval distilled with the ITC and ITM terms) has its own page: "
                  "[evidence_blip_retrieval.md](evidence_blip_retrieval.md)."],
         "blip_retrieval": ["The retrieval teacher is trained by `recipes/train_blip_retrieval_teacher.py` at the "
                            "start of the suite (vision tower and text layers inherited from the embedded BLIP "
                            "captioner, ITC + ITM); accuracy is zero-shot through the ITC embeddings. The ITM head is distilled (the KL "
                            "of its logits, `itm_weight`), and its last logged KL to the teacher's is in the students "
                            "table; the ITM head's own matching accuracy is not part of the evaluation."]}


def train_suite_teacher(suite: str, work: Path, s: dict) -> Path:
    """The suite's teacher folder, trained by its recipe unless an earlier run left it whole (its report written)."""
    folder = work / TEACHER_DIR
    if (folder / "compression_report.json").is_file():
        print(f"teacher: {folder} (trained earlier)", flush=True)
        return folder
    from vlmcompress.embedded import training

    trainer, arguments = TEACHER_TRAINERS[suite]
    print(f"teacher: training with recipes/{TEACHER_RECIPES[suite]} ({s['retrieval_teacher_steps']} steps)", flush=True)
    getattr(training, trainer)(getattr(training, arguments)(
        output_dir=str(folder), max_steps=s["retrieval_teacher_steps"], batch_size=s["blip_batch_size"],
        eval_images_per_number=s["images_per_number"], overwrite_output_dir=True))
    return folder


def row_recipe(row: dict, s: dict, work: Path, done: dict) -> dict:
    """The recipe (a dict, as ``vlmcompress compress`` reads it) of one row; ``done``: the rows run before it, whose
    stage folders a row with a ``base`` starts from."""
    out = work / slug(row["name"])
    stages = [{kind: {**s.get("stage_defaults", {}).get(kind, {}), **options} for kind, options in stage.items()}
              for stage in row["stages"]]  # a quick run: few calibration samples, every step logged
    recipe = {"family": s["family"], "stages": stages, "output_dir": str(out),
              "data": {"images_per_number": s["images_per_number"],
                       "train_images_per_number": s["train_images_per_number"], **row.get("data", {})},
              "eval": {"latency_rounds": s["eval_rounds"], "latency_batch_size": s["latency_batch_size"]}}
    if row.get("base"):
        parent, index = row["base"]
        recipe["model"] = done[parent]["stages"][index - 1]["folder"]
    elif s.get("teacher_dir"):
        recipe["model"] = s["teacher_dir"]
    return recipe


def run_row(row: dict, s: dict, work: Path, done: dict, log) -> dict:
    """Run one row's recipe through ``run_recipe`` (what ``vlmcompress compress`` runs); read every stage's report."""
    import yaml

    from vlmcompress.workflows.compress import run_recipe

    recipe = row_recipe(row, s, work, done)
    out = Path(recipe["output_dir"])
    path = work / f"{slug(row['name'])}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    t0 = time.time()
    run_recipe(str(path))
    seconds = time.time() - t0
    stages = [] if not row.get("base") else [dict(st, inherited=True) for st in done[row["base"][0]]["stages"]
                                               [:row["base"][1]]]
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name[:2].isdigit()):
        report = json.loads((folder / "compression_report.json").read_text())
        stage = json.loads((folder / "stage.json").read_text())
        stages.append({"name": folder.name, "kind": stage["kind"], "options": stage["options"],
                       "seconds": stage["seconds"], "folder": str(folder), "before": slim(report["before"]),
                       "after": slim(report["after"]), "training": training_figures(report),
                       # the stage's method config with the library's defaults filled in (tests/test_staleness.py)
                       "effective": report.get("effective_settings")})
    log(f"  {row['name']}: {seconds:.0f} s; " + ", ".join(
        f"{st['name']} {pct(st['after'].get(s['accuracy']))}" for st in stages))
    # the machine's 1-minute load average as the row ended: this process's own threads make about --threads; more
    # means other work shared the cores, and the row's seconds are not clean (the page says so)
    return {**{k: v for k, v in row.items() if k != "stages"}, "recipe": recipe, "seconds": round(seconds, 1),
            "stages": stages, "load_avg_1m": round(os.getloadavg()[0], 2), "hardware": hardware()}


# ------------------------------------------------------------------------------------------------------------ reuse
def reuse_sources(paths) -> list[dict]:
    """Earlier results a run may take rows from (--reuse): an evidence results file (benchmarks/results/evidence_*.json)
    or a work folder's done.json. Each: its label, its rows, the machine each row ran on, and what the results file
    measured after the rows (latency, WiSE-FT rows)."""
    out = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"benchmarks/run.py: --reuse {path}: cannot read it as JSON ({e}); expected an evidence "
                             "results file or a work folder's done.json")
        results = isinstance(data, dict) and isinstance(data.get("rows"), list)
        rows = data["rows"] if results else list(data.values()) if isinstance(data, dict) else None
        if not rows or not all(isinstance(r, dict) and "recipe" in r and "stages" in r for r in rows):
            raise SystemExit(f"benchmarks/run.py: --reuse {path}: no rows with their recipes; expected an evidence "
                             "results file or a work folder's done.json")
        latency = data.get("latency", {}) if results else {}
        out.append({"label": str(path), "rows": rows, "hardware": data.get("hardware") if results else None,
                    "default_importance": data.get("default_importance") if results else None,
                    "latency": latency, "wise_ft": (data.get("wise_ft") or {}).get("rows", []) if results else []})
    return out


def _what_decides(recipe: dict, effective: list | None = None) -> str:
    """A row's recipe without where it wrote its folders and, given ``effective`` (today's resolution of a recipe,
    recipe_effective), without each stage's method settings, which the stages' effective settings hold: two rows
    alike here, and alike in effect, run the same computation (whether a setting was written out or left to a
    default that equals it)."""
    stages = [{kind: {k: v for k, v in options.items() if not (eff and k in next(iter(eff.values())))}
               for kind, options in stage.items()}
              for stage, eff in zip(recipe.get("stages", []), effective or [None] * len(recipe.get("stages", [])))]
    return json.dumps({**{k: v for k, v in recipe.items() if k != "output_dir"}, "stages": stages}, sort_keys=True)


def reused_row(row: dict, recipe: dict, sources: list[dict], s: dict) -> dict | None:
    """``row`` as an earlier run measured it, or None: a source row started from the default teacher (not from
    another row's folder), whose machine is known, and which ran what ``recipe`` runs today by the staleness rule
    (tests/test_staleness.py): its recipe the same apart from its folders and its method settings, and every stage's
    recorded effective settings equal in effect to what today's code resolves ``recipe`` to (so a row whose recipe
    wrote out a setting that is today's default counts); for a row recorded before stages kept them, the same recipe
    and a results file measured with today's default importance. The row takes today's recipe (the source's
    folders)."""
    if "model" in recipe:  # starts from a folder of this run (another row's stage, a trained teacher)
        return None
    effective = recipe_effective(recipe)
    exact, want = _what_decides(recipe), _what_decides(recipe, effective)
    for source in sources:
        for old in source["rows"]:
            if old.get("base") or _what_decides(old["recipe"], effective) != want:
                continue
            current = stages_current(old["stages"], recipe, effective)
            if current is False or (current is None and (source["default_importance"] != DEFAULT_IMPORTANCE
                                                         or _what_decides(old["recipe"]) != exact)):
                continue
            machine = old.get("hardware") or source["hardware"]
            if not machine:
                continue
            timing = source["latency"].get(old["name"])
            same_timing = all(source["latency"].get("_settings", {}).get(k) == s[f"latency_{k}"]
                              for k in ("batch_size", "rounds"))
            return {**{k: v for k, v in row.items() if k != "stages"},
                    "recipe": {**recipe, "output_dir": old["recipe"].get("output_dir")},
                    "seconds": old.get("seconds"), "stages": old["stages"], "load_avg_1m": old.get("load_avg_1m"),
                    "hardware": machine,  # where the figures came from: the first run that measured them
                    "reused_from": old.get("reused_from") or {"file": source["label"], "row": old["name"]},
                    "_latency": timing if timing and same_timing else None,
                    "_wise_ft": [w for w in source["wise_ft"] if w.get("interpolates") == old.get("variant")
                                 and w.get("seed") == old.get("seed")]}
    return None


def reuse_rows(plan: dict, work: Path, done: dict, sources: list[dict], log) -> int:
    """Fill ``done`` with the plan's rows that an earlier run measured alike (reused_row); returns how many."""
    s = dict(plan["settings"], accuracy=ACCURACY[plan["suite"]], family=RECIPE_FAMILY[plan["suite"]])
    n = 0
    for row in plan["rows"]:
        if row["name"] in done:
            continue
        got = reused_row(row, row_recipe(row, s, work, done), sources, s)
        if got:
            done[row["name"]] = got
            n += 1
            log(f"reused: {row['name']} <- {got['reused_from']['file']}: {got['reused_from']['row']}")
    return n


def run_rows_child(work: Path) -> int:
    """The training process (OMP_WAIT_POLICY=ACTIVE, set by the parent): every row of work/rows.json not yet in
    work/done.json, in order; done.json is rewritten after each row, so a killed run resumes where it stopped."""
    plan = json.loads((work / "rows.json").read_text())
    plan["settings"] = dict(plan["settings"], accuracy=ACCURACY[plan["suite"]], family=RECIPE_FAMILY[plan["suite"]])
    if plan["suite"] in TEACHER_RECIPES:
        plan["settings"]["teacher_dir"] = str(train_suite_teacher(plan["suite"], work, plan["settings"]))
    done_file = work / "done.json"
    done = json.loads(done_file.read_text()) if done_file.is_file() else {}
    rows = plan["rows"]
    for i, row in enumerate(rows, 1):
        if row["name"] in done:
            print(f"[{i}/{len(rows)}] {row['name']}: done earlier", flush=True)
            continue
        print(f"[{i}/{len(rows)}] {row['section']}: {row['name']}", flush=True)
        done[row["name"]] = run_row(row, plan["settings"], work, done, lambda t: print(t, flush=True))
        atomic_write_text(done_file, json.dumps(done, indent=1))  # a kill leaves the last whole one
    return 0


METRICS = ("params", "size_bytes", "memory_bytes", "latency_ms", "zero_shot_accuracy", "zero_shot_accuracy_heldout",
           "caption_accuracy", "caption_accuracy_heldout", "eval_images", "latency_batch_size", "latency_threads")


def slim(metrics: dict | None) -> dict:
    return {k: metrics.get(k) for k in METRICS} if metrics else {}


def training_figures(report: dict) -> dict | None:
    step = next((st for st in report.get("steps", []) if st.get("method") == "distillation"), None)
    if step is None:
        return None
    record = step.get("training") or {}
    runtime, steps, batch = record.get("train_runtime_s"), record.get("global_step"), step.get("batch_size")
    return {"max_steps": step.get("max_steps"), "global_step": steps, "batch_size": batch,
            "losses": step.get("losses"), "cache_teacher": step.get("cache_teacher"), "train_runtime_s": runtime,
            "samples_per_second": steps * batch / runtime if runtime and steps and batch else None,
            "student_init": step.get("student_init"), "last_terms": _last_terms(record.get("loss_log"))}


def _last_terms(loss_log) -> dict | None:
    """The loss terms (``loss_<term>``) of the last logged step that has them."""
    for entry in reversed(loss_log or []):
        terms = {k[5:]: v for k, v in entry.items() if k.startswith("loss_") and isinstance(v, (int, float))}
        if terms:
            return {"step": entry.get("step"), **terms}
    return None


def slug(name: str) -> str:
    """A folder name for a row: its name's letters and digits; a long name keeps its start and end (the seed) and a
    hash of the whole, so two rows never share a folder."""
    keep = "".join(c if c.isalnum() else "-" for c in name.lower())
    out = "-".join(p for p in keep.split("-") if p)
    if len(out) <= 60:
        return out
    return f"{out[:36]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}-{out[-14:]}"


# ------------------------------------------------------------------------------------------------------------ timing
def time_final_checkpoints(teacher_path, rows, s, log) -> dict:
    """Teacher and every row's final checkpoint, timed side by side in interleaved rounds; ratios to the teacher."""
    import torch

    from vlmcompress.evaluation.harness import interleaved_latency
    from vlmcompress.loading import load_checkpoint

    models = {}
    teacher, processor, _ = load_checkpoint(str(teacher_path))
    models["teacher"] = teacher
    here = [r for r in rows if Path(r["stages"][-1]["folder"]).is_dir()]
    for row in here:
        models[row["name"]] = load_checkpoint(row["stages"][-1]["folder"])[0]
    from vlmcompress.adapters import get_adapter

    dtypes = {name: str(get_adapter(m).input_dtype()).replace("torch.", "") for name, m in models.items()}
    log(f"timing {len(models)} models: {s['latency_rounds']} interleaved rounds at batch {s['latency_batch_size']}")
    _, times = interleaved_latency(models, processor, batch_size=s["latency_batch_size"], rounds=s["latency_rounds"])
    out = {}
    for name, t in times.items():
        ratios = [m / b for m, b in zip(t, times["teacher"])]
        out[name] = {"ms": statistics.median(t), "ms_per_round": [round(x, 3) for x in t], "dtype": dtypes[name],
                     "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    out["_settings"] = {"batch_size": s["latency_batch_size"], "rounds": s["latency_rounds"],
                        "threads": torch.get_num_threads(), "device": "cpu",
                        "dtype": "float32" if set(dtypes.values()) == {"float32"} else
                        "each model's own (" + ", ".join(sorted(set(dtypes.values()))) + ")",
                        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    for row in rows:  # reused rows whose folders are gone: the ratio their own run timed side by side
        if row["name"] not in out and row.get("_latency"):
            out[row["name"]] = {**row["_latency"], "reused": True}
    return out


# ------------------------------------------------------------------------------------------------------------ analysis
def final(row):
    return row["stages"][-1]["after"]


def kept(metrics: dict, teacher: dict, key="zero_shot_accuracy", heldout=False):
    key = f"{key}_heldout" if heldout else key
    a, b = metrics.get(key), teacher.get(key)
    return None if a is None or not b else a / b


def worse_kept(metrics: dict, teacher: dict, key="zero_shot_accuracy"):
    """The worse of seen and held-out kept (seen alone where held-out was not measured): what a choice is judged on."""
    both = [k for k in (kept(metrics, teacher, key), kept(metrics, teacher, key, heldout=True)) if k is not None]
    return min(both) if both else None


def kept_pair(metrics: dict, teacher: dict, key="zero_shot_accuracy") -> str:
    """'97.6% / 101.3%': kept on seen / held-out."""
    return f"{pct(kept(metrics, teacher, key))} / {pct(kept(metrics, teacher, key, heldout=True))}"


def find(rows, name):
    return next((r for r in rows if r["name"] == name), None)


def targets(rows, teacher, quick: bool, key: str = "zero_shot_accuracy", bars: bool = True) -> list[dict]:
    """Each issue target with the figures it rests on and met / not met (a quick run's figures are not evidence)."""
    out = []

    def points(row, stage=-1, heldout=False):
        return 100 * row["stages"][stage]["after"][f"{key}_heldout" if heldout else key]

    iii = find(rows, "(iii) random init, contrastive only") or find(rows, "(iii) random init, caption loss only")
    iv = find(rows, "(iv) random init + distillation")
    if iii and iv:
        gain = points(iv) - points(iii)
        out.append({"target": f"(iv) random init + distillation beats {iii['name']} by >= 3 points (seen)",
                    "value": f"{gain:+.1f} points", "met": gain >= 3})
    narrow = find(rows, "narrow: inherited + distillation")
    if narrow:
        share = final(narrow)["params"] / teacher["params"]
        out.append({"target": "the narrow student (<= 25% of the teacher's parameters, inherited sliced widths + "
                    "distillation) keeps >= 95% of the teacher's accuracy, seen and held-out",
                    "value": f"{share:.1%} of the parameters, {kept_pair(final(narrow), teacher, key)} kept (seen / "
                    "held-out)", "met": share <= 0.25 and (worse_kept(final(narrow), teacher, key) or 0) >= 0.95})
        rnd = find(rows, "narrow: random init + distillation")
        if rnd:
            gain = points(narrow) - points(rnd)
            out.append({"target": "narrow tier: inheriting sliced widths beats random init (both distilled), seen",
                        "value": f"{gain:+.1f} points", "met": gain > NOISE_POINTS["seen"]})
    cached, uncached = find(rows, "(i) inherited + distillation"), find(rows, "(i) without the teacher cache")
    if cached and uncached:
        a, b = cached["stages"][0]["training"], uncached["stages"][0]["training"]
        if a and b and a.get("samples_per_second") and b.get("samples_per_second"):
            speedup = a["samples_per_second"] / b["samples_per_second"]
            out.append({"target": "teacher caching trains >= 1.5x the samples/s of the teacher's forward every step",
                        "value": f"x{speedup:.2f} ({a['samples_per_second']:.0f} vs {b['samples_per_second']:.0f} "
                        f"samples/s; cache {'on' if a.get('cache_teacher') else 'OFF'} in (i))",
                        "met": bool(a.get("cache_teacher")) and speedup >= 1.5})
    both = find(rows, f"heads -50% + MLP -50% ({DEFAULT_IMPORTANCE})")
    if both:
        seen, held = kept(final(both), teacher, key), kept(final(both), teacher, key, heldout=True)
        bar = (0.97, 0.95) if bars else None  # the issue sets the bar for CLIP
        out.append({"target": f"heads -50% + MLP -50% (default importance, {DEFAULT_IMPORTANCE}) after recovery keeps "
                    + (">= 97% seen and >= 95% held-out" if bar else "(measured; no bar set)"),
                    "value": f"{pct(seen, 2)} seen, {pct(held, 2)} held-out",  # 2 digits: 96.96% is not 97%
                    "met": (seen is not None and held is not None and seen >= bar[0] and held >= bar[1]) if bar else None})
        training = both["stages"][1]["training"] or {}
        runtime = training.get("train_runtime_s")
        out.append({"target": "recovery (the distillation's training) takes <= 2 minutes on 2 cores",
                    "value": f"{runtime:.0f} s training ({both['stages'][1]['seconds']:.0f} s with the stage's "
                    "evaluation of teacher and student)" if runtime else "n/a",
                    "met": runtime is not None and runtime <= 120})
    default, magnitude = find(rows, f"heads -50% ({DEFAULT_IMPORTANCE})"), find(rows, "heads -50% (magnitude)")
    if default and magnitude:
        d_seen = points(default, 0) - points(magnitude, 0)
        d_held = points(default, 0, True) - points(magnitude, 0, True)
        out.append({"target": f"one-shot heads -50% (per layer): the default importance ({DEFAULT_IMPORTANCE}) beats "
                    f"magnitude on seen and held-out by more than the noise (~{NOISE_POINTS['seen']} / "
                    f"~{NOISE_POINTS['heldout']} points)", "value": f"{d_seen:+.1f} seen, {d_held:+.1f} held-out points",
                    "met": d_seen > NOISE_POINTS["seen"] and d_held > NOISE_POINTS["heldout"]})
    groups = {g["variant"]: g for g in seed_groups(rows, teacher, key)}
    if groups:
        noise = seed_noise(list(groups.values()))
        for suffix in ("", ", 900 steps", ", 1800 steps"):
            default, alone = groups.get(GENERALIZATION[0][0] if not suffix else f"default{suffix}"), \
                groups.get(f"contrastive only (no teacher){suffix}")
            steps = default["steps"] if default else None
            if default:
                out.append(kept_target(f"default distillation, inherited student, {steps} steps", default))
            former = groups.get(f"{FORMER_DEFAULT}{suffix}")
            if default and former and noise["heldout"] is not None and noise["seen"] is not None:
                d_held, d_seen, bar = versus(default, former, noise)
                seen_bar = noise_bar(noise["seen"], len(default["seeds"]))
                out.append({"target": f"default distillation against {FORMER_DEFAULT} at {steps} steps: not worse "
                            "beyond the noise (2 standard errors of the difference of the means) on seen or on "
                            "held-out", "value": f"{d_held:+.1f} held-out (bar {bar:.1f}), {d_seen:+.1f} seen points "
                            f"(bar {seen_bar:.1f}); worse of the two kept {pct(default['worse_kept'], 2)} vs "
                            f"{pct(former['worse_kept'], 2)}", "met": d_held >= -bar and d_seen >= -seen_bar})
            if default and alone and noise["heldout"] is not None:
                d_held, d_seen, bar = versus(default, alone, noise)
                out.append({"target": f"default distillation beats contrastive-only on held-out at {steps} steps by "
                            "more than the noise (2 standard errors of the difference of the means) and is not worse "
                            "on seen", "value": f"{d_held:+.1f} held-out (bar {bar:.1f}), {d_seen:+.1f} seen points",
                            "met": d_held > bar and d_seen >= 0})
            # the default with the label set, then each candidate: (row, name in its kept line, name in its line
            # against contrastive-only)
            against_alone = [(DEFAULT_WITH_TEXTS, "default distillation with the label set as unpaired texts",
                              "default distillation with the label set as unpaired texts (the text term on)"),
                             *((name, f"candidate default ({name})", f"candidate default ({name}, not the default yet)")
                               for name in CANDIDATES)]
            for name, kept_name, who in against_alone:
                cand = groups.get(f"{name}{suffix}")
                if cand and suffix:  # the 400-step kept of every candidate is in the table and the line below
                    out.append(kept_target(f"{kept_name}, {cand['steps']} steps", cand))
                if cand and alone and noise["heldout"] is not None:
                    d_held, d_seen, bar = versus(cand, alone, noise)
                    out.append({"target": f"{who} beats contrastive-only on held-out at {cand['steps']} steps by more "
                                "than the noise and is not worse on seen",
                                "value": f"{d_held:+.1f} held-out (bar {bar:.1f}), {d_seen:+.1f} seen points; kept "
                                f"{pct(cand['seen_kept'], 2)} / {pct(cand['heldout_kept'], 2)}",
                                "met": d_held > bar and d_seen >= 0})
        for name in (NARROW_DEFAULT, NARROW_LONG):
            narrow = groups.get(name)
            if not narrow or narrow["params"] is None:
                continue
            share = narrow["params"] / teacher["params"]
            out.append({"target": f"narrow student (<= 25% of the teacher's parameters), {narrow['steps']} steps (the "
                        f"row {name}): kept >= 95% seen and >= 95% held-out (mean of "
                        f"{len(narrow['seeds'])} seeds)",
                        "value": f"{share:.1%} of the parameters; {pct(narrow['seen_kept'], 2)} seen, "
                        f"{pct(narrow['heldout_kept'], 2)} held-out",
                        "met": share <= 0.25 and narrow["seen_kept"] >= 0.95 and narrow["heldout_kept"] >= 0.95})
    one_shot = {g["variant"]: g for g in seed_groups(rows, teacher, key, "generalization-pruning", stage=0)}
    recovered = {g["variant"]: g for g in seed_groups(rows, teacher, key, "generalization-pruning")}
    mine, magnitude = one_shot.get(f"heads -50% ({DEFAULT_IMPORTANCE})"), one_shot.get("heads -50% (magnitude)")
    if mine and magnitude:
        noise = seed_noise(list(one_shot.values()))
        d_held, d_seen = 100 * (mine["heldout"] - magnitude["heldout"]), 100 * (mine["seen"] - magnitude["seen"])
        out.append({"target": f"one-shot heads -50% per layer, the default importance ({DEFAULT_IMPORTANCE}): beats "
                    "magnitude on held-out by more than 2x the noise (the pooled seed sd of the one-shot rows), and "
                    "on seen", "value": f"{d_held:+.1f} held-out (2x noise {2 * noise['heldout']:.1f}), {d_seen:+.1f} seen points",
                    "met": d_held > 2 * noise["heldout"] and d_seen > 0})
    fewer, full = f"heads -50% (ablation, {ABLATION_SAMPLES} samples)", "heads -50% (ablation)"
    if fewer in one_shot and full in one_shot:
        parts, met = [], True
        for label, groups_at in (("one-shot", one_shot), ("recovered", recovered)):
            noise = seed_noise(list(groups_at.values()))
            for name in ("seen", "heldout"):
                d = 100 * (groups_at[fewer][name] - groups_at[full][name])
                bar = noise_bar(noise[name], len(groups_at[full]["seeds"])) if noise[name] is not None else 0.0
                parts.append(f"{label} {'held-out' if name == 'heldout' else name} {d:+.1f} (bar {bar:.1f})")
                met = met and d >= -bar
        out.append({"target": f"ablation on {ABLATION_SAMPLES} calibration samples (a quarter of the default's passes) "
                    "is not worse than on the default count beyond the noise, seen and held-out, one-shot and after "
                    "the recovery", "value": ", ".join(parts) + " points", "met": met})
    others = (FORMER_DEFAULT, *CANDIDATES, DEFAULT_WITH_TEXTS)
    for by in ("", *(f", recovered by {name}" for name in others)):  # the default, the others
        both = recovered.get(f"heads -50% + MLP -50% ({DEFAULT_IMPORTANCE}){by}")
        if both:
            out.append(kept_target(f"heads -50% + MLP -50% ({DEFAULT_IMPORTANCE}) after the recovery{by}", both))
    combined = [r for r in rows if r["section"] == "combined"]
    if combined:
        ok = [r for r in combined if (final(r)["size_bytes"] / teacher["size_bytes"] <= 0.10
                                      and (worse_kept(final(r), teacher, key) or 0) >= 0.95)]
        best = min(combined, key=lambda r: final(r)["size_bytes"])
        out.append({"target": "a checkpoint <= 10% of the teacher's bytes keeping >= 95% of its accuracy, seen and "
                    "held-out", "value": (f"{ok[0]['name']}: " if ok else f"smallest, {best['name']}: ")
                    + f"{final((ok or [best])[0])['size_bytes'] / teacher['size_bytes']:.1%} of the bytes, "
                    f"{kept_pair(final((ok or [best])[0]), teacher, key)} kept (seen / held-out)", "met": bool(ok)})
    if quick:
        for t in out:
            t["met"] = None  # a quick run's figures show that the rows run, not whether a target is met
    return out


def met_label(met, quick: bool, yes: str, no: str) -> str:
    """A target's met / not met, and for a target that is neither: a quick run's (no evidence) or one with no bar."""
    return {True: yes, False: no, None: "(quick run)" if quick else "no bar"}[met]


def frontier(points: list[dict]) -> list[dict]:
    """The points no other point beats on both bytes (smaller) and accuracy kept (higher: the worse of seen and
    held-out kept), smallest first."""
    best, out = -1.0, []
    for p in sorted(points, key=lambda p: (p["size_bytes"], -p["kept"])):
        if p["kept"] > best:
            out.append(p)
            best = p["kept"]
    return out


def pareto_points(rows, teacher, latency, key: str = "zero_shot_accuracy") -> list[dict]:
    pts = [{"name": "teacher", "section": "teacher", "size_bytes": teacher["size_bytes"], "kept": 1.0,
            "kept_seen": 1.0, "kept_heldout": 1.0 if teacher.get(f"{key}_heldout") else None, "latency_ratio": 1.0}]
    for r in rows:
        f = final(r)
        if f.get(key) is None:
            continue
        pts.append({"name": r["name"], "section": r["section"], "size_bytes": f["size_bytes"],
                    "kept": worse_kept(f, teacher, key), "kept_seen": kept(f, teacher, key),
                    "kept_heldout": kept(f, teacher, key, heldout=True),
                    "latency_ratio": (latency.get(r["name"]) or {}).get("ratio")})
    return pts


def advice(front: list[dict], teacher_bytes: int) -> list[dict]:
    """'If you need at most X of the teacher's bytes, use Y': one line per frontier point, from the largest down."""
    return [{"if_you_need": f"<= {p['size_bytes'] / teacher_bytes:.1%} of the teacher's bytes",
             "use": p["name"], "kept": p["kept"], "kept_seen": p.get("kept_seen"), "kept_heldout": p.get("kept_heldout"),
             "latency_ratio": p["latency_ratio"], "size_bytes": p["size_bytes"]}
            for p in sorted(front, key=lambda p: -p["size_bytes"])]


# ------------------------------------------------------------------------------------------------------------ page
def plot_pareto(points, front, path: Path, title: str):
    from vlmcompress.cards.plot import _figure, _save

    fig = _figure(7.0, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    colors = {"teacher": "black", "students": "tab:blue", "narrow": "tab:cyan", "losses": "tab:purple", "cache": "tab:gray",
              "pruning": "tab:orange", "importance": "tab:red", "combined": "tab:green"}
    for section in colors:
        sel = [p for p in points if p["section"] == section]
        if not sel:
            continue
        sizes = [30 + 120 * (p["latency_ratio"] or 0.3) for p in sel]
        ax.scatter([p["size_bytes"] / 2**20 for p in sel], [100 * p["kept"] for p in sel], s=sizes,
                   c=colors[section], alpha=0.6, label=section, edgecolors="none")
    ax.plot([p["size_bytes"] / 2**20 for p in front], [100 * p["kept"] for p in front], "k--", lw=1, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk (MiB, log scale)")
    ax.set_ylabel("accuracy kept, the worse of seen and held-out (%)", fontsize=8)
    ax.set_title(title + " (marker area: latency vs the teacher)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


SUITE_TEXT = {
    "clip": {"title": "CLIP (embedded teacher)", "accuracy": "zero-shot top-1",
             "students": "every 2nd layer of each tower, MLP -25%"},
    "clip_small": {"title": "CLIP, the <= 10% tier (embedded teacher)", "accuracy": "zero-shot top-1",
                   "students": "-"},
    "blip": {"title": "BLIP captioner (embedded teacher)",
             "accuracy": "caption accuracy (the greedy caption names the right number)",
             "students": "every 2nd layer of the vision tower and of the text decoder, MLP -35%"},
    "generalization": {"title": "CLIP distillation that keeps held-out accuracy ({seeds} seeds)",
                       "accuracy": "zero-shot top-1", "students": "every 2nd layer of each tower, MLP -25%"},
    "generalization_long": {"title": "CLIP distillation at 1800 steps: held-out accuracy and the narrow tier ({seeds} seeds)",
                            "accuracy": "zero-shot top-1",
                            "students": "every 2nd layer of each tower, MLP -25% (narrow: half the width and heads too)"},
    "blip_retrieval": {"title": "BLIP retrieval (a retrieval teacher trained on the digits)",
                       "accuracy": "zero-shot top-1 through the ITC embeddings",
                       "students": "every 2nd layer of the vision tower and of the text encoder, MLP -25%; "
                       "distillation = the distill command's default loss + the ITM logits' KL"},
}


def _samples(row) -> str:
    """Calibration samples a row's importance was scored on (the library's default where the row names none)."""
    from vlmcompress.pruning.importance import IMPORTANCE

    options = row["stages"][0]["options"] if row["stages"][0].get("options") else {}
    n = options.get("calibration_samples") or row.get("samples")
    if n:
        return str(n)
    default = getattr(IMPORTANCE.get(row.get("importance")), "default_samples", None)
    return str(default) if default and IMPORTANCE[row["importance"]].needs_data else "none"


def render(results: dict, plot_name: str) -> str:
    teacher, rows, latency = results["teacher"], results["rows"], results["latency"]
    suite = results.get("suite", "clip")
    key = results.get("accuracy", ACCURACY[suite])
    text = SUITE_TEXT[suite]
    tb = teacher["size_bytes"]
    lat = latency["_settings"]
    s = results["settings"]
    batch = s.get("blip_batch_size", 64) if suite.startswith("blip") else s.get("batch_size", 128)

    def acc(m):
        return f"{pct(m.get(key))} / {pct(m.get(key + '_heldout'))}"

    def kept2(m):
        return kept_pair(m, teacher, key)

    def lat_of(name):
        x = latency.get(name)
        return "n/a" if not x else (f"{x['ratio']:.2f}x ({x['ratio_min']:.2f}-{x['ratio_max']:.2f})"
                                    + (" (its own run)" if x.get("reused") else ""))

    def section(name):
        return [r for r in rows if r["section"] == name]

    longer = any(st.get("kind") == "distill" and (st.get("options") or {}).get("max_steps") == s.get("small_steps")
                 != s["steps"] for r in rows for st in r["stages"])
    lines = [f"# The evidence: {text['title'].format(seeds=len(suite_seeds(s)))}", "",
             "<!-- generated by benchmarks/run.py / render_pages.py: do not edit -->", "",
             f"Generated by `python benchmarks/run.py --suite {suite}` from `benchmarks/results/evidence_{suite}.json`."
             + (" **This page comes from a --quick run: the figures show the rows run, not what they "
                "measure.**" if s["quick"] else ""), "",
             f"- hardware{' of this run (the rows it ran, the timing)' if reused_lines(results) else ''}: "
             f"{results['hardware']}; torch {results['environment'].get('torch')}, transformers "
             f"{results['environment'].get('transformers')}",
             f"- accuracy: embedded digits test split, {s['images_per_number']} images per number (100 numbers; "
             f"held-out = the 10 numbers never trained on), seen / held-out {text['accuracy']}",
             f"- training: {s['steps']} steps per distillation row"
             + (f" ({s['small_steps']} for the chains distilled longer)" if longer else "")
             + f", {s['recovery_steps']} recovery steps per pruning row, batch {batch}, seed 42, {s['train_images_per_number']} training images per seen number, "
             "OMP_WAIT_POLICY=ACTIVE in the training process",
             f"- latency: every final checkpoint and the teacher timed side by side in {lat['rounds']} interleaved "
             f"rounds, image+text forward at batch {lat['batch_size']}, {lat['threads']} threads, {lat['dtype']}, "
             f"{lat['device']}; x teacher = median per-round ratio (min-max)",
             f"- teacher: {teacher['params']:,} parameters, {teacher['size_bytes']:,} bytes, accuracy {acc(teacher)}"
             + (f" (trained by {tt['recipe']} in this run: {tt['steps']} steps at batch {tt['batch_size']}, "
                f"{tt['train_seconds']:.0f} s, {tt['objective']})" if (tt := results.get("teacher_training")) else ""),
             f"- the library's default importance: {results.get('default_importance', 'taylor')}",
             *reused_lines(results), "", "## Targets", ""]
    lines += table(["target", "measured", "met"],
                   [[t["target"], t["value"], met_label(t["met"], s["quick"], "yes", "**no**")]
                    for t in results["targets"]], align=["l", "l", "l"])
    groups = seed_groups(rows, teacher, key)
    if groups:
        noise = seed_noise(groups)
        base = groups[0]
        n = len(base["seeds"])
        se = None if noise["heldout"] is None else noise_bar(noise["heldout"], n)
        lines += ["", f"## Generalization: seen and held-out over {n} seeds", "",
                  f"The inherited student of the CLIP suite's (i), {s['steps']} steps unless the row says, each "
                  "variant once per seed "
                  f"({', '.join(str(x) for x in base['seeds'])}: the seed sets the training data's order and "
                  "augmentation, and any random initialisation). Held-out numbers never appear in any training caption. "
                  "A variant is judged on the worse of its seen and held-out kept.", ""]
        lines += table(["variant", "steps", "params (of the teacher's)", "seen (mean ± sd)", "held-out (mean ± sd)",
                        "kept seen / held-out", "worse of the two kept", "vs the first row: seen / held-out points"],
                       [[g["variant"], str(g["steps"]),
                         "-" if g["params"] is None else f"{g['params']:,.0f} ({g['params'] / teacher['params']:.0%})",
                         group_mean_sd(g, "seen"), group_mean_sd(g, "heldout"),
                         f"{pct(g['seen_kept'])} / {pct(g['heldout_kept'])}", pct(g["worse_kept"]),
                         "-" if g is base else f"{100 * (g['seen'] - base['seen']):+.1f} / "
                         f"{100 * (g['heldout'] - base['heldout']):+.1f}"
                         + ("" if se is None or g is base or abs(100 * (g["heldout"] - base["heldout"])) <= se
                            else " (held-out: beyond the noise)")]
                        for g in groups])
        if noise["seen"] is not None:
            lines += ["", f"Seed-to-seed noise (the sd over seeds, pooled over the variants): {noise['seen']:.1f} "
                      f"points seen, {noise['heldout']:.1f} held-out; a difference of two {n}-seed means is beyond the "
                      f"noise above 2 standard errors: {noise_bar(noise['seen'], n):.1f} seen, {se:.1f} "
                      "held-out points."]
    wise = results.get("wise_ft")
    if wise and wise.get("rows"):
        distilled = {g["variant"]: g for g in seed_groups(rows, teacher, key)}
        mixed = seed_groups(wise["rows"], teacher, key, "wise-ft")
        lines += ["", "## WiSE-FT: the distilled student's weights interpolated toward the inherited student's", "",
                  "Each seed's distilled student, its weights lerped toward the inherited student it started from "
                  "(Wortsman et al. 2022): alpha 1 is the distilled student (the row above), alpha 0 the inherited one. "
                  "No training; measured on the same test images.", ""]
        of = {r["variant"]: (r["interpolates"], r["alpha"]) for r in wise["rows"]}
        body = []
        for variant in wise["variants"]:
            end = distilled.get(variant)
            ours = [(of[g["variant"]][1], g) for g in mixed if of[g["variant"]][0] == variant]
            if end is None or not ours:
                continue
            for alpha, g in [(1, end), *sorted(ours, key=lambda pair: -pair[0])]:
                body.append([variant, f"{alpha:g}", group_mean_sd(g, "seen"), group_mean_sd(g, "heldout"),
                             f"{pct(g['seen_kept'])} / {pct(g['heldout_kept'])}", pct(g["worse_kept"]),
                             "-" if g is end else f"{100 * (g['seen'] - end['seen']):+.1f} / "
                             f"{100 * (g['heldout'] - end['heldout']):+.1f}"])
        lines += table(["distilled variant", "alpha", "seen (mean ± sd)", "held-out (mean ± sd)",
                        "kept seen / held-out", "worse of the two kept", "vs alpha 1: seen / held-out points"], body)
        lines.append("")
        for variant in wise["variants"]:
            pairs = [(1, distilled[variant])] + [(of[g["variant"]][1], g) for g in mixed
                                                 if of[g["variant"]][0] == variant] if variant in distilled else []
            if len(pairs) > 1:
                alpha, best = max(pairs, key=lambda pair: pair[1]["worse_kept"])
                lines.append(f"- {variant}: the best on the worse of the two kept is alpha {alpha:g} "
                             f"({pct(best['worse_kept'])})" + (": interpolating does not help" if alpha == 1 else ""))
    one_shot = seed_groups(rows, teacher, key, "generalization-pruning", stage=0)
    if one_shot:
        recovered = {g["variant"]: g for g in seed_groups(rows, teacher, key, "generalization-pruning")}
        noise = seed_noise(one_shot)
        lines += ["", f"## Pruning by importance over {len(one_shot[0]['seeds'])} seeds: one-shot and after the recovery", "",
                  f"Per layer, from the teacher; {s['recovery_steps']} recovery steps of the default distillation. The "
                  "seed draws the calibration samples (data-driven importances) and the recovery's data order. "
                  "fisher: the empirical Fisher of per-sample gates (one backward pass per calibration batch); ablation: "
                  "each head gated off alone (one forward pass per head and batch); magnitude: weight norms.", ""]
        lines += table(["pruning (importance)", "one-shot seen", "one-shot held-out", "recovered seen",
                        "recovered held-out", "recovered kept seen / held-out", "prune stage s (eval included, mean)"],
                       [[g["variant"], group_mean_sd(g, "seen"), group_mean_sd(g, "heldout"),
                         *(group_mean_sd(recovered[g["variant"]], k) for k in ("seen", "heldout")),
                         f"{pct(recovered[g['variant']]['seen_kept'])} / {pct(recovered[g['variant']]['heldout_kept'])}",
                         "-" if g["seconds"] is None else f"{g['seconds']:.0f}"] for g in one_shot])
        if noise["seen"] is not None:
            lines += ["", f"Seed-to-seed noise of the one-shot rows (pooled sd): {noise['seen']:.1f} points seen, "
                      f"{noise['heldout']:.1f} held-out (magnitude needs no data: the seed does not move its one-shot "
                      "result, and it is left out of the pool)."]
    if section("students"):
        lines += ["", "## Distillation: four students", "",
                  f"Same student shape ({text['students']}), same data, steps and seed.", ""]
        itm = any("itm" in ((r["stages"][0]["training"] or {}).get("last_terms") or {}) for r in section("students"))
        lines += table(["student", "params", "seen / held-out", "kept seen / held-out", "train s", "samples/s"]
                       + (["ITM KL to the teacher (last logged)"] if itm else []),
                       [[r["name"], f"{final(r)['params']:,}", acc(final(r)), kept2(final(r)),
                         _num(r["stages"][0]["training"], "train_runtime_s"),
                         _num(r["stages"][0]["training"], "samples_per_second")]
                        + ([_term(r["stages"][0]["training"], "itm")] if itm else [])
                        for r in section("students")])
    if section("narrow"):
        lines += ["", "## The narrow tier", "",
                  "Every 2nd layer, half the hidden width and heads (head_dim kept), MLP -25%: inherited by slicing the "
                  "teacher's widths, or the same stock shape from random initialisation; same steps and seed.", ""]
        lines += table(["student", "params", "of teacher", "seen / held-out", "kept seen / held-out", "train s"],
                       [[r["name"], f"{final(r)['params']:,}", f"{final(r)['params'] / teacher['params']:.1%}",
                         acc(final(r)), kept2(final(r)),
                         _num(r["stages"][0]["training"], "train_runtime_s")] for r in section("narrow")])
    if section("losses") or section("cache"):
        lines += ["", "## Distillation losses and the teacher cache", "",
                  "The inherited student of (i), same steps and seed, distilled with other loss terms"
                  + (", and once without the teacher cache (the teacher's forward pass every step)." if section("cache")
                     else "."), ""]
        ablation = [r for r in rows if r["name"] == "(i) inherited + distillation" or r["section"] in ("losses", "cache")]
        lines += table(["row", "losses (weights)", "teacher cache", "seen / held-out", "kept seen / held-out", "train s",
                        "samples/s", "stage s (eval included)"],
                       [[r["name"], _losses(r["stages"][0]["training"]),
                         {True: "on", False: "off", None: "n/a"}[(r["stages"][0]["training"] or {}).get("cache_teacher")],
                         acc(final(r)), kept2(final(r)),
                         _num(r["stages"][0]["training"], "train_runtime_s"),
                         _num(r["stages"][0]["training"], "samples_per_second"), f"{r['stages'][0]['seconds']:.0f}"]
                        for r in ablation], align=list("lllrrrrr"))
    pruning = section("pruning")
    if pruning:
        lines += ["", "## Pruning, before and after recovery", "",
                  f"One-shot (right after pruning) and after {s['recovery_steps']} steps of distillation from the unpruned "
                  "teacher. Head scope per_layer: every layer keeps half its heads; global: heads compete across a tower's "
                  "layers. The gradual row reaches the same shape while distilling (PruningCallback, cubic schedule) in "
                  "the same number of steps.", ""]
        lines += table(["pruning", "importance", "head scope", "params", "one-shot seen / held-out",
                        "recovered seen / held-out", "kept (seen / held-out)", "recovery train s", "stage s"],
                       [[r["pruning"], r["importance"], r.get("head_scope", "per_layer") if "heads" in r["pruning"] else "-",
                         f"{final(r)['params']:,}", "n/a (pruned while training)" if r.get("gradual") else
                         acc(r["stages"][0]["after"]), acc(final(r)), kept2(final(r)),
                         _num(r["stages"][-1]["training"], "train_runtime_s"), f"{r['stages'][-1]['seconds']:.0f}"]
                        for r in pruning], align=list("lllrrrrrr"))
    scope_lines = []
    for r in pruning:
        if r.get("head_scope") == "global":
            twin = find(rows, f"{r['pruning']} ({r['importance']})")
            if twin:
                one = 100 * (twin["stages"][0]["after"][key] - r["stages"][0]["after"][key])
                rec = 100 * (final(twin)[key] - final(r)[key])
                scope_lines.append(f"- {r['pruning']} ({r['importance']}): per_layer minus global = {one:+.1f} points "
                                   f"one-shot, {rec:+.1f} after recovery (seen)")
    if scope_lines:
        from vlmcompress.pruning.config import PruningConfig

        lines += ["", f"Head scope (the library's default: {PruningConfig.head_scope}):", "", *scope_lines]
    variants = [r for r in pruning if r["pruning"] == "heads -50%" and not r.get("head_scope")] + section("importance")
    if variants:
        lines += ["", "## How heads are ranked: one-shot heads -50% in every layer", "",
                  "Each importance (and calibration size) scores the heads of the unpruned teacher; half of every "
                  "layer's heads go; no recovery. taylor: |dL/dg| of the model's own loss; ablation: each head gated "
                  "off alone, scored by the KL of the outputs to the unpruned model's; magnitude: weight norms.", ""]
        lines += table(["importance", "calibration samples", "one-shot seen / held-out", "prune stage s (eval included)"],
                       [[r["importance"], _samples(r), acc(r["stages"][0]["after"]), f"{r['stages'][0]['seconds']:.0f}"]
                        for r in variants])
    if section("combined"):
        lines += ["", "## Combined chains, stage by stage", ""]
        chain_rows = []
        for r in section("combined"):
            for st in r["stages"]:
                a = st["after"]
                chain_rows.append([r["name"], st["name"] + (" (shared)" if st.get("inherited") else ""),
                                   f"{a['size_bytes']:,}", f"{a['size_bytes'] / tb:.1%}", _mib(a.get("memory_bytes")),
                                   acc(a), kept2(a)])
        lines += table(["chain", "stage", "bytes", "of teacher", "memory", "seen / held-out", "kept seen / held-out"],
                       chain_rows, align=list("llrrrrr"))
    lines += ["", "## Every row: bytes, accuracy, latency", ""]
    lines += table(["row", "bytes", "of teacher", "seen / held-out", "kept seen / held-out", "latency x teacher"],
                   [[r["name"], f"{final(r)['size_bytes']:,}", f"{final(r)['size_bytes'] / tb:.1%}", acc(final(r)),
                     kept2(final(r)), lat_of(r["name"])] for r in rows])
    lines += ["", "## Pareto: accuracy kept vs bytes", "", f"![accuracy kept vs bytes]({plot_name})", "",
              "If you need ... (generated from the frontier: no other row is both smaller and keeps more on the worse "
              "of seen and held-out):", ""]
    lines += table(["if you need", "use", "kept seen / held-out", "worse of the two", "latency x teacher"],
                   [[a["if_you_need"], a["use"], f"{pct(a.get('kept_seen'))} / {pct(a.get('kept_heldout'))}",
                     pct(a["kept"]), "n/a" if a["latency_ratio"] is None else f"{a['latency_ratio']:.2f}x"]
                    for a in results["advice"]], align=list("llrrr"))
    for note in results.get("notes", []):
        lines += ["", note]
    busy = [r["name"] for r in rows if (r.get("load_avg_1m") or 0) > LOADED]
    if busy:
        lines += ["", f"Shared machine: {len(busy)} of {len(rows)} rows ended with a 1-minute load average above "
                  f"{LOADED:g} (other work ran beside the training), so their seconds and samples/s overstate the cost; "
                  "accuracy and bytes are unaffected, latency ratios are timed side by side: "
                  + ", ".join(busy) + "."]
    return "\n".join(lines) + "\n"


def reused_lines(results: dict) -> list[str]:
    """The page's word on rows taken from earlier runs (--reuse): how many, from where, and on which machines every
    row ran (its seconds are that machine's)."""
    rows = results["rows"]
    reused = [r for r in rows if r.get("reused_from")]
    if not reused:
        return []
    machines: dict = {}
    for r in rows:
        machine = r.get("hardware") or results["hardware"]
        machines[machine] = machines.get(machine, 0) + 1
    sources = sorted({r["reused_from"]["file"] for r in reused})
    return [f"- reused rows: {len(reused)} of {len(rows)} rows were measured by earlier runs "
            f"(`--reuse`; where they were measured: {', '.join(f'`{x}`' for x in sources)}) with the same recipe, its "
            "method settings compared in effect, and, stage by stage, the effective settings today's code resolves; "
            "their figures are that run's (latency: timed beside that run's teacher)",
            "- machines: " + "; ".join(f"{n} rows on {m}" for m, n in machines.items())
            + (" (seconds and samples/s compare only between rows of one machine)" if len(machines) > 1 else "")]


def _losses(training) -> str:
    losses = (training or {}).get("losses")
    if not isinstance(losses, dict):
        return "n/a" if losses is None else str(losses)
    return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in losses.items()
                     if not isinstance(v, (int, float)) or v)


def _term(training, name) -> str:
    """A loss term of the last logged step (``last_terms``), with the step it was logged at."""
    terms = (training or {}).get("last_terms") or {}
    return "not distilled" if name not in terms else f"{terms[name]:.4f} (step {terms.get('step')})"


def _num(d, key):
    v = (d or {}).get(key)
    return "n/a" if v is None else f"{v:.0f}"


def _mib(v):
    return "n/a" if v is None else f"{v / 2**20:.2f} MiB"


# ------------------------------------------------------------------------------------------------------------ main
def run_suite(suite: str, s: dict, work: Path, log, reuse: list[dict] | None = None) -> dict:
    from vlmcompress.embedded.blip_captioner import blip_teacher_path
    from vlmcompress.loading import resolve_model_path

    # a suite's trained teacher (TEACHER_RECIPES) comes from the captioner and keeps its config
    teacher_path = blip_teacher_path() if suite.startswith("blip") else resolve_model_path(None)
    teacher_config = json.loads((Path(teacher_path) / "config.json").read_text())
    rows_def = ROWS[suite](s, teacher_config)
    key = ACCURACY[suite]
    work = work / suite
    work.mkdir(parents=True, exist_ok=True)
    plan = json.loads(json.dumps({"suite": suite, "settings": s, "rows": rows_def}))  # as the file reads back
    if (work / "rows.json").is_file() and (work / "done.json").is_file():
        # rows defined as before, with the same settings, count as done; any other row runs (again)
        earlier = json.loads((work / "rows.json").read_text())
        same = {r["name"] for r in earlier["rows"] if earlier["settings"] == plan["settings"] and r in plan["rows"]}
        done = json.loads((work / "done.json").read_text())
        atomic_write_text(work / "done.json", json.dumps({k: v for k, v in done.items() if k in same}, indent=1))
    atomic_write_text(work / "rows.json", json.dumps(plan, indent=1))
    if reuse:  # rows an earlier run measured alike count as done; the child runs the rest
        done = json.loads((work / "done.json").read_text()) if (work / "done.json").is_file() else {}
        if reuse_rows(plan, work, done, reuse, log):
            atomic_write_text(work / "done.json", json.dumps(done, indent=1))
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE")  # training only: this process stays passive for the timing
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(work)], env=env)
    if proc.returncode != 0:
        raise SystemExit(f"benchmarks/run.py: the {suite} rows stopped (exit {proc.returncode}); rerun with the same "
                         f"--work {work.parent} to resume from the last finished row")
    done = json.loads((work / "done.json").read_text())
    rows = [done[r["name"]] for r in rows_def]
    teachers = {json.dumps({k: v for k, v in r["stages"][0]["before"].items() if k != "latency_ms"})
                for r in rows if not r.get("base")}  # the teacher's bytes and accuracy: alike in every row
    if len(teachers) > 1:
        raise SystemExit(f"benchmarks/run.py: the {suite} rows measured {len(teachers)} different teachers (a reused row "
                         "ran with another teacher than today's); rerun without --reuse")
    trained = None
    if suite in TEACHER_RECIPES:
        teacher_path = str(work / TEACHER_DIR)
        step = json.loads((work / TEACHER_DIR / "compression_report.json").read_text())["steps"][0]
        trained = {"recipe": f"recipes/{TEACHER_RECIPES[suite]}", "steps": step.get("max_steps"),
                   "batch_size": step.get("batch_size"), "train_seconds": step.get("train_seconds"),
                   "objective": step.get("objective")}
    teacher = next(r for r in rows if not r.get("base"))["stages"][0]["before"]
    wise = wise_ft_rows(rows, s, WISE_FT[suite], key, log) if suite in WISE_FT else None
    latency = time_final_checkpoints(teacher_path, rows, s, log)
    rows = [{k: v for k, v in r.items() if k not in ("_latency", "_wise_ft")} for r in rows]
    points = pareto_points(rows, teacher, latency, key)
    front = frontier(points)
    return {"suite": suite, "accuracy": key, "default_importance": DEFAULT_IMPORTANCE, "environment": environment(),
            "hardware": hardware(), "settings": s, "teacher": teacher, "rows": rows, "latency": latency,
            "teacher_training": trained, **({"wise_ft": {**WISE_FT[suite], "rows": wise}} if wise is not None else {}),
            "targets": targets(rows, teacher, s["quick"], key, bars=suite == "clip"), "notes": NOTES.get(suite, []),
            "pareto": points, "frontier": [p["name"] for p in front], "advice": advice(front, teacher["size_bytes"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="all", choices=[*SUITES, "all"], help="which suite (default: all)")
    parser.add_argument("--quick", action="store_true", help="shortened rows: shows that every row runs (minutes)")
    parser.add_argument("--out", help="write results and page under this folder (default: benchmarks/results and "
                        "docs/benchmarks)")
    parser.add_argument("--work", help="keep the rows' checkpoints in this folder, and resume an interrupted run from "
                        "it (default: a temporary folder, removed at the end)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the timing (default 2)")
    parser.add_argument("--reuse", nargs="+", metavar="RESULTS", help="take rows from earlier results (an evidence "
                        "results file, or a work folder's done.json) where their recipe and every stage's effective "
                        "settings equal today's: only new or changed rows run; the page names each reused row's "
                        "machine and run")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the training process of one suite
    args = parser.parse_args(argv)
    if args.child:
        return run_rows_child(Path(args.child))
    refuse_active_wait_policy("benchmarks/run.py")
    reuse = reuse_sources(args.reuse) if args.reuse else None  # read before any work: a bad file stops it here
    import torch

    torch.set_num_threads(args.threads)
    s = dict(QUICK if args.quick else FULL, quick=args.quick)
    results_dir = Path(args.out) if args.out else ROOT / "benchmarks" / "results"
    pages_dir = Path(args.out) if args.out else ROOT / "docs" / "benchmarks"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vlmcompress-evidence-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(text):
        print(text, flush=True)

    try:
        for suite in SUITES if args.suite == "all" else [args.suite]:
            started = time.time()
            results = run_suite(suite, s, work, log, reuse)
            results["wall_time_s"] = round(time.time() - started, 1)
            results_dir.mkdir(parents=True, exist_ok=True)
            pages_dir.mkdir(parents=True, exist_ok=True)

            plot_name = f"evidence_{suite}.png"
            plot_pareto(results["pareto"], [p for p in results["pareto"] if p["name"] in results["frontier"]],
                        pages_dir / plot_name, f"{suite.upper()}: accuracy kept vs bytes on disk")
            atomic_write_text(results_dir / f"evidence_{suite}.json", json.dumps(results, indent=1) + "\n")
            atomic_write_text(pages_dir / f"evidence_{suite}.md", render(results, plot_name))
            log(f"{suite}: {len(results['rows'])} rows in {results['wall_time_s']:.0f} s; wrote "
                f"{results_dir / f'evidence_{suite}.json'} and {pages_dir / f'evidence_{suite}.md'}")
            for t in results["targets"]:
                log(f"  target: {t['target']}: {t['value']} ({met_label(t['met'], s['quick'], 'met', 'NOT met')})")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
