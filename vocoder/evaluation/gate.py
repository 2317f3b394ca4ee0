"""The quality gate a shipped model must pass: better than Griffin-Lim on the same mels, by metrics that track
listeners.

Criteria on the mean over a set of clips (``vocoder eval``'s report means), the model as it is shipped (its
stored inference settings) against Griffin-Lim (32 iterations) on the same mels:

- DistillMOS at least min(Griffin-Lim's + 0.3, the reference clips' own DistillMOS). The margin asks for a
  difference listeners hear, not a tie; the cap is there because a predictor's score for the original recordings
  is the most a copy of them can honestly reach: on low-bitrate clips Griffin-Lim + 0.3 can lie above it (on
  ``samples/`` 2.49 against the reference's 2.31), and no model should have to sound better than its input.
- DNSMOS OVRL at least Griffin-Lim's: the second, independently trained predictor must not disagree.
- M-STFT at least 0.05 below Griffin-Lim's: the spectral envelope and detail a model adds over an iterative phase
  estimate; 0.05 is several times the spread between two runs of the same model on the same clips.
- CREPE periodicity error at most Griffin-Lim's: pitch artefacts (buzz, jitter) are what listeners hear first.
- Voiced/unvoiced F1 at least Griffin-Lim's - 0.02. On a handful of clips (9 test clips hold ~1,500 voiced
  frames) 0.02 is a few dozen frame decisions of one clip: a smaller difference is noise of the clip set, not a
  voicing defect. :func:`clip_wins` gives the per-clip picture the release prints next to it.

PESQ is reported next to these, not gated against Griffin-Lim: it favours Griffin-Lim's phase-coherent errors over
a vocoder's.

The stronger floor (:mod:`.signal_floors`): the mel's pseudo-inverse amplitude with a PGHI or an RTPGHI phase,
no network and no iteration, scores far above Griffin-Lim. Given those floors' means, the model must also reach,
on DistillMOS, PESQ and M-STFT, the better of the two (per metric): a neural vocoder that does not beat signal
processing on its own mel has nothing to ship. PESQ counts here because both sides are phase-coherent.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

__all__ = ["Criterion", "GATE", "SIGNAL_FLOOR_GATE", "better_floor", "gate_failures", "clip_wins"]


class Criterion(NamedTuple):
    metric: str
    higher_is_better: bool
    margin: float  # how far past Griffin-Lim the model must be (negative: a tolerance below it)
    reference_cap: bool = False  # the requirement never exceeds the reference clips' own score

    def threshold(self, floor: float, reference: Optional[float] = None) -> float:
        """The value the model must reach (higher-is-better) or stay under, given Griffin-Lim's mean ``floor``
        and the reference clips' mean (``None``: not measured, no cap)."""
        if self.higher_is_better:
            need = floor + self.margin
            if self.reference_cap and reference is not None:
                need = min(need, reference)
            return need
        return floor - self.margin

    def passes(self, model: float, floor: float, reference: Optional[float] = None) -> bool:
        need = self.threshold(floor, reference)
        # 1e-9: a mean exactly at the threshold passes despite float rounding of the sums behind it
        return model >= need - 1e-9 if self.higher_is_better else model <= need + 1e-9

    def describe(self) -> str:
        if self.higher_is_better:
            rule = f"Griffin-Lim {'+' if self.margin > 0 else '-'} {abs(self.margin):g}" if self.margin else "Griffin-Lim"
            if self.reference_cap:
                rule = f"min({rule}, reference)"
            return f"{self.metric} >= {rule}"
        return f"{self.metric} <= Griffin-Lim - {self.margin:g}" if self.margin else f"{self.metric} <= Griffin-Lim"


GATE = (
    Criterion("distillmos", True, 0.3, reference_cap=True),
    Criterion("dnsmos_ovrl", True, 0.0),
    Criterion("mstft", False, 0.05),
    Criterion("periodicity", False, 0.0),
    Criterion("vuv_f1", True, -0.02),
)


#: what the model must also reach against the better of the no-network floors (pinv + PGHI / RTPGHI)
SIGNAL_FLOOR_GATE = (
    Criterion("distillmos", True, 0.0),
    Criterion("pesq", True, 0.0),
    Criterion("mstft", False, 0.0),
)


def better_floor(floors: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """Per metric of :data:`SIGNAL_FLOOR_GATE`, the better of the floors' means (missing values left out)."""
    out = {}
    for c in SIGNAL_FLOOR_GATE:
        values = [float(f[c.metric]) for f in floors if f.get(c.metric) is not None]
        if values:
            out[c.metric] = max(values) if c.higher_is_better else min(values)
    return out


def gate_failures(model: Mapping[str, float], griffin_lim: Mapping[str, float],
                  reference: Optional[Mapping[str, float]] = None,
                  signal_floor: Optional[Mapping[str, float]] = None) -> List[str]:
    """The criteria ``model`` fails against ``griffin_lim`` (report means), each as a readable line; [] passes.

    ``reference``: the reference clips' means (the MOS predictors' scores of the originals), which cap a
    criterion marked ``reference_cap``; without it no cap applies. A metric missing from the model or Griffin-Lim
    is a failure (a gate that could not be checked does not pass). ``signal_floor``: the better no-network
    floor's means (:func:`better_floor`); the model must reach it on :data:`SIGNAL_FLOOR_GATE` (not checked when
    ``None``; a metric missing from it is a failure).
    """
    out = []
    for c in GATE:
        m, g = model.get(c.metric), griffin_lim.get(c.metric)
        r = (reference or {}).get(c.metric)
        if m is None or g is None:
            out.append(f"{c.metric}: not measured")
        elif not c.passes(float(m), float(g), None if r is None else float(r)):
            need = c.threshold(float(g), None if r is None else float(r))
            out.append(f"{c.describe()} = {need:.3f}: model {float(m):.3f}, Griffin-Lim {float(g):.3f}"
                       + (f", reference {float(r):.3f}" if r is not None and c.reference_cap else ""))
    for c in SIGNAL_FLOOR_GATE if signal_floor is not None else ():
        m, f = model.get(c.metric), signal_floor.get(c.metric)
        if m is None or f is None:
            out.append(f"{c.metric} against the pinv floor: not measured")
        elif not c.passes(float(m), float(f)):
            sign = ">=" if c.higher_is_better else "<="
            out.append(f"{c.metric} {sign} the better pinv + PGHI / RTPGHI floor: model {float(m):.3f}, "
                       f"floor {float(f):.3f}")
    return out


def clip_wins(clips: Sequence[Mapping[str, Any]], metric: str, higher_is_better: bool,
              system: str = "vocoder", floor: str = "griffin_lim") -> Tuple[int, int, int]:
    """Per-clip comparison in a ``vocoder eval`` report's ``clips``: (clips ``system`` wins, clips ``floor``
    wins, ties); clips where either value is undefined are left out."""
    wins = losses = ties = 0
    for clip in clips:
        a, b = clip["metrics"].get(system, {}).get(metric), clip["metrics"].get(floor, {}).get(metric)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        if a == b:
            ties += 1
        elif (a > b) == higher_is_better:
            wins += 1
        else:
            losses += 1
    return wins, losses, ties
