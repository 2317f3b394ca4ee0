"""Training: data (segments + mels), the Lightning GAN module, recipes."""
from .data import VocoderDataModule

__all__ = ["VocoderDataModule"]
