"""GAN-TTS's random window discriminators (Bińkowski et al. 2020), on a hop-based mel.

An ensemble of small discriminators, each judging one random window of the waveform per item: ``len(window_frames)``
unconditional ones (uRWD) and as many conditional ones (cRWD) that also see the mel frames under their window.
Each window is first folded to a fixed rate: ``m * hop`` samples become ``[m, hop]`` (time step ``t`` holds samples
``t*m .. t*m + m - 1`` as channels), so every sub-discriminator sees ``hop`` time steps whatever its window. Then
a stack of DBlocks (downsample by average pooling, ReLU, conv 3, ReLU, dilated conv 3, plus a 1x1 shortcut); a
cRWD's conditional DBlock sits where the time axis reaches the frame rate and adds the 1x1-projected mel frames
after its first conv; global average pooling and a linear layer give one logit per window.

Our adaptation: the paper's windows are 240, 480, 960, 1920, 3600 samples at 24 kHz (2 .. 30 frames of its 120-sample
conditioning hop, 10 .. 150 ms). With a hop of 256 at 22.05 kHz the window sizes are whole numbers of frames,
``window_frames = (1, 2, 4, 8, 16)`` (256 .. 4096 samples, 11.6 .. 186 ms), so a conditional window starts on a
frame boundary and its frames are exactly mel frames ``j .. j + m - 1``; the last size is 16 rather than 15 so the
audio reaches the frame rate by whole pooling factors. Unconditional windows start at any sample.

Frame ``k`` of the mel is taken to describe samples ``[k * hop, (k + 1) * hop)`` (our ``center=False`` mel, centred
on ``k * hop + hop / 2``; a centred mel is half a hop earlier). Windows are drawn per item per call from
``torch.Generator`` seeded with ``seed`` (tests), else from the global RNG; inside ``with d.same_windows():``
every call on the same batch size and length reuses the windows drawn first (to judge real and generated audio on
the same windows, as feature matching needs).

``forward(wav [B, 1, T], mel [B, n_mels, >= T // hop]) -> (logits: 2 x len(window_frames) tensors [B, 1],
feature_maps: one list of DBlock outputs each)``; uRWDs first, then cRWDs.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import check_wav, norm_layer

__all__ = ["DBlock", "WindowDiscriminator", "RandomWindowDiscriminators"]


class DBlock(nn.Module):
    """GAN-TTS's DBlock: ``[B, C_in, T] -> [B, C_out, T / factor]``; with ``cond_channels`` the conditional DBlock
    (``forward(x, c)`` adds ``1x1 conv(c [B, cond_channels, T / factor])`` after the first conv)."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, norm_f, cond_channels: int = 0):
        super().__init__()
        self.factor = int(factor)
        self.conv1 = norm_f(nn.Conv1d(in_channels, out_channels, 3, padding=1))
        self.conv2 = norm_f(nn.Conv1d(out_channels, out_channels, 3, padding=2, dilation=2))
        self.shortcut = norm_f(nn.Conv1d(in_channels, out_channels, 1))
        self.cond = norm_f(nn.Conv1d(cond_channels, out_channels, 1)) if cond_channels else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool1d(x, self.factor) if self.factor > 1 else x

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv1(F.relu(self._pool(x)))
        if self.cond is not None:
            h = h + self.cond(c)
        h = self.conv2(F.relu(h))
        return h + self._pool(self.shortcut(x))


