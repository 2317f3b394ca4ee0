"""Pieces shared by the discriminators: norms with official key names, padding, input checks, the conv-stack
forward every sub-discriminator runs, EnCodec's 2-D conv stack, and the base of the multi-* wrappers.

Weight norm is :func:`vocoder.nn.weight_normalization.weight_norm` (keys ``weight_g``/``weight_v``, as the generators
use) and spectral norm the hook-based ``torch.nn.utils.spectral_norm`` (``weight_orig``/``weight_u``/
``weight_v``): those are the keys of the official HiFi-GAN and BigVGAN discriminator checkpoints, so they load
with a plain ``load_state_dict``.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.weight_normalization import detach_weight, weight_norm as _weight_norm

__all__ = ["weight_norm", "spectral_norm", "norm_layer", "get_padding", "get_2d_padding", "check_wav", "run_convs",
           "encodec_convs", "MultiDiscriminator"]


def weight_norm(module: nn.Module) -> nn.Module:
    """Weight norm over output channels with the official keys (``weight_g``, ``weight_v``)."""
    return _weight_norm(module, dim=0)


def spectral_norm(module: nn.Module) -> nn.Module:
    """Hook-based spectral norm (``weight_orig``, ``weight_u``, ``weight_v``)."""
    module = torch.nn.utils.spectral_norm(module)
    module.register_forward_hook(detach_weight)  # deepcopy-safe between forwards
    return module


def norm_layer(use_spectral_norm: bool):
    return spectral_norm if use_spectral_norm else weight_norm


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd kernel."""
    return (kernel_size * dilation - dilation) // 2


def get_2d_padding(kernel_size: Tuple[int, int], dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    return ((kernel_size[0] - 1) * dilation[0]) // 2, ((kernel_size[1] - 1) * dilation[1]) // 2


def check_wav(wav: torch.Tensor, who: str, min_length: int = 1) -> None:
    """Raise ``ValueError`` unless ``wav`` is a float tensor ``[B, 1, T]`` with ``T >= min_length``."""
    if not torch.is_tensor(wav):
        raise ValueError(f"{who}: expected a torch.Tensor [B, 1, T], got {type(wav).__name__}")
    if wav.dim() != 3 or wav.shape[1] != 1:
        raise ValueError(f"{who}: expected audio of shape [B, 1, T], got {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise ValueError(f"{who}: expected float audio, got dtype {wav.dtype}")
    if wav.shape[-1] < min_length:
        raise ValueError(f"{who}: audio too short, need at least {min_length} samples, got {wav.shape[-1]}")


def run_convs(x: torch.Tensor, convs: Iterable[nn.Module], conv_post: nn.Module, lrelu_slope: float,
              post_in_fmap: bool = True) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Each conv of ``convs`` then a leaky ReLU, then ``conv_post``: ``(logits [B, N], feature maps)``.

    Every activation is a feature map; ``post_in_fmap`` adds ``conv_post``'s output too (HiFi-GAN's and
    UnivNet's discriminators do, EnCodec's and BigVGAN's CQT discriminator do not).
    """
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), lrelu_slope)
        fmap.append(x)
    x = conv_post(x)
    if post_in_fmap:
        fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


def encodec_convs(filters: int, max_filters: int, filters_scale: int, kernel_size: Tuple[int, int],
                  stride: Tuple[int, int], dilations: Sequence[int]) -> Tuple[nn.ModuleList, nn.Module]:
    """EnCodec's 2-D stack over ``[B, 2, frames, freq]``: ``(convs, conv_post)``.

    A plain (un-normed) input conv to ``filters`` channels, one weight-normed conv per dilation ``d``
    (dilated ``d`` along frames, strided by ``stride``), a ``k x k`` conv (``k = kernel_size[0]``) and the
    1-channel ``conv_post``; channels grow as ``min(filters * filters_scale**i, max_filters)``.
    """
    convs = nn.ModuleList([nn.Conv2d(2, filters, kernel_size, padding=get_2d_padding(kernel_size))])
    in_chs = min(filters_scale * filters, max_filters)
    for i, d in enumerate(dilations):
        out_chs = min(filters_scale ** (i + 1) * filters, max_filters)
        convs.append(weight_norm(nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, dilation=(d, 1),
                                           padding=get_2d_padding(kernel_size, (d, 1)))))
        in_chs = out_chs
    out_chs = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
    k = (kernel_size[0], kernel_size[0])
    convs.append(weight_norm(nn.Conv2d(in_chs, out_chs, k, padding=get_2d_padding(k))))
    conv_post = weight_norm(nn.Conv2d(out_chs, 1, k, padding=get_2d_padding(k)))
    return convs, conv_post


class MultiDiscriminator(nn.Module):
    """Base of the multi-* discriminators: sub-discriminators in ``self.discriminators`` (state-dict keys
    ``discriminators.{i}.*``), each judging its input from :meth:`inputs`.

    ``forward(wav [B, 1, T]) -> (logits: one [B, N_i] per sub-discriminator, feature_maps: one list each)``,
    after checking ``wav`` is ``[B, 1, T]`` float with ``T >= self.min_length``.
    """

    min_length = 1
    discriminators: nn.ModuleList

    def inputs(self, wav: torch.Tensor) -> Iterator[torch.Tensor]:
        """What each sub-discriminator sees, in order: ``wav`` itself unless a subclass says otherwise."""
        for _ in self.discriminators:
            yield wav

    def forward(self, wav: torch.Tensor) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        check_wav(wav, type(self).__name__, min_length=self.min_length)
        logits, fmaps = [], []
        for d, x in zip(self.discriminators, self.inputs(wav)):
            y, f = d(x)
            logits.append(y)
            fmaps.append(f)
        return logits, fmaps
