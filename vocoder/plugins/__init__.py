"""Bridges to other toolkits: mel conventions (:mod:`.conventions`) and a TTS-facing vocoder (:mod:`.tts`)."""
from .conventions import CONVENTIONS, MelConvention, convert_mel, get_convention, to_vocoder_mel

__all__ = ["MelConvention", "CONVENTIONS", "convert_mel", "get_convention", "to_vocoder_mel", "VocoderPlugin"]


def __getattr__(name):
    # The plugin pulls in every generator; import it on first use.
    if name == "VocoderPlugin":
        from .tts import VocoderPlugin

        return VocoderPlugin
    raise AttributeError(f"module 'vocoder.plugins' has no attribute {name!r}")
