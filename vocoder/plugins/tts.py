"""A vocoder for TTS pipelines: ``plugin(mel, convention="espnet") -> wav``, without importing any TTS toolkit.

    plugin = VocoderPlugin.from_pretrained("path/to/model.pt")
    wav = plugin(espnet_feats, convention="espnet")   # ESPnet style: [T, n_mels] -> [T * hop] (AbsVocoder.forward)
    wav = plugin.inference(coqui_mel)                 # Coqui style:  [B, n_mels, T] -> [B, 1, T * hop]
    wav = plugin.decode_batch(sb_mel)                 # SpeechBrain:  [B, n_mels, T] -> [B, 1, T * hop]

Numpy in gives numpy out; a tensor in gives a float32 tensor on the input's device.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from ..audio.mel import MelConfig, as_tensor
from .adapters import PipelineVocoder, _like_input
from .conventions import MelConvention, get_convention

__all__ = ["VocoderPlugin"]


class VocoderPlugin(PipelineVocoder):
    """Callable wrapper of a :class:`~vocoder.inference.Vocoder` that accepts any toolkit's mel convention per call:
    the generic one of the :mod:`vocoder.plugins.adapters` (same checks and conversion; the pipeline-shaped ones
    are ``vocoder.plugins.get("espnet" | "speechbrain" | "coqui" | "nemo")``).

    Args:
        vocoder: a ``Vocoder``, or anything ``Vocoder.from_pretrained`` accepts (a Hub repo id
            ``"org/name[@REVISION]"`` included; ``None``: the shipped model).
        convention: the default convention of incoming mels (see :mod:`vocoder.plugins.conventions`).
        source_mel: the TTS model's STFT / mel settings, checked against the vocoder's when given.
        device: where a vocoder loaded here runs.
        check_statistics: warn once when the values look like another convention than the declared one.
    """

    pipeline = "plugin"
    default_convention = "hifigan"

    def __init__(self, vocoder=None, convention: Union[str, MelConvention] = "hifigan",
                 source_mel: Optional[MelConfig] = None, device="cpu", check_statistics: bool = False):
        super().__init__(vocoder, convention=convention, source_mel=source_mel, check_statistics=check_statistics,
                         device=device)

    @classmethod
    def from_pretrained(cls, path=None, convention="hifigan", device="cpu", **kwargs) -> "VocoderPlugin":
        return cls(path, convention=convention, device=device, **kwargs)

    @torch.no_grad()
    def forward(self, mel, convention: Union[str, MelConvention, None] = None):
        """``[n_mels, T]`` (``[T, n_mels]`` for time-first conventions) -> ``[T * hop]``; batched -> ``[B, T * hop]``."""
        conv = self.convention if convention is None else get_convention(convention)
        x = as_tensor(mel, "a mel")
        layout = "[T, n_mels]" if conv.time_first else "[n_mels, T]"
        if x.dim() not in (2, 3):
            raise ValueError(f"expected a {conv.name} mel {layout} or batched, got shape {tuple(x.shape)}")
        if conv.time_first:
            if x.shape[-1] != self.n_mels:
                raise ValueError(f"{conv.name} mels are [T, n_mels={self.n_mels}], got shape {tuple(x.shape)}")
            x = x.transpose(-1, -2)
        wav = self.decode(self.to_model_mel(x, f"a {conv.name} mel {layout}", conv))
        return _like_input(wav, mel)

    def inference(self, mel):
        """Coqui-style: ``[B, n_mels, T]`` (or ``[n_mels, T]``) -> ``[B, 1, T * hop]``, in this plugin's convention."""
        wav = self(mel)
        return wav.reshape(-1, 1, wav.shape[-1])

    def decode_batch(self, mel):
        """SpeechBrain-style: ``[B, n_mels, T]`` -> ``[B, 1, T * hop]``."""
        return self.inference(mel)
