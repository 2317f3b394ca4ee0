"""Constants shared by the inference-side tests (CLI, Vocoder, plugins)."""
from vocoder.audio.mel import MelConfig

# A tiny mel setup: 8 kHz, hop 16, 20 bands; models built for it run in milliseconds on CPU.
TINY_MEL = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=20, fmin=0.0, fmax=4000.0)
