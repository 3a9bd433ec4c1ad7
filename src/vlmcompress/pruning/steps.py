"""The report steps pruning writes (``head_pruning``, ``mlp_pruning``, ``layer_pruning``, ``hidden_pruning``):
their card titles, checks, card sentences and citations (see ``vlmcompress.steps``)."""

from __future__ import annotations

from ..report import check_int_list, check_per_layer, known_sites
from ..steps import Citation, StepKind, register_step_kind

MICHEL2019 = Citation("michel2019", "attention-head pruning with gradient (Taylor) importance", """@inproceedings{michel2019sixteen,
  title     = {Are Sixteen Heads Really Better than One?},
  author    = {Michel, Paul and Levy, Omer and Neubig, Graham},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2019}
}""")
MOLCHANOV2017 = Citation("molchanov2017", "first-order Taylor importance of structures", """@inproceedings{molchanov2017pruning,
  title     = {Pruning Convolutional Neural Networks for Resource Efficient Inference},
  author    = {Molchanov, Pavlo and Tyree, Stephen and Karras, Tero and Aila, Timo and Kautz, Jan},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2017}
}""")
ZHU2017 = Citation("zhu2017", "gradual pruning on a cubic sparsity schedule", """@article{zhu2017prune,
  title   = {To prune, or not to prune: exploring the efficacy of pruning for model compression},
  author  = {Zhu, Michael and Gupta, Suyog},
  journal = {arXiv preprint arXiv:1710.01878},
  year    = {2017}
}""")
SHORTGPT = Citation("shortgpt", "dropping the layers that change their input least (block influence)", """@article{men2024shortgpt,
  title   = {ShortGPT: Layers in Large Language Models are More Redundant Than You Expect},
  author  = {Men, Xin and Xu, Mingyu and Zhang, Qingyu and Wang, Bingning and Lin, Hongyu and Lu, Yaojie and Han, Xianpei and Chen, Weipeng},
  journal = {arXiv preprint arXiv:2403.03853},
  year    = {2024}
}""")
KWON2022 = Citation("kwon2022", "head and neuron importance from the Fisher information of their gates", """@inproceedings{kwon2022fast,
  title     = {A Fast Post-Training Pruning Framework for Transformers},
  author    = {Kwon, Woosuk and Kim, Sehoon and Mahoney, Michael W. and Hassoun, Joseph and Keutzer, Kurt and Gholami, Amir},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}""")


def _schedule(step) -> list:
    return [ZHU2017] if step.get("schedule") == "cubic" else []


def _head_citations(step) -> list:
    importance = str(step.get("importance") or "")
    cited = [MICHEL2019] if importance.startswith(("taylor", "ablation")) else []
    cited += [KWON2022] if importance.startswith("fisher") else []
    cited += [MOLCHANOV2017] if importance.startswith("taylor") else []
    return cited + _schedule(step)


def _mlp_citations(step) -> list:
    importance = str(step.get("importance") or "")
    cited = [KWON2022] if importance.startswith("fisher") else []
    cited += [MOLCHANOV2017] if importance.startswith(("taylor", "ablation")) else []
    return cited + _schedule(step)


def _layer_citations(step) -> list:
    return _schedule(step) + ([SHORTGPT] if step.get("strategy") == "block_influence" else [])


def _per_layer_lines(per_tower, unit, fmt) -> list[str]:
    lines = []
    for tower, layers in (per_tower or {}).items():
        if not isinstance(layers, dict):
            continue
        items = sorted(((int(k), v) for k, v in layers.items() if str(k).isdigit() and isinstance(v, list)))
        total = sum(len(v) for _, v in items)
        if unit == "head":
            detail = "; ".join(f"layer {i}: {fmt.plural(len(v), 'head')} ({', '.join(map(str, v))})" for i, v in items)
        else:
            detail = "; ".join(f"layer {i}: {len(v)}" for i, v in items)
        lines.append(f"{tower} tower: {fmt.plural(total, unit)} removed in {fmt.plural(len(items), 'layer')} — {detail}")
    return lines


def _pruned(step) -> list[str]:
    return ["pruned"]


def _per_layer_kind(method, title, key, unit, citations) -> StepKind:
    return StepKind(method, title,
                    validate=lambda step, where, problems: check_per_layer(f"{where}.{key}", step.get(key), problems),
                    describe=lambda step, fmt: (_per_layer_lines(step.get(key), unit, fmt), {key}),
                    citations=citations, tags=_pruned)


def _check_layers(step, where, problems):
    removed = step.get("removed_layers")
    if not isinstance(removed, dict):
        problems.append(f"{where}.removed_layers must map tower names to lists of layer numbers")
        return
    for tower, layers in removed.items():
        if tower not in known_sites():
            problems.append(f"{where}.removed_layers has unknown tower {tower!r}")
        check_int_list(f"{where}.removed_layers.{tower}", layers, problems)


def _describe_layers(step, fmt):
    lines = [f"{tower} tower: {fmt.plural(len(layers), 'layer')} removed ({', '.join(map(str, layers))}, numbered as "
             "in the base model)" for tower, layers in (step.get("removed_layers") or {}).items() if isinstance(layers, list)]
    return lines, {"removed_layers"}


register_step_kind(_per_layer_kind("head_pruning", "Attention-head pruning", "removed_heads", "head", _head_citations))
register_step_kind(_per_layer_kind("mlp_pruning", "MLP-neuron pruning", "removed_neurons", "neuron", _mlp_citations))
register_step_kind(StepKind("layer_pruning", "Layer pruning", validate=_check_layers, describe=_describe_layers,
                            citations=_layer_citations, tags=_pruned))
register_step_kind(StepKind("hidden_pruning", "Hidden pruning", citations=_schedule, tags=_pruned))
