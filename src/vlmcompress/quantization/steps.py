"""The report steps quantization writes (``quantization``, ``qlora``): card titles, sentences and citations (see
``vlmcompress.steps``)."""

from __future__ import annotations

from ..steps import Citation, StepKind, register_step_kind

LLM_INT8 = Citation("llm_int8", "8-bit quantization (bitsandbytes LLM.int8())", """@inproceedings{dettmers2022llmint8,
  title     = {LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale},
  author    = {Dettmers, Tim and Lewis, Mike and Belkada, Younes and Zettlemoyer, Luke},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}""")
QLORA = Citation("qlora", "4-bit NF4 quantization and double quantization (QLoRA)", """@inproceedings{dettmers2023qlora,
  title     = {QLoRA: Efficient Finetuning of Quantized LLMs},
  author    = {Dettmers, Tim and Pagnoni, Artidoro and Holtzman, Ari and Zettlemoyer, Luke},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023}
}""")
LORA = Citation("lora", "low-rank adapters", """@inproceedings{hu2022lora,
  title     = {LoRA: Low-Rank Adaptation of Large Language Models},
  author    = {Hu, Edward J. and Shen, Yelong and Wallis, Phillip and Allen-Zhu, Zeyuan and Li, Yuanzhi and Wang, Shean and Wang, Lu and Chen, Weizhu},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2022}
}""")


def _describe(step, fmt):
    bits, qtype = step.get("bits"), step.get("quant_type")
    what = f"{bits}-bit" if bits is not None else "quantized"
    if qtype:
        what += f" {qtype}"
    if step.get("double_quant"):
        what += " with double quantization"
    lines = [f"weights stored {what} (bitsandbytes)"
             + (f", computing in {step['compute_dtype']}" if step.get("compute_dtype") else "")
             + (f"; the rest in {step['dtype']}" if step.get("dtype") not in (None, "float32") else "")]
    if step.get("towers"):
        lines.append(f"towers quantized: {fmt.value(step['towers'])}")
    if "skipped_modules" in step:
        lines.append(f"modules kept in full precision: {fmt.value(step.get('skipped_modules')) or 'none'}")
    return lines, {"bits", "quant_type", "double_quant", "compute_dtype", "dtype", "towers", "skipped_modules"}


def _citations(step):
    return {8: [LLM_INT8], 4: [QLORA]}.get(step.get("bits"), [])


register_step_kind(StepKind("quantization", "Quantization", hub_relation="quantized", describe=_describe,
                            citations=_citations, tags=lambda step: [f"{step['bits']}-bit"] if step.get("bits") else []))
register_step_kind(StepKind("qlora", "QLoRA fine-tuning", hub_relation="finetune", citations=lambda step: [QLORA, LORA]))
