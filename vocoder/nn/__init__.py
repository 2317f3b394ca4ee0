"""Layers the generators are built from: Snake activations, anti-aliased resampling, residual blocks, weight norm,
the F0 predictor and the harmonic-plus-noise source (HiFTNet)."""
from .activations import Snake, SnakeBeta
from .blocks import AMPBlock1, AMPBlock2, MelGANResBlock, ResBlock1, ResBlock2, get_padding, init_weights, make_activation
from .filters import Activation1d, DownSample1d, LowPassFilter1d, UpSample1d, kaiser_sinc_filter1d
from .weight_normalization import effective_weight, fold_weight_norm, has_weight_norm, remove_weight_norm, weight_norm
from .harmonic_source import HarmonicSource
from .f0_predictor import F0Predictor, load_f0_predictor, stream_f0_predictor

__all__ = ["Snake", "SnakeBeta", "Activation1d", "UpSample1d", "DownSample1d", "LowPassFilter1d",
           "kaiser_sinc_filter1d", "ResBlock1", "ResBlock2", "AMPBlock1", "AMPBlock2", "MelGANResBlock", "get_padding",
           "init_weights", "make_activation", "weight_norm", "remove_weight_norm", "has_weight_norm", "effective_weight",
           "fold_weight_norm", "HarmonicSource", "F0Predictor", "stream_f0_predictor", "load_f0_predictor"]
