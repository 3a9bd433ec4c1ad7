"""ROUGE-L (Lin, 2004) for captions, as an ``evaluate`` module that loads offline: rouge-score's.

``evaluate.load("<this folder>")`` (``vlmcompress.evaluation.load_metric("rouge")`` gives the path) then
``metric.compute(predictions=[...], references=[[...], ...])``. Per prediction: rouge_score's ``RougeScorer(["rougeL"])``
``score_multi`` (the F-measure of the longest common subsequence, beta 1, the best reference kept; its default
tokenizer, no stemming); the result is the mean over predictions.
"""

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

def rouge_l(prediction, references):
    """(F-measure, precision, recall) of the best reference, by rouge_score."""
    from rouge_score import rouge_scorer

    refs = [references] if isinstance(references, str) else list(references)
    score = rouge_scorer.RougeScorer(["rougeL"]).score_multi(refs, prediction)["rougeL"]
    return score.fmeasure, score.precision, score.recall


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
