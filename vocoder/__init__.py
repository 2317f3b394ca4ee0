"""vocoder: mel spectrogram -> waveform with HiFi-GAN, MelGAN and BigVGAN.

Public surface: :class:`Vocoder`, :class:`MelConfig`, :func:`mel_spectrogram`, :func:`load_audio`.
"""
from .audio import MelConfig, load_audio, mel_spectrogram, save_audio

__version__ = "0.1.0"
__all__ = ["Vocoder", "MelConfig", "mel_spectrogram", "load_audio", "save_audio", "__version__"]


def __getattr__(name):
    # Vocoder pulls in every generator; import it on first use so `import vocoder` stays light.
    if name == "Vocoder":
        from .inference import Vocoder

        return Vocoder
    raise AttributeError(f"module 'vocoder' has no attribute {name!r}")