class WindowDiscriminator(nn.Module):
    """One RWD for windows of ``frames * hop_length`` samples: ``forward(window [B, frames, hop], mel [B, n_mels,
    frames] or None) -> (logits [B, 1], feature maps: the DBlock outputs)``.

    Unconditional: DBlocks ``frames -> 64 (x1) -> 128 (/4) -> 256 (/4) -> 256 -> 256``. Conditional: ``frames -> 64
    (x1) -> 128 (/4)``, the conditional DBlock to 256 pooling down to ``frames`` time steps (the frame rate), then
    ``256 -> 256`` twice. Channels scale with ``channel_mult``.
    """

    def __init__(self, frames: int, hop_length: int, n_mels: int = 0, channel_mult: float = 1.0,
                 use_spectral_norm: bool = True):
        super().__init__()
        self.frames, self.hop_length = int(frames), int(hop_length)
        self.conditional = n_mels > 0
        norm_f = norm_layer(use_spectral_norm)
        c64, c128, c256 = (max(1, int(c * channel_mult)) for c in (64, 128, 256))
        if self.conditional:
            if (hop_length // 4) % frames or hop_length % 4:
                raise ValueError(f"a conditional window of {frames} frames needs (hop_length / 4) divisible by "
                                 f"{frames} to pool down to the frame rate, got hop_length={hop_length}")
            blocks = [DBlock(frames, c64, 1, norm_f), DBlock(c64, c128, 4, norm_f),
                      DBlock(c128, c256, hop_length // 4 // frames, norm_f, cond_channels=n_mels),
                      DBlock(c256, c256, 1, norm_f), DBlock(c256, c256, 1, norm_f)]
            self.cond_index = 2
        else:
            if hop_length % 16:
                raise ValueError(f"an unconditional window pools its {hop_length} time steps by 16, "
                                 f"hop_length must be a multiple of 16, got {hop_length}")
            blocks = [DBlock(frames, c64, 1, norm_f), DBlock(c64, c128, 4, norm_f), DBlock(c128, c256, 4, norm_f),
                      DBlock(c256, c256, 1, norm_f), DBlock(c256, c256, 1, norm_f)]
            self.cond_index = -1
        self.blocks = nn.ModuleList(blocks)
        self.linear = norm_f(nn.Linear(c256, 1))

    def forward(self, x: torch.Tensor, mel: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        fmap = []
        for i, block in enumerate(self.blocks):
            x = block(x, mel) if i == self.cond_index else block(x)
            fmap.append(x)
        return self.linear(x.mean(dim=-1)), fmap


class RandomWindowDiscriminators(nn.Module):
    """GAN-TTS's RWD ensemble (see the module docstring); registered as ``"rwd"``.

    Args:
        window_frames: window sizes in mel frames (one uRWD and one cRWD each).
        hop_length, n_mels: of the recipe's mel (the conditional windows' frames, the conditioning's bands).
        unconditional, conditional: which halves of the ensemble to build (at least one).
        channel_mult: scales the channel counts 64, 128, 256.
        use_spectral_norm: spectral norm (the paper's) instead of weight norm.
        seed: windows from ``torch.Generator().manual_seed(seed)``; ``None``: the global RNG.
    """

    #: constructor arguments a recipe fills from its mel settings when the discriminator's args leave them out
    mel_arguments = ("hop_length", "n_mels")

    def __init__(self, window_frames: Sequence[int] = (1, 2, 4, 8, 16), hop_length: int = 256, n_mels: int = 80,
                 unconditional: bool = True, conditional: bool = True, channel_mult: float = 1.0,
                 use_spectral_norm: bool = True, seed: Optional[int] = None):
        super().__init__()
        frames = [int(m) for m in window_frames]
        if not frames or any(m < 1 for m in frames):
            raise ValueError(f"window_frames must be a non-empty list of positive frame counts, got {window_frames!r}")
        if not (unconditional or conditional):
            raise ValueError("RandomWindowDiscriminators needs unconditional or conditional windows, both are off")
        if hop_length < 1 or (conditional and n_mels < 1):
            raise ValueError(f"hop_length and n_mels must be >= 1, got {hop_length}, {n_mels}")
        self.window_frames, self.hop_length, self.n_mels = frames, int(hop_length), int(n_mels)
        subs = []
        if unconditional:
            subs += [WindowDiscriminator(m, hop_length, 0, channel_mult, use_spectral_norm) for m in frames]
        if conditional:
            subs += [WindowDiscriminator(m, hop_length, n_mels, channel_mult, use_spectral_norm) for m in frames]
        self.discriminators = nn.ModuleList(subs)
        #: CombinedDiscriminator passes ``mel`` to members that declare it
        self.conditional = bool(conditional)
        self.min_length = max(frames) * self.hop_length
        self.rng = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        self._pinned: Optional[Dict[tuple, List[torch.Tensor]]] = None

    @property
    def window_sizes(self) -> List[int]:
        """Window length in samples of each sub-discriminator, in order."""
        return [d.frames * self.hop_length for d in self.discriminators]

    @contextlib.contextmanager
    def same_windows(self) -> Iterator[None]:
        """Within the block, calls with the same batch size and lengths reuse the first call's windows."""
        outer, self._pinned = self._pinned, {}
        try:
            yield
        finally:
            self._pinned = outer

    def draw_starts(self, batch: int, length: int, frames: int) -> List[torch.Tensor]:
        """Window start samples, one ``LongTensor [batch]`` per sub-discriminator: any sample for a uRWD, a frame
        boundary ``j * hop`` (``j + m <= frames``) for a cRWD."""
        key = (batch, length, frames)
        if self._pinned is not None and key in self._pinned:
            return self._pinned[key]
        starts = []
        for d in self.discriminators:
            if d.conditional:
                j = torch.randint(0, frames - d.frames + 1, (batch,), generator=self.rng)
                starts.append(j * self.hop_length)
            else:
                starts.append(torch.randint(0, length - d.frames * self.hop_length + 1, (batch,),
                                            generator=self.rng))
        if self._pinned is not None:
            self._pinned[key] = starts
        return starts

    def _check_mel(self, wav: torch.Tensor, mel: Optional[torch.Tensor]) -> int:
        """The usable frame count: ``min(mel frames, T // hop)``; errors name what was wrong."""
        b, _, t = wav.shape
        if not self.conditional:
            return t // self.hop_length
        if mel is None:
            raise ValueError("RandomWindowDiscriminators has conditional windows: pass mel [B, n_mels, T // hop] too")
        if not torch.is_tensor(mel) or mel.dim() != 3 or mel.shape[0] != b or mel.shape[1] != self.n_mels:
            shape = tuple(mel.shape) if torch.is_tensor(mel) else type(mel).__name__
            raise ValueError(f"RandomWindowDiscriminators: expected mel [{b}, {self.n_mels}, frames], got {shape}")
        frames = min(mel.shape[-1], t // self.hop_length)
        if mel.shape[-1] < t // self.hop_length or frames < max(self.window_frames):
            raise ValueError(f"RandomWindowDiscriminators: mel of {mel.shape[-1]} frames does not cover audio of {t} "
                             f"samples (hop {self.hop_length}) or the largest window ({max(self.window_frames)} frames)")
        return frames

    def forward(self, wav: torch.Tensor, mel: Optional[torch.Tensor] = None
                ) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        check_wav(wav, type(self).__name__, min_length=self.min_length)
        frames = self._check_mel(wav, mel)
        b, _, t = wav.shape
        logits, fmaps = [], []
        for d, start in zip(self.discriminators, self.draw_starts(b, t, frames)):
            start = start.to(wav.device)
            w = d.frames * self.hop_length
            idx = start[:, None] + torch.arange(w, device=wav.device)  # [B, w]
            window = wav[:, 0, :].gather(1, idx)
            # fold to a fixed rate: [B, m * hop] -> [B, hop, m] -> [B, m, hop]
            x = window.view(b, self.hop_length, d.frames).transpose(1, 2)
            c = None
            if d.conditional:
                j = (start // self.hop_length)[:, None] + torch.arange(d.frames, device=wav.device)  # [B, m]
                c = mel.gather(2, j[:, None, :].expand(-1, mel.shape[1], -1)).to(wav.dtype)
            y, f = d(x, c)
            logits.append(y)
            fmaps.append(f)
        return logits, fmaps
