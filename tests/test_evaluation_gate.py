"""The release gate (vocoder.evaluation.gate): each criterion's direction and margin, the V/UV tolerance, the
reference cap on DistillMOS, missing metrics and per-clip wins."""
import pytest

from vocoder.evaluation.gate import GATE, clip_wins, gate_failures

FLOOR = {"distillmos": 2.7, "dnsmos_ovrl": 2.5, "mstft": 1.5, "periodicity": 0.2, "vuv_f1": 0.9}
PASSING = {"distillmos": 3.0, "dnsmos_ovrl": 2.5, "mstft": 1.45, "periodicity": 0.2, "vuv_f1": 0.88}


def test_exactly_at_every_margin_passes():
    assert gate_failures(PASSING, FLOOR) == []


@pytest.mark.parametrize("metric, value", [("distillmos", 2.99), ("dnsmos_ovrl", 2.49), ("mstft", 1.46),
                                           ("periodicity", 0.21), ("vuv_f1", 0.879)])
def test_each_criterion_fails_on_its_own(metric, value):
    failures = gate_failures(dict(PASSING, **{metric: value}), FLOOR)
    assert len(failures) == 1 and failures[0].startswith(metric)


def test_vuv_f1_has_a_tolerance_of_002_below_griffin_lim():
    assert gate_failures(dict(PASSING, vuv_f1=0.885), FLOOR) == []   # within the tolerance
    assert gate_failures(dict(PASSING, vuv_f1=0.95), FLOOR) == []
    assert gate_failures(dict(PASSING, vuv_f1=0.87), FLOOR)[0].startswith("vuv_f1 >= Griffin-Lim - 0.02")


def test_distillmos_margin_is_capped_by_the_reference_clips_score():
    # Griffin-Lim + 0.3 = 3.0 lies above the reference's 2.8: the model needs only the reference's score
    capped = dict(PASSING, distillmos=2.8)
    assert gate_failures(capped, FLOOR) != []                             # no reference given: no cap
    assert gate_failures(capped, FLOOR, {"distillmos": 2.8}) == []
    assert gate_failures(dict(capped, distillmos=2.79), FLOOR, {"distillmos": 2.8})[0].startswith("distillmos")
    # a reference above Griffin-Lim + 0.3 does not raise the bar
    assert gate_failures(PASSING, FLOOR, {"distillmos": 4.5}) == []
    # the cap applies to DistillMOS only
    assert gate_failures(dict(PASSING, dnsmos_ovrl=2.4), FLOOR, {"dnsmos_ovrl": 2.3}) != []


def test_a_missing_metric_fails():
    model = {k: v for k, v in PASSING.items() if k != "dnsmos_ovrl"}
    assert gate_failures(model, FLOOR) == ["dnsmos_ovrl: not measured"]


def test_gate_covers_the_listener_metrics_not_pesq():
    assert {c.metric for c in GATE} == set(FLOOR)


def test_clip_wins_counts_each_side_and_skips_undefined_values():
    clips = [{"metrics": {"vocoder": {"vuv_f1": a}, "griffin_lim": {"vuv_f1": b}}}
             for a, b in ((0.9, 0.8), (0.7, 0.8), (0.5, 0.5), (None, 0.8), (0.9, float("nan")))]
    assert clip_wins(clips, "vuv_f1", higher_is_better=True) == (1, 1, 1)
    assert clip_wins(clips, "vuv_f1", higher_is_better=False) == (1, 1, 1)
    clips = [{"metrics": {"vocoder": {"mstft": 1.0}, "griffin_lim": {"mstft": 1.5}}}] * 3
    assert clip_wins(clips, "mstft", higher_is_better=False) == (3, 0, 0)


def test_the_model_must_also_reach_the_better_signal_processing_floor():
    from vocoder.evaluation.gate import better_floor

    model = dict(PASSING, pesq=3.5)
    floor = better_floor([{"distillmos": 2.9, "pesq": 3.2, "mstft": 1.9},
                          {"distillmos": 2.95, "pesq": 3.1, "mstft": 1.6}])
    assert floor == {"distillmos": 2.95, "pesq": 3.2, "mstft": 1.6}   # the better of the two, per metric
    assert gate_failures(model, FLOOR, None, floor) == []
    assert gate_failures(model, FLOOR, None, dict(floor, distillmos=3.01))[0].startswith(
        "distillmos >= the better pinv")
    assert gate_failures(model, FLOOR, None, dict(floor, pesq=3.6))[0].startswith("pesq >= the better pinv")
    assert gate_failures(model, FLOOR, None, dict(floor, mstft=1.4))[0].startswith("mstft <= the better pinv")
    assert gate_failures(PASSING, FLOOR, None, floor) == ["pesq against the pinv floor: not measured"]
    assert gate_failures(PASSING, FLOOR) == []   # no floor given: not checked
