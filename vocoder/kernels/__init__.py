"""Fused kernels for hot layers (BigVGAN's anti-aliased Snake activation), with the PyTorch reference as truth.

Use :func:`anti_aliased_activation` (called by ``vocoder.nn.filters.Activation1d``) and
:func:`kernels_available`; set ``VOCODER_KERNELS=0`` to force the reference. Building is lazy (first use).
"""

from vocoder.kernels.dispatch import anti_aliased_activation, kernels_available, kernels_enabled, unsupported_reason

__all__ = ["anti_aliased_activation", "kernels_available", "kernels_enabled", "unsupported_reason"]
