"""Audio front end: file I/O and the log-mel spectrogram."""
from .io import AUDIO_EXTENSIONS, load_audio, resample, save_audio
from .mel import (MelConfig, MelSpectrogram, NonFiniteAudio, as_tensor, check_audio, check_mel, check_mel_range,
                  max_log_mel, mel_filterbank, mel_limit, mel_spectrogram, spectral_normalize)

__all__ = ["AUDIO_EXTENSIONS", "load_audio", "save_audio", "resample", "MelConfig", "MelSpectrogram",
           "mel_filterbank", "mel_spectrogram", "spectral_normalize", "as_tensor", "check_mel",
           "check_mel_range", "max_log_mel", "mel_limit", "NonFiniteAudio", "check_audio"]
