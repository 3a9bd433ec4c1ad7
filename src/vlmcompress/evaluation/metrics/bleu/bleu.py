"""Corpus BLEU (Papineni et al., 2002) for captions, as an ``evaluate`` module that loads offline.

``evaluate.load("<this folder>")`` (``vlmcompress.evaluation.load_metric("bleu")`` gives the path) then
``metric.compute(predictions=[...], references=[[...], ...])``. Each prediction may have several references.
Clipped n-gram counts are summed over the corpus (up to ``max_order``, default 4: BLEU-4), the brevity penalty uses
each prediction's closest reference length (ties: the shorter one), as in sacrebleu and the COCO caption toolkit;
no smoothing unless ``smooth=True`` (add-one, Lin and Och 2004). Text is lower-cased and punctuation split off
before counting (captions differ in case and final full stops, which should not count as errors).
"""

import collections
import math
import re

import datasets
import evaluate

_CITATION = """@inproceedings{papineni2002bleu, title={BLEU: a Method for Automatic Evaluation of Machine Translation},
author={Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing}, booktitle={ACL}, year={2002}}"""

_DESCRIPTION = "Corpus BLEU with clipped n-gram precision up to max_order and a brevity penalty (offline, no sacrebleu)."

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated captions (strings).
    references: list of reference lists (one list of strings per prediction), or one string per prediction.
    max_order: largest n-gram order (default 4).
    smooth: add-one smoothing of the n-gram precisions (default False).
Returns:
    bleu: the corpus score in [0, 1]; precisions: per-order precision; brevity_penalty; length_ratio;
    translation_length; reference_length.
"""

_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text):
    return _TOKEN.findall(str(text).lower())


def ngrams(tokens, order):
    return collections.Counter(tuple(tokens[i:i + order]) for i in range(len(tokens) - order + 1))


def corpus_bleu(predictions, references, max_order=4, smooth=False):
    matches = [0] * max_order
    possible = [0] * max_order
    pred_len = ref_len = 0
    for prediction, refs in zip(predictions, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        pred = tokenize(prediction)
        ref_tokens = [tokenize(r) for r in refs]
        pred_len += len(pred)
        ref_len += min((abs(len(r) - len(pred)), len(r)) for r in ref_tokens)[1] if ref_tokens else 0
        for order in range(1, max_order + 1):
            counts = ngrams(pred, order)
            best = collections.Counter()
            for r in ref_tokens:
                best |= ngrams(r, order)
            matches[order - 1] += sum((counts & best).values())
            possible[order - 1] += max(len(pred) - order + 1, 0)
    if smooth:
        precisions = [(m + 1.0) / (p + 1.0) for m, p in zip(matches, possible)]
    else:
        precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible)]
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order) if min(precisions) > 0 else 0.0
    ratio = pred_len / ref_len if ref_len else 0.0
    penalty = 1.0 if ratio > 1.0 else (math.exp(1 - 1.0 / ratio) if ratio > 0 else 0.0)
    return {"bleu": geo_mean * penalty, "precisions": precisions, "brevity_penalty": penalty,
            "length_ratio": ratio, "translation_length": pred_len, "reference_length": ref_len}


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

    def _compute(self, predictions, references, max_order=4, smooth=False):
        return corpus_bleu(predictions, references, max_order=max_order, smooth=smooth)
