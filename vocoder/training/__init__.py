"""Training: recipes (YAML dicts) typed once into a :class:`~vocoder.training.settings.TrainingRecipe`, the data
(segments + mels), the Lightning GAN module (:mod:`.lightning_module`), checkpoint files (:mod:`.checkpointing`),
callbacks and the runner."""
from .data import VocoderDataModule

__all__ = ["VocoderDataModule"]
