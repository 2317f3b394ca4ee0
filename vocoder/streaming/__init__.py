"""Streaming synthesis with cached-state layers: audio out as soon as it is final, equal to the offline decode.

See :mod:`vocoder.streaming.engine` (:class:`StreamingVocoder`, :class:`StreamingGenerator`) and
:mod:`vocoder.streaming.layers` (the cached-state conv, transposed conv, anti-aliased activation, sums,
the inverse STFT's overlap-add).
"""
from .engine import StreamingGenerator, StreamingVocoder, build_streaming_generator

__all__ = ["StreamingVocoder", "StreamingGenerator", "build_streaming_generator"]
