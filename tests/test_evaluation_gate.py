"""The release gate (vocoder.evaluation.gate): each criterion's direction and margin, and missing metrics."""
import pytest

from vocoder.evaluation.gate import GATE, gate_failures

FLOOR = {"distillmos": 2.7, "dnsmos_ovrl": 2.5, "mstft": 1.5, "periodicity": 0.2, "vuv_f1": 0.9}
PASSING = {"distillmos": 3.0, "dnsmos_ovrl": 2.5, "mstft": 1.45, "periodicity": 0.2, "vuv_f1": 0.9}


def test_exactly_at_every_margin_passes():
    assert gate_failures(PASSING, FLOOR) == []


@pytest.mark.parametrize("metric, value", [("distillmos", 2.99), ("dnsmos_ovrl", 2.49), ("mstft", 1.46),
                                           ("periodicity", 0.21), ("vuv_f1", 0.89)])
def test_each_criterion_fails_on_its_own(metric, value):
    failures = gate_failures(dict(PASSING, **{metric: value}), FLOOR)
    assert len(failures) == 1 and failures[0].startswith(metric)


def test_a_missing_metric_fails():
    model = {k: v for k, v in PASSING.items() if k != "dnsmos_ovrl"}
    assert gate_failures(model, FLOOR) == ["dnsmos_ovrl: not measured"]


def test_gate_covers_the_listener_metrics_not_pesq():
    assert {c.metric for c in GATE} == set(FLOOR)
