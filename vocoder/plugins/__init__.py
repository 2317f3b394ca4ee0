"""Bridges to other toolkits: mel conventions (:mod:`.conventions`), adapters with each TTS pipeline's call shape
(:mod:`.adapters`: ``vocoder.plugins.get("espnet", model=...)``), a TTS-facing vocoder (:mod:`.tts`) and the
SpeechBrain export (:mod:`.speechbrain`)."""
from .conventions import CONVENTIONS, MelConvention, convert_mel, get_convention, to_vocoder_mel

__all__ = ["MelConvention", "CONVENTIONS", "convert_mel", "get_convention", "to_vocoder_mel", "VocoderPlugin",
           "get", "available", "PipelineVocoder", "ESPnetVocoder", "SpeechBrainVocoder", "CoquiVocoder",
           "NeMoVocoder", "MelConventionWarning", "guess_convention"]

_ADAPTER_NAMES = {"get", "available", "PipelineVocoder", "ESPnetVocoder", "SpeechBrainVocoder", "CoquiVocoder",
                  "NeMoVocoder", "MelConventionWarning", "guess_convention"}


def __getattr__(name):
    # The plugin and the adapters pull in every generator; import them on first use.
    if name == "VocoderPlugin":
        from .tts import VocoderPlugin

        return VocoderPlugin
    if name in _ADAPTER_NAMES:
        from . import adapters

        return getattr(adapters, name)
    raise AttributeError(f"module 'vocoder.plugins' has no attribute {name!r}")
