"""GAN discriminators. Every one maps ``wav [B, 1, T] -> (logits: list[Tensor [B, N_i]],
feature_maps: list[list[Tensor]])``, one logits tensor and one feature-map list per sub-discriminator.

Build by name with :func:`build_discriminator` (``"mpd"``, ``"msd"``, ``"mrd"``, ``"msstftd"``, ``"cqtd"``, ``"rwd"``)
or a list of ``{"name": ..., **kwargs}`` with :func:`build_discriminators`. Systems as published:
HiFi-GAN = mpd + msd, BigVGAN v1 = mpd + mrd, BigVGAN v2 = mpd + cqtd (``filters=128``), EnCodec = msstftd.

Training tip (see ``scripts/bench_train.py``): run the discriminator once on ``cat([real, fake])`` in the
discriminator step, and in the generator step judge ``real`` under ``torch.no_grad()`` with the
discriminator's parameters frozen; the generator's gradients are the same and the step is cheaper.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Sequence, Union

from torch import nn

from .combined import CombinedDiscriminator
from .cqt import CQTDiscriminator, MultiScaleSubbandCQTDiscriminator
from .mpd import MultiPeriodDiscriminator, PeriodDiscriminator
from .mrd import MultiResolutionDiscriminator, ResolutionDiscriminator
from .msd import MultiScaleDiscriminator, ScaleDiscriminator
from .msstft import MultiScaleSTFTDiscriminator, STFTDiscriminator
from .pwg import ParallelWaveGANDiscriminator, ResidualParallelWaveGANDiscriminator
from .rwd import RandomWindowDiscriminators

__all__ = [
    "build_discriminator", "build_discriminators", "discriminator_class", "discriminator_names", "CombinedDiscriminator",
    "MultiPeriodDiscriminator", "PeriodDiscriminator", "MultiScaleDiscriminator", "ScaleDiscriminator",
    "MultiResolutionDiscriminator", "ResolutionDiscriminator", "MultiScaleSTFTDiscriminator", "STFTDiscriminator",
    "MultiScaleSubbandCQTDiscriminator", "CQTDiscriminator", "RandomWindowDiscriminators",
]

_REGISTRY: Dict[str, Callable[..., nn.Module]] = {
    "mpd": MultiPeriodDiscriminator,
    "msd": MultiScaleDiscriminator,
    "mrd": MultiResolutionDiscriminator,
    "msstftd": MultiScaleSTFTDiscriminator,
    "cqtd": MultiScaleSubbandCQTDiscriminator,
    "pwgd": ParallelWaveGANDiscriminator, "pwgd_residual": ResidualParallelWaveGANDiscriminator,
    "rwd": RandomWindowDiscriminators,
}


def discriminator_names() -> list:
    return sorted(_REGISTRY)


def discriminator_class(name: str) -> Callable[..., nn.Module]:
    """The class registered as ``name`` (``ValueError`` naming the known ones)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown discriminator {name!r}; expected one of {discriminator_names()}")
    return _REGISTRY[key]


def build_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """Build one discriminator by name; ``kwargs`` go to its class (e.g. ``periods``, ``resolutions``,
    ``sample_rate`` for ``"cqtd"``)."""
    key = str(name).lower()
    cls = discriminator_class(key)
    try:
        return cls(**kwargs)
    except TypeError as e:  # wrong keyword: say which class and what it takes
        raise ValueError(f"bad arguments for discriminator {key!r}: {e}") from e


def build_discriminators(specs: Sequence[Union[str, Mapping[str, Any]]]) -> CombinedDiscriminator:
    """``[{"name": "mpd"}, {"name": "mrd", "channel_mult": 1}]`` (or plain names) -> CombinedDiscriminator."""
    if isinstance(specs, (str, Mapping)):
        specs = [specs]
    members = []
    for spec in specs:
        if isinstance(spec, str):
            members.append(build_discriminator(spec))
            continue
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"each discriminator spec must be a name or a mapping with 'name', got {spec!r}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        members.append(build_discriminator(spec["name"], **kwargs))
    return CombinedDiscriminator(members)
