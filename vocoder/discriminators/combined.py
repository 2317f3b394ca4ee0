"""Several discriminators judged as one: their logits and feature maps are concatenated in order."""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ["CombinedDiscriminator"]


class CombinedDiscriminator(nn.Module):
    """``CombinedDiscriminator([mpd, mrd])(wav [B, 1, T], mel=None) -> (logits, feature_maps)``, each list the
    concatenation of the members' lists (e.g. 5 MPD periods then 3 MRD resolutions).

    A member whose ``conditional`` attribute is true (e.g. GAN-TTS's random window discriminators) also gets
    ``mel [B, n_mels, T // hop]``, which is then required; the others get the waveform only. Members live in
    ``self.discriminators`` so their state-dict keys read ``discriminators.{i}.<member key>``.
    """

    def __init__(self, discriminators: Sequence[nn.Module]):
        super().__init__()
        discriminators = list(discriminators)
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator, got an empty list")
        for d in discriminators:
            if not isinstance(d, nn.Module):
                raise ValueError(f"CombinedDiscriminator expects nn.Module discriminators, got {type(d).__name__}")
        self.discriminators = nn.ModuleList(discriminators)

    @property
    def conditional(self) -> bool:
        """Whether any member needs the mel."""
        return any(getattr(d, "conditional", False) for d in self.discriminators)

    @contextlib.contextmanager
    def same_windows(self) -> Iterator[None]:
        """Members that draw random windows reuse them for every call in the block (real and fake judged alike)."""
        with contextlib.ExitStack() as stack:
            for d in self.discriminators:
                if hasattr(d, "same_windows"):
                    stack.enter_context(d.same_windows())
            yield

    def forward(self, wav: torch.Tensor, mel: Optional[torch.Tensor] = None
                ) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        logits, fmaps = [], []
        for d in self.discriminators:
            if getattr(d, "conditional", False):
                if mel is None:
                    raise ValueError(f"{type(d).__name__} is conditional: call the discriminator with "
                                     f"mel=[B, n_mels, T // hop] as well as the audio")
                y, f = d(wav, mel)
            else:
                y, f = d(wav)
            logits.extend(y)
            fmaps.extend(f)
        return logits, fmaps
