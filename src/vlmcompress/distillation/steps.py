"""The report step distillation writes (``distillation``): card title, sentences and citations (see
``vlmcompress.steps``)."""

from __future__ import annotations

from ..steps import Citation, StepKind, register_step_kind

HINTON2015 = Citation("hinton2015", "knowledge distillation with temperature-softened targets", """@article{hinton2015distilling,
  title   = {Distilling the Knowledge in a Neural Network},
  author  = {Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff},
  journal = {arXiv preprint arXiv:1503.02531},
  year    = {2015}
}""")
TINYCLIP = Citation("tinyclip", "affinity (similarity-matrix) mimicking for CLIP distillation", """@inproceedings{wu2023tinyclip,
  title     = {TinyCLIP: CLIP Distillation via Affinity Mimicking and Weight Inheritance},
  author    = {Wu, Kan and Peng, Houwen and Zhou, Zhenghong and Xiao, Bin and Liu, Mengchen and Yuan, Lu and Xuan, Hong and Valenzuela, Michael and Chen, Xi (Stephen) and Wang, Xinggang and Chao, Hongyang and Hu, Han},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2023}
}""")
CLIP_KD = Citation("clip_kd", "feature and interactive-contrastive distillation of CLIP embeddings", """@inproceedings{yang2024clipkd,
  title     = {CLIP-KD: An Empirical Study of CLIP Model Distillation},
  author    = {Yang, Chuanguang and An, Zhulin and Huang, Libo and Bi, Junyu and Yu, Xinqiang and Yang, Han and Diao, Boyu and Xu, Yongjun},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2024}
}""")


def _weighted(losses, *names) -> bool:
    return any(isinstance(losses.get(n), (int, float)) and losses.get(n) > 0 for n in names)


def _citations(step):
    losses = step.get("losses") if isinstance(step.get("losses"), dict) else {}
    return ([HINTON2015] + ([TINYCLIP] if _weighted(losses, "logit") else [])
            + ([CLIP_KD] if _weighted(losses, "embedding", "hidden", "icl") else []))


def _describe(step, fmt):
    lines = []
    if step.get("teacher"):
        lines.append(f"teacher: {fmt.model_name(step['teacher'])}")
    if step.get("student_init"):
        lines.append(f"student initialised from: {fmt.model_name(step['student_init'])}")
    losses = step.get("losses")
    if isinstance(losses, dict) and losses:
        lines.append("loss weights: " + ", ".join(f"{k} {fmt.value(v)}" for k, v in losses.items()))
    if step.get("temperature") is not None:
        end = step.get("temperature_end")
        lines.append(f"temperature: {fmt.value(step['temperature'])}"
                     + (f", annealed linearly to {fmt.value(end)} over training" if end is not None else ""))
    if step.get("frozen_towers"):
        lines.append("frozen (not trained): " + ", ".join(f"the {t} tower" for t in step["frozen_towers"]))
    if step.get("max_steps") is not None:
        lines.append(f"training steps: {fmt.value(step['max_steps'])}")
    return lines, {"teacher", "student_init", "losses", "temperature", "temperature_end", "frozen_towers", "max_steps"}


register_step_kind(StepKind("distillation", "Distillation", hub_relation="finetune", describe=_describe, citations=_citations))
