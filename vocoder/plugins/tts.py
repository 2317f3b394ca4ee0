"""A vocoder for TTS pipelines: ``plugin(mel, convention="espnet") -> wav``, without importing any TTS toolkit.

    plugin = VocoderPlugin.from_pretrained("path/to/model.pt")
    wav = plugin(espnet_feats, convention="espnet")   # ESPnet style: [T, n_mels] -> [T * hop] (AbsVocoder.forward)
    wav = plugin.inference(coqui_mel)                 # Coqui style:  [B, n_mels, T] -> [B, 1, T * hop]
    wav = plugin.decode_batch(sb_mel)                 # SpeechBrain:  [B, n_mels, T] -> [B, 1, T * hop]

Numpy in gives numpy out; a tensor in gives a float32 tensor on the input's device.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ..audio.mel import MelConfig
from ..audio.mel import as_tensor
from ..inference import Vocoder
from .conventions import MelConvention, get_convention, to_vocoder_mel

__all__ = ["VocoderPlugin"]


class VocoderPlugin:
    """Callable wrapper of a :class:`~vocoder.inference.Vocoder` that accepts other toolkits' mel conventions.

    Args:
        vocoder: a ``Vocoder``, or anything ``Vocoder.from_pretrained`` accepts (``None``: the shipped model).
        convention: the default convention of incoming mels (see :mod:`vocoder.plugins.conventions`).
        source_mel: the TTS model's STFT / mel settings, checked against the vocoder's when given.
        device: where a vocoder loaded here runs.
    """

    def __init__(self, vocoder=None, convention: Union[str, MelConvention] = "hifigan",
                 source_mel: Optional[MelConfig] = None, device="cpu"):
        if not isinstance(vocoder, Vocoder):
            vocoder = Vocoder.from_pretrained(vocoder, device=device)
        self.vocoder = vocoder
        self.convention = get_convention(convention)
        self.source_mel = source_mel

    @classmethod
    def from_pretrained(cls, path=None, convention="hifigan", device="cpu", **kwargs) -> "VocoderPlugin":
        return cls(path, convention=convention, device=device, **kwargs)

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    @property
    def hop_length(self) -> int:
        return self.vocoder.hop_length

    def __call__(self, mel, convention: Union[str, MelConvention, None] = None):
        """``[n_mels, T]`` (``[T, n_mels]`` for time-first conventions) -> ``[T * hop]``; batched -> ``[B, T * hop]``."""
        conv = self.convention if convention is None else get_convention(convention)
        is_numpy = isinstance(mel, np.ndarray)
        x = as_tensor(mel, "a mel")  # same conversion and error as Vocoder's own input check
        device = x.device
        if not x.is_floating_point():
            raise ValueError(f"expected a float mel, got dtype {x.dtype}")
        if x.dim() not in (2, 3):
            layout = "[T, n_mels]" if conv.time_first else "[n_mels, T]"
            raise ValueError(f"expected a {conv.name} mel {layout} or batched, got shape {tuple(x.shape)}")
        if conv.time_first and x.shape[-1] != self.vocoder.n_mels:
            raise ValueError(f"{conv.name} mels are [T, n_mels={self.vocoder.n_mels}], got shape {tuple(x.shape)}")
        ours = to_vocoder_mel(x, conv, self.source_mel, self.source_mel and self.vocoder.mel_config)
        wav = self.vocoder(ours)
        return wav.cpu().numpy() if is_numpy else wav.to(device)

    def inference(self, mel):
        """Coqui-style: ``[B, n_mels, T]`` (or ``[n_mels, T]``) -> ``[B, 1, T * hop]``, in this plugin's convention."""
        wav = self(mel)
        return wav.reshape(-1, 1, wav.shape[-1])

    def decode_batch(self, mel):
        """SpeechBrain-style: ``[B, n_mels, T]`` -> ``[B, 1, T * hop]``."""
        return self.inference(mel)
