"""Audio front end: file I/O and the log-mel spectrogram."""
from .io import AUDIO_EXTENSIONS, load_audio, resample, save_audio
from .mel import MelConfig, MelSpectrogram, as_tensor, check_mel, mel_filterbank, mel_spectrogram, spectral_normalize

__all__ = ["AUDIO_EXTENSIONS", "load_audio", "save_audio", "resample", "MelConfig", "MelSpectrogram",
           "mel_filterbank", "mel_spectrogram", "spectral_normalize", "as_tensor", "check_mel"]
