"""Streaming synthesis with cached-state layers: audio out as soon as it is final, equal to the offline decode.

See :mod:`vocoder.streaming.engine` (:class:`StreamingVocoder`, :class:`StreamingGenerator`,
:func:`push_together`). The cached-state layers (conv, transposed conv, anti-aliased activation, sums, the inverse
STFT's overlap-add) live below the generators, in :mod:`vocoder.nn.streaming`, so that each generator family
registers its own streaming builder.
"""
from .engine import (RTPGHIPhase, StreamingGenerator, StreamingVocoder, build_streaming_generator, push_together,
                     stream_phase)

__all__ = ["StreamingVocoder", "StreamingGenerator", "RTPGHIPhase", "build_streaming_generator", "push_together",
           "stream_phase"]
