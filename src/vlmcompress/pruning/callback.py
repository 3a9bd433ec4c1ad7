"""``PruningCallback``: gradual structural pruning while a ``transformers.Trainer`` fine-tunes or distills.

- Importance is accumulated over training steps: first-order Taylor |sum(w * dL/dw)| over each head's (neuron's)
  weights, read in ``on_pre_optimizer_step`` (gradients are final there, and identical on every rank under DDP).
- Sparsity rises on the cubic schedule of Zhu & Gupta (2017) from ``start_step`` to ``end_step``.
- While training, pruned heads and neurons are *masked*: their weights are zeroed after every optimizer step, so the
  optimizer keeps working on the same live parameters (swapping Linears mid-training would drop them from the
  optimizer and break the LR scheduler).
- At ``on_train_end`` the masked units are sliced out physically, so ``trainer.save_model()`` writes a small model;
  ``report_steps`` holds the report steps (original numbering) for ``compression_report.json``.

Only public Trainer hooks are used.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from ..adapters import get_adapter
from ..errors import VlmcompressError
from ..modeling import make_self_describing
from .importance import _select
from .structural import prune_heads, prune_mlp


def cubic_sparsity(step: int, final: float, start_step: int, end_step: int) -> float:
    """Zhu & Gupta: s_t = s_f * (1 - (1 - (t - t0) / (t1 - t0))^3), 0 before t0 and s_f after t1."""
    if step <= start_step:
        return 0.0
    if step >= end_step:
        return final
    progress = (step - start_step) / max(1, end_step - start_step)
    return final * (1 - (1 - progress) ** 3)


def _weight_times_grad(linear):
    """First-order Taylor term of a Linear's weights (summed per head or neuron, it scores the unit)."""
    return linear.weight * linear.weight.grad


