"""Importance of attention heads and MLP neurons, as objects separate from the pruner (Torch-Pruning's design).

Scores are ``{"heads": {tower: {layer: [score per head]}}, "neurons": {tower: {layer: [score per neuron]}}}``
in the model's current numbering; higher means more important. They can be saved (``save_scores``) and passed
back in instead of being recomputed.

- ``MagnitudeImportance``: L2 norm of a head's q/k/v rows and out_proj columns (a neuron's fc1 row and fc2 column).
- ``TaylorImportance``: first-order Taylor estimate |dL/dg| of the loss w.r.t. a gate g=1 on each head's (neuron's)
  output, accumulated over calibration batches (Michel et al. 2019, "Are Sixteen Heads Really Better than One?").
  transformers v5 has no head mask, so the gates go in through forward pre-hooks that are removed afterwards and
  leave no trace in the model.
- ``AblationImportance``: each head removed alone (its gate set to 0), scored by how far the model's output moves
  from the unpruned model's on calibration data: the KL of the image-text similarity softmaxes (two-tower models) or
  of the next-token distributions (captioners), the quantity distillation then minimises. Neurons, too many to remove
  one by one, are ranked by Taylor. Zeroth order where Taylor is first order: at the unpruned point the gradient of a
  well-trained model's loss says little about removing a whole head (the evidence page measures both).
- ``FisherImportance``: the empirical Fisher information of the same gates (Kwon et al. 2022, "A Fast Post-Training
  Pruning Framework for Transformers"): the mean over calibration samples of (dL/dg)^2, with a gate per sample, so one
  backward pass per batch gives every sample's gradient. Removing a unit moves its gate from 1 to 0, and the output KL
  that ablation measures is, to second order, half the Fisher times that step squared: ablation's quantity at
  Taylor's cost (linear in calibration batches, not in heads x batches).
- ``RandomImportance``: a seeded baseline.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import torch

from ..adapters import get_adapter
from ..errors import VlmcompressError
from ..utils import progress
from .config import CALIBRATION_SAMPLES, HEAD_SAMPLE_BUDGET


class MagnitudeImportance:
    name = "magnitude"
    needs_data = False

    @torch.no_grad()
    def __call__(self, model, batches=None) -> dict:
        adapter = get_adapter(model)
        heads, neurons = {}, {}
        def squares(linear):
            return linear.weight.float().pow(2)

        for site, i, attn in adapter.head_units():
            heads.setdefault(site, {})[i] = attn.head_sums(squares).sqrt().tolist()
        for tower, i, mlp in adapter.mlp_units():
            neurons.setdefault(tower, {})[i] = mlp.neuron_sums(squares).sqrt().tolist()
        return {"heads": heads, "neurons": neurons}


class RandomImportance:
    name = "random"
    needs_data = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def __call__(self, model, batches=None) -> dict:
        adapter = get_adapter(model)
        rng = np.random.default_rng(self.seed)
        heads, neurons = {}, {}
        for site, i, attn in adapter.head_units():
            heads.setdefault(site, {})[i] = rng.random(attn.num_heads).tolist()
        for tower, i, mlp in adapter.mlp_units():
            neurons.setdefault(tower, {})[i] = rng.random(mlp.num_neurons).tolist()
        return {"heads": heads, "neurons": neurons}


class GateHooks:
    """Gates of ones on every head's and neuron's output, via forward pre-hooks; ``remove()`` leaves no trace."""

    def __init__(self, model):
        self.adapter = get_adapter(model)
        self.head_gates, self.neuron_gates, self._handles = {}, {}, []
        device = self.adapter.device()
        for site, i, attn in self.adapter.head_units():
            g = torch.ones(attn.num_heads, device=device, requires_grad=True)
            self.head_gates[(site, i)] = g
            self._handles.append(attn.out.register_forward_pre_hook(self._hook(g, attn.head_dim)))
        for tower, i, mlp in self.adapter.mlp_units():
            gn = torch.ones(mlp.num_neurons, device=device, requires_grad=True)
            self.neuron_gates[(tower, i)] = gn
            self._handles.append(mlp.down.register_forward_pre_hook(self._hook(gn, 1)))

    @staticmethod
    def _hook(gate, width):
        def pre_hook(module, args):
            x = args[0]
            return (x * gate.repeat_interleave(width).to(x.dtype),) + tuple(args[1:])

        return pre_hook

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles.clear()


class SampleGateHooks(GateHooks):
    """Gates of ones per sample: ``(batch, heads)`` and ``(batch, neurons)``, so that the gradient of a batch's loss
    w.r.t. the gates holds each sample's share (a module that runs k stacked copies of the batch, such as BLIP's
    image-text matching with its negatives, gets the gates repeated k times)."""

    def __init__(self, model, batch_size: int):
        self.batch_size, self._per_sample = batch_size, {}
        super().__init__(model)

    def _hook(self, gate, width):
        per_sample = torch.ones(self.batch_size, gate.numel(), device=gate.device, requires_grad=True)
        self._per_sample[id(gate)] = per_sample
        batch_size = self.batch_size

        def pre_hook(module, args):
            x = args[0]
            rows = x.shape[0]
            if rows % batch_size:
                raise VlmcompressError(f"fisher importance: a layer saw {rows} rows for a batch of {batch_size}; use "
                                       "--importance taylor or ablation for this model")
            g = per_sample.repeat(rows // batch_size, 1).repeat_interleave(width, dim=1).to(x.dtype)
            return (x * g.view(rows, *([1] * (x.dim() - 2)), -1),) + tuple(args[1:])

        return pre_hook

    def per_sample(self, gate):
        return self._per_sample[id(gate)]


@contextlib.contextmanager
def _frozen_eval(model):
    """The model in eval mode with no parameter requiring grad (gradients flow to the gates only), put back after."""
    was_training = model.training
    requires = {p: p.requires_grad for p in model.parameters()}
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, r in requires.items():
            p.requires_grad_(r)
        model.train(was_training)


class FisherImportance:
    name = "fisher"
    needs_data = True
    default_samples = CALIBRATION_SAMPLES["fisher"]

    def __call__(self, model, batches=None) -> dict:
        if not batches:
            raise VlmcompressError("fisher importance needs calibration batches (see calibration_batches)")
        adapter = get_adapter(model)
        sums, samples = {}, 0
        with _frozen_eval(model):
            for batch in progress(batches, desc="fisher importance", leave=False):
                size = len(batch["input_ids"] if batch.get("input_ids") is not None else batch["pixel_values"])
                gates = SampleGateHooks(model, size)
                try:
                    units = [("heads", k, g) for k, g in gates.head_gates.items()]
                    units += [("neurons", k, g) for k, g in gates.neuron_gates.items()]
                    loss = adapter.training_loss(**batch)
                    grads = torch.autograd.grad(loss, [gates.per_sample(g) for _, _, g in units], allow_unused=True)
                finally:
                    gates.remove()
                for (kind, key, _), grad in zip(units, grads):
                    if grad is not None:
                        square = grad.detach().float().pow(2).sum(0)
                        sums[(kind, key)] = square if (kind, key) not in sums else sums[(kind, key)] + square
                samples += size
        out = {"heads": {}, "neurons": {}}
        for (kind, (tower, i)), total in sums.items():
            out[kind].setdefault(tower, {})[i] = (total / samples).tolist()
        return out


class TaylorImportance:
    name = "taylor"
    needs_data = True
    default_samples = CALIBRATION_SAMPLES["taylor"]

    def __call__(self, model, batches=None) -> dict:
        if not batches:
            raise VlmcompressError("Taylor importance needs calibration batches (see calibration_batches)")
        adapter = get_adapter(model)
        gates = GateHooks(model)
        head_acc = {k: torch.zeros_like(g) for k, g in gates.head_gates.items()}
        neuron_acc = {k: torch.zeros_like(g) for k, g in gates.neuron_gates.items()}
        keys = list(gates.head_gates) + list(gates.neuron_gates)
        params = list(gates.head_gates.values()) + list(gates.neuron_gates.values())
        n_heads = len(gates.head_gates)
        try:
            with _frozen_eval(model):
                for batch in progress(batches, desc="taylor importance", leave=False):
                    grads = torch.autograd.grad(adapter.training_loss(**batch), params, allow_unused=True)
                    for j, (key, grad) in enumerate(zip(keys, grads)):
                        if grad is not None:
                            (head_acc if j < n_heads else neuron_acc)[key] += grad.detach().abs()
        finally:
            gates.remove()
        heads, neurons = {}, {}
        for (tower, i), acc in head_acc.items():
            heads.setdefault(tower, {})[i] = (acc / len(batches)).tolist()
        for (tower, i), acc in neuron_acc.items():
            neurons.setdefault(tower, {})[i] = (acc / len(batches)).tolist()
        return {"heads": heads, "neurons": neurons}


def _output_kl(adapter, ref, out) -> float:
    """KL(unpruned || gated) of the outputs distillation compares: next-token distributions (captioners, padding
    excluded) or the image-text similarity softmaxes in both directions (two-tower models)."""
    from ..objectives import similarity_kl_loss, similarity_logits, token_kl_loss

    if ref.token_logits is not None:
        return token_kl_loss(out.token_logits, ref.token_logits, mask=ref.token_mask).item()
    return similarity_kl_loss(similarity_logits(out.image_embeds, out.text_embeds, out.logit_scale),
                              similarity_logits(ref.image_embeds, ref.text_embeds, ref.logit_scale)).item()


class _Replay:
    """The outputs of modules recorded in one forward pass, handed back in call order by later passes on the same
    inputs instead of running those modules: gating a head off cannot change the layers before it, nor a tower that
    does not read the gated one, so an ablation pass runs only what the gate can move."""

    def __init__(self, modules):
        self.modules = list(modules)
        self.outputs: dict = {}

    @contextlib.contextmanager
    def recording(self):
        self.outputs = {id(m): [] for m in self.modules}
        handles = [m.register_forward_hook(lambda mod, args, out, key=id(m): self.outputs[key].append(_shallow(out)))
                   for m in self.modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def replaying(self, modules):
        calls = {}
        for m in modules:
            recorded = self.outputs[id(m)]
            calls[id(m)] = iter(recorded)
            # an instance attribute, deleted below; a fresh container each call, as callers reassign its fields
            # (CLIP's get_image_features replaces pooler_output with its projection)
            m.forward = lambda *args, _calls=calls[id(m)], **kwargs: _shallow(next(_calls))
        try:
            yield
        finally:
            for m in modules:
                del m.forward
        if any(next(c, None) is not None for c in calls.values()):
            raise RuntimeError("ablation importance: a replayed module was called fewer times than when recorded")


def _shallow(output):
    """A new container holding the same tensors: a transformers ModelOutput, a tuple or list, or a tensor itself."""
    if isinstance(output, dict):
        return type(output)(**output)
    if isinstance(output, (tuple, list)):
        return type(output)(output)
    return output


def _unchanged_by(adapter, tower: str, layer: int) -> list:
    """The modules whose outputs gating a head of ``tower``'s layer ``layer`` cannot change: the layers before it and
    every tower that does not read ``tower`` (directly or through another tower)."""
    towers = adapter.towers()
    moved = {tower}
    while True:
        more = {t for t in towers if t not in moved and moved & set(adapter.tower_reads(t))}
        if not more:
            break
        moved |= more
    gated = towers[tower]
    whole = [module for name, module in towers.items() if name not in moved
             and not any(m is gated for m in module.modules()) and not any(m is module for m in gated.modules())]
    return list(adapter.layers(tower))[:layer] + whole


class AblationImportance:
    """A head's score: the mean output KL (``_output_kl``) on the calibration batches when it alone is gated off.
    One forward pass per head and batch, of the part of the model the head can change (the layers before it and the
    towers that do not read its tower are replayed from the batch's reference pass); neuron scores come from
    ``TaylorImportance`` on the same batches."""

    name = "ablation"
    needs_data = True
    default_samples = CALIBRATION_SAMPLES["ablation"]
    #: the default sample count's cap where heads are many: heads x samples stays within this many single-sample
    #: passes (512 samples up to 64 heads; ViT-B/32's 240 heads: 128 samples; benchmarks/real_size.py --importance-cost)
    head_sample_budget = HEAD_SAMPLE_BUDGET

    def __init__(self, score_heads: bool = True, replay: bool = True):
        self.score_heads = score_heads  # False: neuron scores only (no head is to be removed)
        self.replay = replay  # False: every pass runs the whole model (same scores, slower; kept for the tests)

    @torch.no_grad()
    def _head_scores(self, model, batches) -> dict:
        adapter = get_adapter(model)
        was_training = model.training
        model.eval()
        gates = GateHooks(model)
        towers = adapter.towers()
        sites = adapter.head_sites()
        replay = _Replay({id(m): m for name in towers for m in [towers[name], *adapter.layers(name)]}.values())
        try:
            units = [(key, h) for key, g in gates.head_gates.items() for h in range(g.numel())]
            skipped = {(site, i): _unchanged_by(adapter, sites[site], i) if self.replay else []
                       for site, i in gates.head_gates}
            totals = {key: [0.0] * g.numel() for key, g in gates.head_gates.items()}
            bar = progress(total=len(units) * len(batches), desc="ablation importance (heads)", leave=False)
            for batch in batches:
                with replay.recording():
                    ref = adapter.features(model, **_inputs(batch))
                for (site, i), h in units:
                    gate = gates.head_gates[(site, i)]
                    gate[h] = 0.0
                    try:
                        with replay.replaying(skipped[(site, i)]):
                            out = adapter.features(model, **_inputs(batch))
                    finally:
                        gate[h] = 1.0
                    totals[(site, i)][h] += _output_kl(adapter, ref, out)
                    bar.update()
            bar.close()
        finally:
            gates.remove()
            model.train(was_training)
        heads: dict = {}
        for (site, i), kl in totals.items():
            heads.setdefault(site, {})[i] = [k / len(batches) for k in kl]
        return heads

    def __call__(self, model, batches=None) -> dict:
        if not batches:
            raise VlmcompressError("ablation importance needs calibration batches (see calibration_batches)")
        taylor = TaylorImportance()(model, batches)
        return {"heads": self._head_scores(model, batches) if self.score_heads else taylor["heads"],
                "neurons": taylor["neurons"]}


def default_samples(name: str, model=None, batch_size: int = 32, score_heads: bool = True) -> int:
    """The calibration sample count importance ``name`` uses when none is given: its ``default_samples``; for ablation
    scoring the heads of ``model``, cut so that heads x samples stays within ``head_sample_budget`` (in whole batches
    of ``batch_size``, at least one), as its cost is a forward pass per head and batch."""
    criterion = IMPORTANCE.get(name)
    samples = getattr(criterion, "default_samples", CALIBRATION_SAMPLES["taylor"])
    budget = getattr(criterion, "head_sample_budget", None)
    if budget and score_heads and model is not None:
        heads = sum(attn.num_heads for _, _, attn in get_adapter(model).head_units())
        if heads:
            samples = min(samples, max(batch_size, budget // heads // batch_size * batch_size))
    return samples


def _inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask") if batch.get(k) is not None}


IMPORTANCE = {"magnitude": MagnitudeImportance, "taylor": TaylorImportance, "ablation": AblationImportance,
              "fisher": FisherImportance, "random": RandomImportance}


def get_importance(name_or_obj):
    if not isinstance(name_or_obj, str):
        return name_or_obj
    try:
        return IMPORTANCE[name_or_obj]()
    except KeyError:
        raise VlmcompressError(f"unknown importance {name_or_obj!r}: expected one of {', '.join(IMPORTANCE)}") from None


def calibration_batches(processor, dataset=None, num_samples: int = CALIBRATION_SAMPLES["taylor"], batch_size: int = 32, seed: int = 0,
                        image_column="image", text_column="text", label_column="label", text_padding=None):
    """Batches of model inputs (and labels, when the data has them) for importance scoring.

    Default: ``num_samples`` images of the embedded digits *training* split (never the test split).
    """
    from ..embedded import digits
    from ..evaluation import check_dataset

    if dataset is None:
        per_number = max(1, -(-num_samples // len(digits.SEEN_NUMBERS)))
        dataset = digits.load_digits_dataset("train", images_per_number=per_number)
    check_dataset(dataset, image_column, text_column, label_column if label_column in dataset.column_names else text_column)
    order = np.random.default_rng(seed).permutation(len(dataset))[:num_samples]
    subset = dataset.select(order.tolist())
    image_processor = getattr(processor, "image_processor", processor)
    tokenizer = getattr(processor, "tokenizer", processor)
    text_padding = text_padding or {"padding": True}
    batches = []
    for start in range(0, len(subset), batch_size):
        rows = subset[start:start + batch_size]
        enc = tokenizer(rows[text_column], truncation=True, return_tensors="pt", **text_padding)
        batch = {
            "pixel_values": image_processor(images=rows[image_column], return_tensors="pt")["pixel_values"],
            "input_ids": enc["input_ids"],
            "attention_mask": enc.get("attention_mask"),
        }
        if label_column in rows:
            batch["labels"] = torch.as_tensor(rows[label_column])
        batches.append(batch)
    return batches


def save_scores(scores: dict, path) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps({k: {t: {str(i): v for i, v in layers.items()} for t, layers in s.items()}
                                        for k, s in scores.items()}) + "\n")


def load_scores(path) -> dict:
    data = json.loads(Path(path).read_text())
    return {k: {t: {int(i): v for i, v in layers.items()} for t, layers in s.items()} for k, s in data.items()}


def _select(scores_by_tower: dict, ratio: float, scope: str, min_keep: int = 1) -> dict:
    """Choose the lowest-scoring units to remove: ``ratio`` of all units (global, per tower, after normalizing each
    layer's scores by their L2 norm as Michel et al. do) or of each layer (per_layer). A layer keeps ``min_keep``."""
    if not 0 <= ratio < 1:
        raise VlmcompressError(f"a pruning ratio is a fraction in [0, 1), got {ratio}")
    if scope not in ("global", "per_layer"):
        raise VlmcompressError(f"scope must be 'global' or 'per_layer', got {scope!r}")
    plan: dict = {}
    for tower, layers in scores_by_tower.items():
        layers = {int(i): np.asarray(v, dtype=np.float64) for i, v in layers.items()}
        if scope == "per_layer":
            for i, s in layers.items():
                k = min(int(round(ratio * len(s))), len(s) - min_keep)
                if k > 0:
                    plan.setdefault(tower, {})[i] = sorted(np.argsort(s, kind="stable")[:k].tolist())
            continue
        total = sum(len(s) for s in layers.values())
        k = int(round(ratio * total))
        candidates = []
        for i, s in layers.items():
            norm = np.linalg.norm(s) or 1.0
            order = np.argsort(s, kind="stable")
            # a layer's best min_keep units are never candidates, so no layer is emptied
            for j in order[:len(s) - min_keep]:
                candidates.append((s[j] / norm, i, int(j)))
        candidates.sort()
        for _, i, j in candidates[:k]:
            plan.setdefault(tower, {}).setdefault(i, []).append(j)
        for i in plan.get(tower, {}):
            plan[tower][i].sort()
    return plan


@torch.no_grad()
def hidden_magnitude(model, towers) -> dict:
    """Per tower, one score per hidden (residual-stream) dimension: over every tensor on the stream, the squared norm
    of the slice through that dimension divided by the tensor's mean, summed (scale-free across tensors)."""
    adapter = get_adapter(model)
    out = {}
    for tower in towers:
        total = None
        for module, name, axis in adapter.hidden_parts(tower):
            t = getattr(module, name).detach().float()
            per = t.pow(2).sum(dim=[d for d in range(t.dim()) if d != axis]) if t.dim() > 1 else t.pow(2)
            per = per / per.mean().clamp_min(1e-12)
            total = per if total is None else total + per.to(total.device)
        out[tower] = total.cpu().numpy()
    return out


def select_hidden(scores: dict, keep: dict) -> dict:
    """{tower: the dimensions to remove}: all but the ``keep[tower]`` best-scored of each tower."""
    return {tower: sorted(np.argsort(scores[tower], kind="stable")[:len(scores[tower]) - n].tolist())
            for tower, n in keep.items() if n < len(scores[tower])}


def select_heads(scores: dict, ratio: float, scope: str = "global", towers=None) -> dict:
    heads = {t: v for t, v in scores["heads"].items() if towers is None or t in towers}
    return _select(heads, ratio, scope)


def select_neurons(scores: dict, ratio: float, scope: str = "per_layer", towers=None) -> dict:
    neurons = {t: v for t, v in scores["neurons"].items() if towers is None or t in towers}
    return _select(neurons, ratio, scope)


@torch.no_grad()
def block_influence(model, batches) -> dict:
    """Per tower, per layer: mean over tokens of 1 - cos(layer input, layer output) on calibration data (ShortGPT)."""
    adapter = get_adapter(model)
    sums, counts, handles = {}, {}, []
    for tower, i, layer in adapter.layer_units():
        def hook(module, args, output, key=(tower, i)):
            x = args[0] if args else None
            y = output[0] if isinstance(output, tuple) else output
            if x is None:
                return
            cos = torch.nn.functional.cosine_similarity(x.float(), y.float(), dim=-1)
            sums[key] = sums.get(key, 0.0) + (1 - cos).sum().item()
            counts[key] = counts.get(key, 0) + cos.numel()

        handles.append(layer.register_forward_hook(hook))
    model.eval()
    try:
        for batch in batches:
            adapter.image_embeddings(batch["pixel_values"].to(adapter.device()))
            mask = batch.get("attention_mask")
            adapter.text_embeddings(batch["input_ids"].to(adapter.device()), None if mask is None else mask.to(adapter.device()))
    finally:
        for h in handles:
            h.remove()
    out: dict = {}
    for (tower, i), s in sums.items():
        out.setdefault(tower, {})[i] = s / counts[(tower, i)]
    return out


def select_layers(model, strategy: str, *, keep_every: int | None = None, num_remove: dict | None = None,
                  batches=None, towers=None) -> dict:
    """Layers to drop: ``every_k`` keeps layers 0, k, 2k, ...; ``block_influence`` drops the ``num_remove[tower]``
    layers that change their input least."""
    adapter = get_adapter(model)
    names = [t for t in adapter.towers() if towers is None or t in towers]
    if strategy == "every_k":
        if not keep_every or keep_every < 1:
            raise VlmcompressError("the every_k strategy needs keep_every >= 1")
        return {t: [i for i in range(len(adapter.layers(t))) if i % keep_every] for t in names}
    if strategy == "block_influence":
        if not batches:
            raise VlmcompressError("the block_influence strategy needs calibration batches")
        influence = block_influence(model, batches)
        plan = {}
        for t in names:
            n = (num_remove or {}).get(t, 0)
            if n >= len(adapter.layers(t)):
                raise VlmcompressError(f"cannot remove {n} of the {len(adapter.layers(t))} {t} layers: keep at least one")
            order = sorted(influence[t], key=lambda i: influence[t][i])
            plan[t] = sorted(order[:n])
        return plan
    raise VlmcompressError(f"unknown layer strategy {strategy!r}: expected every_k or block_influence")
