"""Training losses for GAN vocoders.

Published weights (total generator loss = sum of weight x term):

=============================  ==========================================================
HiFi-GAN (V1-V3)               mel L1 (:class:`MelL1Loss`) 45, feature matching 2, adversarial (lsgan) 1
BigVGAN v1                     as HiFi-GAN (mel 45, fm 2, adv 1) with MPD + MRD
BigVGAN v2                     multi-scale mel (:class:`MultiScaleMelLoss`) 15, fm 2, adv 1, MPD + CQTD
Parallel WaveGAN               multi-resolution STFT (sc + log-mag) 1, adversarial 4
MelGAN                         hinge adversarial 1, feature matching 10
=============================  ==========================================================

:func:`feature_matching_loss` has no built-in factor (BigVGAN's ``feature_loss`` multiplies by 2): the
weight 2 is the caller's.

Each module here declares the losses it holds (:mod:`.registry`); the recipe's ``losses`` section and the training
step are built from those declarations. Every module of this package is imported here, so a new loss is its module
(and its test): the modules below first, in the order of the recipe's keys and of the training step's sum, then
any other, by name.
"""
import importlib as _importlib
import pkgutil as _pkgutil

from .adversarial import ADVERSARIAL_KINDS, discriminator_adversarial_loss, generator_adversarial_loss
from .feature_matching import feature_matching_loss
from .mel import MelL1Loss, MultiScaleMelLoss
from .stft import MultiResolutionSTFTLoss
from .fourier import FourierLosses, STFTFrames, anti_wrap
from .registry import (LossContext, LossSettings, LossSpec, build_losses, get_loss, loss_defaults, loss_specs,
                       reconstruction_terms, terms)

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    _importlib.import_module(f"{__name__}.{_module}")  # already imported: a no-op

__all__ = [
    "ADVERSARIAL_KINDS", "generator_adversarial_loss", "discriminator_adversarial_loss", "feature_matching_loss",
    "MelL1Loss", "MultiScaleMelLoss", "FourierLosses", "STFTFrames", "anti_wrap", "MultiResolutionSTFTLoss", "PAPER_WEIGHTS",
    "LossContext", "LossSettings", "LossSpec", "build_losses", "get_loss", "loss_defaults", "loss_specs",
    "reconstruction_terms", "terms",
]

#: loss weights as published, keyed by system
PAPER_WEIGHTS = {
    "hifigan": {"mel": 45.0, "feature_matching": 2.0, "adversarial": 1.0},
    "bigvgan_v1": {"mel": 45.0, "feature_matching": 2.0, "adversarial": 1.0},
    "bigvgan_v2": {"multiscale_mel": 15.0, "feature_matching": 2.0, "adversarial": 1.0},
    "parallel_wavegan": {"stft": 1.0, "adversarial": 4.0},
    "melgan": {"feature_matching": 10.0, "adversarial": 1.0},
}