class PruningCallback(TrainerCallback):
    """``PruningCallback(PruningConfig(head_ratio=0.5, mlp_ratio=0.25), start_step=100, end_step=800)``.

    The config says what to remove (ratios, scopes, towers, head sites) as for one-shot ``prune_model``; importance
    is always the first-order Taylor score accumulated over training steps. The keyword arguments say when.
    """

    def __init__(self, config=None, *, start_step: int = 0, end_step: int | None = None, update_every: int = 10,
                 score_decay: float = 0.9, **config_fields):
        from .config import PruningConfig

        if config is None:  # PruningCallback(head_ratio=0.5, ...): the config's fields as keywords
            try:
                config = PruningConfig(**config_fields)
            except TypeError as exc:
                raise VlmcompressError(f"PruningCallback: {exc}") from None
        elif config_fields:
            raise VlmcompressError(f"PruningCallback takes a PruningConfig or its fields, not both "
                                   f"({', '.join(sorted(config_fields))})")
        if not (config.head_ratio or config.mlp_ratio) or config.head_plan or config.mlp_plan or config.drop_layers \
                or config.layer_strategy:
            raise VlmcompressError("PruningCallback prunes gradually by ratio: set head_ratio and/or mlp_ratio (plans "
                                   "and layer dropping are one-shot: use prune_model)")
        if config.importance not in ("taylor", PruningConfig.importance):  # the default: whatever the config says
            raise VlmcompressError("PruningCallback scores units by Taylor importance accumulated while training: "
                                   f"importance must be 'taylor' (or left at its default), got {config.importance!r}")
        if start_step < 0 or (end_step is not None and end_step <= start_step):
            raise VlmcompressError(f"PruningCallback needs 0 <= start_step < end_step, got {start_step} and {end_step}")
        self.config = config
        self.head_ratio, self.mlp_ratio = config.head_ratio, config.mlp_ratio
        self.head_scope, self.mlp_scope = config.head_scope, config.mlp_scope
        self.start_step, self.end_step, self.update_every = start_step, end_step, max(1, update_every)
        self.score_decay = score_decay
        self.towers: list | None = None  # resolved against the model at on_train_begin
        self.sites: list | None = None
        self.head_scores: dict = {}
        self.neuron_scores: dict = {}
        self.head_masks: dict = {}
        self.neuron_masks: dict = {}
        self.report_steps: list[dict] = []
        self.sparsity_log: list[dict] = []

    # --- helpers ---------------------------------------------------------------------------------------------
    def _head_units(self, model):
        return get_adapter(model).head_units(self.sites)

    def _mlp_units(self, model):
        return get_adapter(model).mlp_units(self.towers)

    @staticmethod
    def _accumulate(store, key, value, decay):
        store[key] = value if key not in store else decay * store[key] + (1 - decay) * value

    @torch.no_grad()
    def _apply_masks(self, model):
        for site, i, attn in self._head_units(model):
            hm = self.head_masks.get((site, i))
            if hm is not None and not hm.all():
                for role, lin in attn.inputs():
                    rows = attn.row_mask(role, hm).to(lin.weight.device)
                    lin.weight.mul_(rows[:, None].to(lin.weight.dtype))
                    if lin.bias is not None:
                        lin.bias.mul_(rows.to(lin.bias.dtype))
                cols = attn.row_mask("out", hm).to(attn.out.weight.device)
                attn.out.weight.mul_(cols[None, :].to(attn.out.weight.dtype))
        for tower, i, mlp in self._mlp_units(model):
            nm = self.neuron_masks.get((tower, i))
            if nm is not None and not nm.all():
                nm = nm.to(mlp.down.weight.device)
                for up in mlp.up:
                    up.weight.mul_(nm[:, None].to(up.weight.dtype))
                    if up.bias is not None:
                        up.bias.mul_(nm.to(up.bias.dtype))
                mlp.down.weight.mul_(nm[None, :].to(mlp.down.weight.dtype))

    def _select_masks(self, scores, masks, ratio, scope, min_keep=1):
        by_tower: dict = {}
        for (tower, i), s in scores.items():
            s = s.clone().float()
            s[~masks[(tower, i)]] = -1.0  # already masked: stays masked (scores are >= 0)
            by_tower.setdefault(tower, {})[i] = s.tolist()
        plan = _select(by_tower, ratio, scope, min_keep)
        for key, mask in masks.items():
            mask.fill_(True)
            for j in plan.get(key[0], {}).get(key[1], []):
                mask[j] = False

    # --- Trainer hooks ---------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from .config import resolve_targets

        self.towers, self.sites = resolve_targets(get_adapter(model), self.config)
        if self.end_step is None:
            self.end_step = max(self.start_step + 1, int(0.8 * state.max_steps))
        for site, i, attn in self._head_units(model):
            self.head_masks[(site, i)] = torch.ones(attn.num_heads, dtype=torch.bool)
        for tower, i, mlp in self._mlp_units(model):
            self.neuron_masks[(tower, i)] = torch.ones(mlp.num_neurons, dtype=torch.bool)

    @torch.no_grad()
    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        for site, i, attn in self._head_units(model):
            if self.head_ratio and attn.out.weight.grad is not None:
                wg = attn.head_sums(_weight_times_grad)
                self._accumulate(self.head_scores, (site, i), wg.abs().float().cpu(), self.score_decay)
        for tower, i, mlp in self._mlp_units(model):
            if self.mlp_ratio and mlp.down.weight.grad is not None:
                wg = mlp.neuron_sums(_weight_times_grad)
                self._accumulate(self.neuron_scores, (tower, i), wg.abs().float().cpu(), self.score_decay)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step >= self.start_step and (step % self.update_every == 0 or step >= self.end_step):
            heads_target = cubic_sparsity(step, self.head_ratio, self.start_step, self.end_step)
            mlp_target = cubic_sparsity(step, self.mlp_ratio, self.start_step, self.end_step)
            if self.head_ratio and self.head_scores:
                self._select_masks(self.head_scores, self.head_masks, heads_target, self.head_scope)
            if self.mlp_ratio and self.neuron_scores:
                self._select_masks(self.neuron_scores, self.neuron_masks, mlp_target, self.mlp_scope)
            self.sparsity_log.append({"step": step, "head_sparsity": heads_target, "mlp_sparsity": mlp_target})
        self._apply_masks(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        head_plan, neuron_plan = {}, {}
        for (tower, i), mask in self.head_masks.items():
            removed = (~mask).nonzero().flatten().tolist()
            if removed:
                head_plan.setdefault(tower, {})[i] = removed
        for (tower, i), mask in self.neuron_masks.items():
            removed = (~mask).nonzero().flatten().tolist()
            if removed:
                neuron_plan.setdefault(tower, {})[i] = removed
        schedule = {"schedule": "cubic", "start_step": self.start_step, "end_step": self.end_step,
                    "update_every": self.update_every, "importance": "taylor_accumulated"}
        if head_plan:
            step = prune_heads(model, head_plan)
            step.update(ratio=self.head_ratio, scope=self.head_scope, **schedule)
            self.report_steps.append(step)
        if neuron_plan:
            step = prune_mlp(model, neuron_plan)
            step.update(ratio=self.mlp_ratio, scope=self.mlp_scope, **schedule)
            self.report_steps.append(step)
        # Trainer.save_model() now writes a folder that reloads (remote code where the shapes need it)
        make_self_describing(model)
