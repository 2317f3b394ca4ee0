"""Tiny models of every generator family on the tiny mel (8 kHz, hop 16, 20 bands), with weights that make a
non-trivial output, for the export tests (SpeechBrain, TorchScript, ONNX)."""
import torch

from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder
from vocoder.audio.mel import mel_spectrogram

from conftest import speech_like
from helpers import TINY_MEL

FAMILIES = {
    "hifigan": ("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                            "upsample_initial_channel": 32, "resblock": "1", "resblock_kernel_sizes": [3, 5],
                            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]}),
    "melgan": ("melgan", {"n_mels": 20, "ngf": 8, "ratios": [4, 4], "n_residual_layers": 2}),
    "bigvgan": ("bigvgan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                            "upsample_initial_channel": 16, "resblock_kernel_sizes": [3],
                            "resblock_dilation_sizes": [[1, 3, 5]], "activation": "snakebeta",
                            "snake_logscale": True}),
    "vocos": ("vocos", {"n_mels": 20, "dim": 32, "intermediate_dim": 64, "num_layers": 2, "n_fft": 64,
                        "hop_length": 16, "padding": "center"}),
    # n_fft 128: the pinv prior of the 64-point, 20-band filterbank is near singular (entries ~1e8), so float32
    # rounding alone moves its output (any two matmul orders differ); at 128 points the entries stay ~1e2
    "vocos_prior": ("vocos", {"n_mels": 20, "dim": 32, "intermediate_dim": 64, "num_layers": 2, "n_fft": 128,
                              "hop_length": 16, "padding": "same", "head": "atan2", "prior": "pinv",
                              "sample_rate": 8000, "fmin": 0.0, "fmax": 4000.0}),
}


def tiny_vocoder(family: str, seed: int = 0) -> Vocoder:
    torch.manual_seed(seed)
    name, cfg = FAMILIES[family]
    gen = build_generator(name, cfg)
    with torch.no_grad():  # trained-looking: unit-norm layers, small biases (the default init is near silent)
        for pname, p in gen.named_parameters():
            if pname.endswith("weight_g"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif pname.endswith("weight_v"):
                p.copy_(torch.randn_like(p))
            elif pname.endswith("bias") and name != "vocos":
                p.copy_(0.01 * torch.randn_like(p))
    return Vocoder(gen, TINY_MEL)


def tiny_mels(batch: int = 2, seconds: float = 0.3):
    """``[B, 20, T]`` log-mels of speech-like audio (different voices)."""
    return torch.stack([mel_spectrogram(speech_like(seconds, TINY_MEL.sample_rate, seed), TINY_MEL)
                        for seed in range(batch)])
