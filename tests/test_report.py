import json

import pytest

from vlmcompress import report as R


def _valid():
    metrics = R.empty_metrics()
    metrics.update(params=10, size_bytes=40, zero_shot_accuracy=0.5, latency_ms=1.5, latency_batch_size=4)
    return R.new_report(
        base_model="x",
        model_family="clip",
        steps=[
            {"method": "head_pruning", "removed_heads": {"vision": {"0": [1, 3]}}},
            {"method": "layer_pruning", "removed_layers": {"text": [2]}},
            {"method": "mlp_pruning", "removed_neurons": {"vision": {"1": [0, 5]}}},
            {"method": "quantization", "bits": 4},
        ],
        before=metrics,
        after=dict(metrics),
    )


def test_valid_report_round_trips(tmp_path):
    rep = _valid()
    path = R.write_report(rep, tmp_path)
    assert path.name == "compression_report.json"
    assert R.read_report(tmp_path) == json.loads(json.dumps(rep))
    assert rep["environment"]["threads"] >= 1 and rep["environment"]["torch"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.pop("format_version"), "format_version"),
        (lambda r: r["after"].pop("params"), "after.params is missing"),
        (lambda r: r["after"].update(zero_shot_accuracy=92.0), "fraction"),
        (lambda r: r["after"].update(params="many"), "after.params must be a number"),
        (lambda r: r["after"].update(params=1.5), "integer"),
        (lambda r: r["steps"].append({"foo": 1}), "method"),
        (lambda r: r["steps"][0]["removed_heads"].update(visual={"0": [1]}), "unknown tower"),
        (lambda r: r["steps"][1]["removed_layers"].update(text=[-1]), "non-negative"),
        (lambda r: r["environment"].pop("torch"), "environment.torch"),
    ],
)
def test_validator_rejects(mutate, message):
    rep = _valid()
    mutate(rep)
    with pytest.raises(R.ReportError, match=message):
        R.validate_report(rep)


def test_invalid_report_is_not_written(tmp_path):
    rep = _valid()
    rep["after"].pop("params")
    with pytest.raises(R.ReportError):
        R.write_report(rep, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_older_report_without_new_metric_keys_still_reads(tmp_path):
    rep = _valid()
    for key in ("recall_at_5_i2t", "recall_at_5_t2i", "memory_bytes"):
        rep["after"].pop(key)
    rep["before"] = None
    rep["environment"].pop("bitsandbytes")
    (tmp_path / R.REPORT_FILENAME).write_text(json.dumps(rep))
    back = R.read_report(tmp_path)
    assert back["after"]["recall_at_5_i2t"] is None and back["after"]["params"] == 10
    rep["loading"] = {"loading": "stock", "class": "CLIPModel"}  # how reports before 0.1 named the loading kind
    (tmp_path / R.REPORT_FILENAME).write_text(json.dumps(rep))
    assert R.read_report(tmp_path)["loading"] == {"kind": "stock", "class": "CLIPModel"}


def test_table_shows_unmeasured_as_not_measured():
    table = R.format_metrics_table({"m": R.empty_metrics()})
    assert "not measured" in table and "zero-shot acc (held-out)" in table
