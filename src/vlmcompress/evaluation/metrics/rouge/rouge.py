"""ROUGE-L (Lin, 2004) for captions, as an ``evaluate`` module that loads offline.

``evaluate.load("<this folder>")`` (``vlmcompress.evaluation.load_metric("rouge")`` gives the path) then
``metric.compute(predictions=[...], references=[[...], ...])``. Per prediction: the F-measure of the longest common
subsequence with each reference (beta 1), the best reference kept (as rouge_score's ``score_multi``); the result is
the mean over predictions. Tokens as rouge_score's default tokenizer makes them: lower case, runs of [a-z0-9].
"""

import re

import datasets
import evaluate

_CITATION = """@inproceedings{lin2004rouge, title={ROUGE: A Package for Automatic Evaluation of Summaries},
author={Lin, Chin-Yew}, booktitle={Text Summarization Branches Out}, year={2004}}"""

_DESCRIPTION = "ROUGE-L: longest-common-subsequence F-measure, best reference per prediction, mean over predictions."

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated captions (strings).
    references: list of reference lists (one list of strings per prediction), or one string per prediction.
Returns:
    rougeL: mean F-measure in [0, 1]; rougeL_precision and rougeL_recall of the chosen references (means).
"""

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text):
    return _TOKEN.findall(str(text).lower())


def lcs_length(a, b):
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction, references):
    pred = tokenize(prediction)
    best = (0.0, 0.0, 0.0)
    for ref in ([references] if isinstance(references, str) else references):
        ref = tokenize(ref)
        lcs = lcs_length(pred, ref)
        if lcs == 0:
            continue
        precision, recall = lcs / len(pred), lcs / len(ref)
        f = 2 * precision * recall / (precision + recall)
        if f > best[0]:
            best = (f, precision, recall)
    return best


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
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
        scores = [rouge_l(p, r) for p, r in zip(predictions, references)]
        n = max(len(scores), 1)
        return {"rougeL": sum(s[0] for s in scores) / n, "rougeL_precision": sum(s[1] for s in scores) / n,
                "rougeL_recall": sum(s[2] for s in scores) / n}
