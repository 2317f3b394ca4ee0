"""Cached-state streaming layers: the same weights as the offline layers, the past kept as explicit state.

Every layer is an ``nn.Module`` with ``forward(x [B, C, t], states: List[Tensor], final: bool) -> y [B, C', t']``
(see :mod:`.base`); a generator family builds its streaming network from these (its ``streaming`` builder,
registered with the family) and :mod:`vocoder.streaming` runs it.
"""
from .activation import StreamActivation1d, activation_context
from .base import (StateAllocator, StreamConcat, StreamIdentity, StreamLayer, StreamPointwise, StreamSequential,
                   StreamStandardize, StreamSum)
from .builders import stream_amp_block, stream_input_norm, stream_resblock, stream_sequence
from .conv import StreamConv1d, StreamConvTranspose1d
from .fourier import StreamChannelNorm, StreamConvNeXtPointwise, StreamFourierHead, StreamISTFT, StreamMelPrior

__all__ = ["StreamLayer", "StreamConv1d", "StreamConvTranspose1d", "StreamActivation1d", "StreamPointwise",
           "StreamIdentity", "StreamSequential", "StreamSum", "StreamConcat", "StreamChannelNorm", "StreamStandardize",
           "StreamConvNeXtPointwise", "StreamFourierHead", "StreamMelPrior", "StreamISTFT", "StateAllocator",
           "activation_context", "stream_input_norm", "stream_sequence", "stream_resblock", "stream_amp_block"]
