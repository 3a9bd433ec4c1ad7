"""BibTeX of the models and methods a card names; ``citations_for(report)`` picks those a run used."""

from __future__ import annotations

BIBTEX = {
    "michel2019": """@inproceedings{michel2019sixteen,
  title     = {Are Sixteen Heads Really Better than One?},
  author    = {Michel, Paul and Levy, Omer and Neubig, Graham},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2019}
}""",
    "molchanov2017": """@inproceedings{molchanov2017pruning,
  title     = {Pruning Convolutional Neural Networks for Resource Efficient Inference},
  author    = {Molchanov, Pavlo and Tyree, Stephen and Karras, Tero and Aila, Timo and Kautz, Jan},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2017}
}""",
    "zhu2017": """@article{zhu2017prune,
  title   = {To prune, or not to prune: exploring the efficacy of pruning for model compression},
  author  = {Zhu, Michael and Gupta, Suyog},
  journal = {arXiv preprint arXiv:1710.01878},
  year    = {2017}
}""",
    "shortgpt": """@article{men2024shortgpt,
  title   = {ShortGPT: Layers in Large Language Models are More Redundant Than You Expect},
  author  = {Men, Xin and Xu, Mingyu and Zhang, Qingyu and Wang, Bingning and Lin, Hongyu and Lu, Yaojie and Han, Xianpei and Chen, Weipeng},
  journal = {arXiv preprint arXiv:2403.03853},
  year    = {2024}
}""",
    "llm_int8": """@inproceedings{dettmers2022llmint8,
  title     = {LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale},
  author    = {Dettmers, Tim and Lewis, Mike and Belkada, Younes and Zettlemoyer, Luke},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}""",
    "qlora": """@inproceedings{dettmers2023qlora,
  title     = {QLoRA: Efficient Finetuning of Quantized LLMs},
  author    = {Dettmers, Tim and Pagnoni, Artidoro and Holtzman, Ari and Zettlemoyer, Luke},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023}
}""",
    "lora": """@inproceedings{hu2022lora,
  title     = {LoRA: Low-Rank Adaptation of Large Language Models},
  author    = {Hu, Edward J. and Shen, Yelong and Wallis, Phillip and Allen-Zhu, Zeyuan and Li, Yuanzhi and Wang, Shean and Wang, Lu and Chen, Weizhu},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2022}
}""",
    "hinton2015": """@article{hinton2015distilling,
  title   = {Distilling the Knowledge in a Neural Network},
  author  = {Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff},
  journal = {arXiv preprint arXiv:1503.02531},
  year    = {2015}
}""",
    "tinyclip": """@inproceedings{wu2023tinyclip,
  title     = {TinyCLIP: CLIP Distillation via Affinity Mimicking and Weight Inheritance},
  author    = {Wu, Kan and Peng, Houwen and Zhou, Zhenghong and Xiao, Bin and Liu, Mengchen and Yuan, Lu and Xuan, Hong and Valenzuela, Michael and Chen, Xi (Stephen) and Wang, Xinggang and Chao, Hongyang and Hu, Han},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2023}
}""",
    "clip_kd": """@inproceedings{yang2024clipkd,
  title     = {CLIP-KD: An Empirical Study of CLIP Model Distillation},
  author    = {Yang, Chuanguang and An, Zhulin and Huang, Libo and Bi, Junyu and Yu, Xinqiang and Yang, Han and Diao, Boyu and Xu, Yongjun},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2024}
}""",
    "kwon2022": """@inproceedings{kwon2022fast,
  title     = {A Fast Post-Training Pruning Framework for Transformers},
  author    = {Kwon, Woosuk and Kim, Sehoon and Mahoney, Michael W. and Hassoun, Joseph and Keutzer, Kurt and Gholami, Amir},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}""",
}

#: why a card cites each entry (shown above the BibTeX)
WHAT = {
    "michel2019": "attention-head pruning with gradient (Taylor) importance",
    "molchanov2017": "first-order Taylor importance of structures",
    "zhu2017": "gradual pruning on a cubic sparsity schedule",
    "shortgpt": "dropping the layers that change their input least (block influence)",
    "llm_int8": "8-bit quantization (bitsandbytes LLM.int8())",
    "qlora": "4-bit NF4 quantization and double quantization (QLoRA)",
    "lora": "low-rank adapters",
    "hinton2015": "knowledge distillation with temperature-softened targets",
    "tinyclip": "affinity (similarity-matrix) mimicking for CLIP distillation",
    "clip_kd": "feature and interactive-contrastive distillation of CLIP embeddings",
    "kwon2022": "head and neuron importance from the Fisher information of their gates",
}


def _truthy_weight(losses, *names):
    return any(isinstance(losses.get(n), (int, float)) and losses.get(n) > 0 for n in names)


def citations_for(report: dict) -> list[dict]:
    """[{"key", "what", "bibtex"}] for the model family and every method in the report, in order, no repeats."""
    from ..adapters import adapter_for_family

    keys = []
    adapter = adapter_for_family(str(report.get("model_family") or ""))
    family_entry = adapter.citation if adapter is not None else None
    if family_entry:
        keys.append("family")
    for step in report.get("steps") or []:
        if not isinstance(step, dict):
            continue
        method = step.get("method")
        importance = str(step.get("importance") or "")
        if method == "head_pruning":
            keys += ["michel2019"] if importance.startswith(("taylor", "ablation")) else []
        if method in ("head_pruning", "mlp_pruning") and importance.startswith("fisher"):
            keys.append("kwon2022")
        if (method == "mlp_pruning" and importance.startswith("ablation")) or (
                method in ("head_pruning", "mlp_pruning") and importance.startswith("taylor")):
            keys.append("molchanov2017")
        if step.get("schedule") == "cubic":
            keys.append("zhu2017")
        if method == "layer_pruning" and step.get("strategy") == "block_influence":
            keys.append("shortgpt")
        if method == "quantization":
            bits = step.get("bits")
            keys += ["llm_int8"] if bits == 8 else ["qlora"] if bits == 4 else []
        if method == "qlora":
            keys += ["qlora", "lora"]
        if method == "distillation":
            losses = step.get("losses") if isinstance(step.get("losses"), dict) else {}
            keys.append("hinton2015")
            if _truthy_weight(losses, "logit"):
                keys.append("tinyclip")
            if _truthy_weight(losses, "embedding", "hidden", "icl"):
                keys.append("clip_kd")
    seen, out = set(), []
    for key in keys:
        if key not in seen:
            seen.add(key)
            what, bibtex = family_entry if key == "family" else (WHAT[key], BIBTEX[key])
            out.append({"key": adapter.family if key == "family" else key, "what": what, "bibtex": bibtex})
    return out
