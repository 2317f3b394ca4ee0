"""The quality gate a shipped model must pass: better than Griffin-Lim on the same mels, by metrics that track
listeners.

Criteria on the mean over a set of clips (``vocoder eval``'s report means), model against Griffin-Lim (32
iterations) on the same mels:

- DistillMOS at least Griffin-Lim's + 0.3, DNSMOS OVRL at least Griffin-Lim's;
- M-STFT at least 0.05 below Griffin-Lim's;
- CREPE periodicity error at most, voiced/unvoiced F1 at least Griffin-Lim's.

PESQ is reported next to these, not gated: it favours Griffin-Lim's phase-coherent errors over a vocoder's.
"""
from __future__ import annotations

from typing import List, Mapping, NamedTuple

__all__ = ["Criterion", "GATE", "gate_failures"]


class Criterion(NamedTuple):
    metric: str
    higher_is_better: bool
    margin: float  # how far past Griffin-Lim the model must be

    def passes(self, model: float, floor: float) -> bool:
        if self.higher_is_better:
            return model >= floor + self.margin
        return model <= floor - self.margin

    def describe(self) -> str:
        if self.higher_is_better:
            return f"{self.metric} >= Griffin-Lim + {self.margin:g}"
        return f"{self.metric} <= Griffin-Lim - {self.margin:g}"


GATE = (
    Criterion("distillmos", True, 0.3),
    Criterion("dnsmos_ovrl", True, 0.0),
    Criterion("mstft", False, 0.05),
    Criterion("periodicity", False, 0.0),
    Criterion("vuv_f1", True, 0.0),
)


def gate_failures(model: Mapping[str, float], griffin_lim: Mapping[str, float]) -> List[str]:
    """The criteria ``model`` fails against ``griffin_lim`` (report means), each as a readable line; [] passes.

    A metric missing from either side is a failure (a gate that could not be checked does not pass).
    """
    out = []
    for c in GATE:
        m, g = model.get(c.metric), griffin_lim.get(c.metric)
        if m is None or g is None:
            out.append(f"{c.metric}: not measured")
        elif not c.passes(float(m), float(g)):
            out.append(f"{c.describe()}: model {float(m):.3f}, Griffin-Lim {float(g):.3f}")
    return out
