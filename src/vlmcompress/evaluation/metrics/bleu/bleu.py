"""Corpus BLEU (Papineni et al., 2002) for captions, as an ``evaluate`` module that loads offline: sacrebleu's.

``evaluate.load("<this folder>")`` (``vlmcompress.evaluation.load_metric("bleu")`` gives the path) then
``metric.compute(predictions=[...], references=[[...], ...])``. Each prediction may have several references (any
number: sacrebleu's reference streams are padded with None). The score is sacrebleu's ``corpus_bleu`` with its
standard signature (tokenizer 13a, lower-cased: captions differ in case, which should not count as errors; no
smoothing; BLEU-4), returned in [0, 1] with its n-gram precisions and brevity penalty.
"""

import datasets
import evaluate

_CITATION = """@inproceedings{papineni2002bleu, title={BLEU: a Method for Automatic Evaluation of Machine Translation},
author={Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing}, booktitle={ACL}, year={2002}}"""

_DESCRIPTION = "Corpus BLEU-4 through sacrebleu (tokenizer 13a, lower-cased, no smoothing), offline."

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated captions (strings).
    references: list of reference lists (one list of strings per prediction), or one string per prediction.
Returns:
    bleu: the corpus score in [0, 1]; precisions: per-order precision; brevity_penalty; length_ratio;
    translation_length; reference_length; signature (sacrebleu's).
"""

#: sacrebleu's settings, stated with every score (the report and cards name them)
SETTINGS = {"tokenize": "13a", "lowercase": True, "smooth_method": "none"}


def corpus_bleu(predictions, references):
    from sacrebleu.metrics import BLEU

    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max((len(r) for r in refs), default=0)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
    bleu = BLEU(**SETTINGS)
    score = bleu.corpus_score(list(predictions), streams)
    return {"bleu": score.score / 100, "precisions": [p / 100 for p in score.precisions], "brevity_penalty": score.bp,
            "length_ratio": score.ratio, "translation_length": score.sys_len, "reference_length": score.ref_len,
            "signature": str(bleu.get_signature())}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        return corpus_bleu(predictions, references)
