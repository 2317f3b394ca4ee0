"""Streaming decoding: mel frames in as they come, the audio that is final out, equal to the offline decode.

    sv = StreamingVocoder(vocoder)            # a Vocoder or a bare generator (HiFi-GAN, MelGAN, BigVGAN, Vocos)
    for chunk in mel_chunks:                  # [n_mels, t] or [B, n_mels, t], any t >= 1
        play(sv.push(chunk))                  # [samples] / [B, samples], possibly empty
    play(sv.flush())                          # the rest, with the offline right-edge padding
    sv.reset()                                # (flush resets too) next utterance

Concatenating every ``push`` and the ``flush`` equals ``generator(mel)`` (float rounding aside) for any
chunking. Every layer keeps the left context it needs (see :mod:`vocoder.streaming.layers`), so a chunk costs
in proportion to its own length and the state stays the same size however long the utterance runs. The
delay is the generator's right receptive field, :attr:`StreamingGenerator.lookahead_frames` frames: after
``T`` frames, at least ``(T - lookahead_frames) * hop`` samples are out.

Export: :class:`StreamingGenerator` holds the state outside itself (a ``List[Tensor]``), so it compiles with
``torch.jit.script``: ``states = m.initial_states(batch, ref)``, ``audio, states = m(mel_chunk, states)``,
``audio, states = m.flush(states)``. A scripted module runs the reference anti-aliased activation (the
fused kernels are Python-dispatched extension calls). ``torch.jit.trace`` is not supported: how many samples a
call emits depends on counters inside the state, and a trace would freeze one call's counts.
"""
from __future__ import annotations

import logging
import warnings
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .layers import (StateAllocator, StreamActivation1d, StreamChannelNorm, StreamConcat, StreamConv1d,
                     StreamConvNeXtPointwise, StreamConvTranspose1d, StreamFourierHead, StreamIdentity, StreamISTFT,
                     StreamLayer, StreamMelPrior, StreamPointwise, StreamSequential, StreamStandardize, StreamSum)

__all__ = ["StreamingGenerator", "StreamingVocoder", "build_streaming_generator", "fuse_activations"]

log = logging.getLogger(__name__)

#: Chunks of at least this many frames run the eager network even in scripted mode (see StreamingVocoder).
SCRIPT_MAX_FRAMES = 64


# --------------------------------------------------------------------------------------------------- builders
def _hifigan_block(block: nn.Module) -> StreamLayer:
    from ..nn.blocks import LRELU_SLOPE, ResBlock1, ResBlock2

    ch = block.convs1[0].in_channels if isinstance(block, ResBlock1) else block.convs[0].in_channels
    layers: List[StreamLayer] = []
    if isinstance(block, ResBlock1):
        for c1, c2 in zip(block.convs1, block.convs2):
            f = StreamSequential([StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConv1d.from_conv(c1),
                                  StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConv1d.from_conv(c2)])
            layers.append(StreamSum([f, StreamIdentity()], ch))  # x = xt + x
    elif isinstance(block, ResBlock2):
        for c in block.convs:
            f = StreamSequential([StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConv1d.from_conv(c)])
            layers.append(StreamSum([f, StreamIdentity()], ch))
    else:
        raise ValueError(f"expected a HiFi-GAN ResBlock1/ResBlock2, got {type(block).__name__}")
    return StreamSequential(layers)


def _amp_block(block: nn.Module) -> StreamLayer:
    from ..nn.blocks import AMPBlock1, AMPBlock2

    layers: List[StreamLayer] = []
    if isinstance(block, AMPBlock1):
        ch = block.convs1[0].in_channels
        acts1, acts2 = block.activations[::2], block.activations[1::2]
        for c1, c2, a1, a2 in zip(block.convs1, block.convs2, acts1, acts2):
            f = StreamSequential([StreamActivation1d(a1), StreamConv1d.from_conv(c1),
                                  StreamActivation1d(a2), StreamConv1d.from_conv(c2)])
            layers.append(StreamSum([f, StreamIdentity()], ch))
    elif isinstance(block, AMPBlock2):
        ch = block.convs[0].in_channels
        for c, a in zip(block.convs, block.activations):
            f = StreamSequential([StreamActivation1d(a), StreamConv1d.from_conv(c)])
            layers.append(StreamSum([f, StreamIdentity()], ch))
    else:
        raise ValueError(f"expected a BigVGAN AMPBlock1/AMPBlock2, got {type(block).__name__}")
    return StreamSequential(layers)


def _hifigan(gen: nn.Module) -> StreamSequential:
    from ..nn.blocks import LRELU_SLOPE

    layers: List[StreamLayer] = _input_norm(gen) + [StreamConv1d.from_conv(gen.conv_pre)]
    nk = gen.num_kernels
    for i, up in enumerate(gen.ups):
        layers.append(StreamPointwise("leaky_relu", LRELU_SLOPE))
        layers.append(StreamConvTranspose1d.from_conv(up))
        blocks = [_hifigan_block(gen.resblocks[i * nk + j]) for j in range(nk)]
        layers.append(StreamSum(blocks, up.out_channels, divisor=nk))
    layers += [StreamPointwise("leaky_relu", 0.01), StreamConv1d.from_conv(gen.conv_post), StreamPointwise("tanh")]
    return StreamSequential(layers)


def _bigvgan(gen: nn.Module) -> StreamSequential:
    layers: List[StreamLayer] = _input_norm(gen) + [StreamConv1d.from_conv(gen.conv_pre)]
    nk = gen.num_kernels
    for i, stage in enumerate(gen.ups):
        out_ch = 0
        for up in stage:
            layers.append(StreamConvTranspose1d.from_conv(up))
            out_ch = up.out_channels
        blocks = [_amp_block(gen.resblocks[i * nk + j]) for j in range(nk)]
        layers.append(StreamSum(blocks, out_ch, divisor=nk))
    layers += [StreamActivation1d(gen.activation_post), StreamConv1d.from_conv(gen.conv_post),
               StreamPointwise("tanh" if gen.use_tanh_at_final else "clamp")]
    return StreamSequential(layers)


def _sequence(modules) -> List[StreamLayer]:
    """An ``nn.Sequential`` of pads, convs, transposed convs, leaky ReLUs, tanh and MelGAN residual layers."""
    from ..nn.blocks import MelGANResBlock

    out: List[StreamLayer] = []
    pad: Optional[Tuple[int, int, str]] = None
    for m in modules:
        if pad is not None and not isinstance(m, nn.Conv1d):
            raise ValueError(f"a padding layer must be followed by a Conv1d to stream, got {type(m).__name__}")
        if isinstance(m, (nn.ReflectionPad1d, nn.ReplicationPad1d, nn.ZeroPad1d, nn.ConstantPad1d)):
            if isinstance(m, nn.ConstantPad1d) and float(m.value) != 0.0:
                raise ValueError(f"only zero constant padding streams, got value {m.value}")
            mode = "reflect" if isinstance(m, nn.ReflectionPad1d) else (
                "replicate" if isinstance(m, nn.ReplicationPad1d) else "zeros")
            pad = (int(m.padding[0]), int(m.padding[1]), mode)
        elif isinstance(m, nn.Conv1d):
            if pad is not None:
                if int(m.padding[0]) != 0:
                    raise ValueError("a Conv1d after a padding layer must have padding 0 to stream")
                out.append(StreamConv1d.from_conv(m, pad[0], pad[1], pad[2]))
                pad = None
            else:
                out.append(StreamConv1d.from_conv(m))
        elif isinstance(m, nn.ConvTranspose1d):
            out.append(StreamConvTranspose1d.from_conv(m))
        elif isinstance(m, nn.LeakyReLU):
            out.append(StreamPointwise("leaky_relu", m.negative_slope))
        elif isinstance(m, nn.Tanh):
            out.append(StreamPointwise("tanh"))
        elif isinstance(m, nn.Sequential):
            out.extend(_sequence(m))
        elif isinstance(m, MelGANResBlock):
            ch = m.shortcut.out_channels
            out.append(StreamSum([StreamSequential(_sequence([m.shortcut])), StreamSequential(_sequence(m.block))],
                                 ch))  # shortcut(x) + block(x)
        else:
            raise ValueError(f"no streaming version of {type(m).__name__}")
    if pad is not None:
        raise ValueError("a trailing padding layer cannot stream")
    return out


def _melgan(gen: nn.Module) -> StreamSequential:
    return StreamSequential(_input_norm(gen) + _sequence(gen.model))


def _input_norm(gen: nn.Module) -> List[StreamLayer]:
    """The generator's input normalisation (ParallelWaveGAN weights), if it has one, as a stateless layer."""
    norm = getattr(gen, "input_norm", None)
    return [] if norm is None else [StreamStandardize(norm)]


def _vocos(gen: nn.Module) -> StreamSequential:
    """Vocos: ConvNeXt backbone at frame rate (the 7-tap embed and depthwise convs keep 3 frames of context
    each, a block's residual waits in a :class:`StreamSum` queue), the frame-wise head projection, and the
    inverse STFT's overlap-add. With the pinv prior, the prior's frames wait in a :class:`StreamConcat` queue
    until the backbone's prediction for them is out."""
    from ..generators.vocos import MAX_AMPLITUDE, PRIOR_FLOOR

    bb, head, cfg = gen.backbone, gen.head, gen.config
    layers: List[StreamLayer] = [StreamConv1d.from_conv(bb.embed), StreamChannelNorm(bb.norm)]
    dim = bb.embed.out_channels
    for block in bb.convnext:
        f = StreamSequential([StreamConv1d.from_conv(block.dwconv), StreamConvNeXtPointwise(block)])
        layers.append(StreamSum([f, StreamIdentity()], dim))  # x + pointwise(dwconv(x))
    layers += [StreamChannelNorm(bb.final_layer_norm), StreamFourierHead(head)]
    net = StreamSequential(layers)
    istft = head.istft
    out = StreamISTFT(istft.window, istft.n_fft, istft.hop_length, istft.padding, MAX_AMPLITUDE,
                      with_prior=gen.prior_basis is not None)
    if gen.prior_basis is None:
        return StreamSequential([net, out])
    prior = StreamMelPrior(gen.prior_basis, PRIOR_FLOOR)
    _check_prior(gen, prior)
    n_bins, n_head = head.n_bins, 2 * head.n_bins
    if cfg.prior_input:  # the backbone reads the prior: [prior, head(backbone(prior))]
        return StreamSequential([prior, StreamConcat([StreamIdentity(), net], [n_bins, n_head]), out])
    return StreamSequential([StreamConcat([prior, net], [n_bins, n_head]), out])  # [prior(mel), head(backbone(mel))]


def _check_prior(gen: nn.Module, prior: StreamMelPrior) -> None:
    """The streaming prior repeats ``prior_log_amplitude``'s arithmetic: refuse to build if they disagree."""
    basis = prior.basis
    probe = torch.linspace(-6.0, 2.0, 3 * gen.n_mels, dtype=basis.dtype, device=basis.device).view(1, gen.n_mels, 3)
    with torch.no_grad():
        want = gen.prior_log_amplitude(probe)
        got = prior(probe, [], False)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5, atol=1e-5):
        raise RuntimeError("the streaming amplitude prior differs from VocosGenerator.prior_log_amplitude; "
                           "update vocoder.streaming.layers.StreamMelPrior")


_BUILDERS = {"HiFiGANGenerator": _hifigan, "BigVGANGenerator": _bigvgan, "MelGANGenerator": _melgan,
             "VocosGenerator": _vocos}


def fuse_activations(layer: StreamLayer) -> int:
    """Fold every ``leaky_relu`` directly followed by a conv / transposed conv into that conv (its
    ``pre_slope``), in place, recursively; returns how many were fused.

    Why: the conv copies its input into its context buffer anyway; activating while copying saves one
    tensor and one pass per pair (HiFi-GAN and MelGAN have one such pair per conv). Call before the state
    slots are allocated (the fused pointwise layers own none, so the layout would not change anyway).
    """
    n = 0
    for m in list(layer.modules()):
        if not isinstance(m, StreamSequential):
            continue
        out: List[StreamLayer] = []
        for sub in m.layers:
            prev = out[-1] if out else None
            if (isinstance(sub, (StreamConv1d, StreamConvTranspose1d)) and not sub.pre_act
                    and isinstance(prev, StreamPointwise) and prev.kind == "leaky_relu"):
                sub.pre_act, sub.pre_slope = True, prev.slope
                out[-1] = sub
                n += 1
            else:
                out.append(sub)
        if len(out) != len(m.layers):
            m.layers = nn.ModuleList(out)
    return n


# --------------------------------------------------------------------------------------------------- network
class StreamingGenerator(nn.Module):
    """A generator rebuilt from cached-state layers, state passed explicitly (TorchScript-compatible).

    ``forward(mel [B, n_mels, t], states) -> (audio [B, samples], states)``; ``flush(states) -> (audio, states)``;
    ``initial_states(batch, ref) -> states`` (``ref`` gives device and dtype). The conv weights are copied
    (weight norm folded) when this is built: build it after loading the weights.

    Attributes: ``n_mels``, ``hop_length``, ``n_states``, ``lookahead_frames`` (right receptive field in
    frames: the algorithmic delay), ``left_context_frames`` (left receptive field in frames).
    """

    def __init__(self, body: StreamSequential, n_mels: int, hop_length: int, min_frames: int = 1):
        super().__init__()
        self.body = body
        alloc = StateAllocator()
        body.allocate(alloc)
        self.n_states = alloc.count
        self.n_mels = int(n_mels)
        self.hop_length = int(hop_length)
        self.min_frames = int(min_frames)
        self.lookahead_frames, self.left_context_frames = self._contexts()

    def _contexts(self) -> Tuple[int, int]:
        # Delay in samples after T frames (steady state), from how many outputs each layer can finalise...
        hop = self.hop_length
        delay = max(t * hop - self.body.out_count(t) for t in range(4096, 4096 + 8))
        lookahead = -(-delay // hop)
        # ...and the same from the receptive field (which input frames one frame's samples read).
        left, right = 0, 0
        for f in range(4096, 4096 + 4):
            lo, hi = self.body.in_range(f * hop, f * hop + hop - 1)
            left, right = max(left, f - lo), max(right, hi - f)
        if right != lookahead:
            raise RuntimeError(f"streaming delay ({lookahead} frames) differs from the right receptive field "
                               f"({right} frames): a streaming layer is inconsistent")
        return lookahead, left

    @torch.jit.export
    def initial_states(self, batch: int, ref: torch.Tensor) -> List[torch.Tensor]:
        states: List[torch.Tensor] = [torch.zeros(0) for _ in range(self.n_states)]
        self.body.fill_states(states, batch, ref)
        return states

    def forward(self, mel: torch.Tensor, states: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        states = [s for s in states]  # the caller's list stays as it was
        y = self.body(mel, states, False)
        return y[:, 0], states

    @torch.jit.export
    def flush(self, states: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        states = [s for s in states]
        ref = states[0]  # the first stateful layer's buffer or queue: [B, *, *]
        empty = ref.new_zeros(ref.shape[0], self.n_mels, 0)
        y = self.body(empty, states, True)
        return y[:, 0], states


def build_streaming_generator(generator: nn.Module, fuse: bool = True) -> StreamingGenerator:
    """The streaming twin of a HiFi-GAN, MelGAN, BigVGAN or Vocos generator (same weights, copied).

    ``fuse=False`` keeps every leaky ReLU a layer of its own (see :func:`fuse_activations`; same output).
    """
    name = type(generator).__name__
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"no streaming builder for {name}; expected one of {sorted(_BUILDERS)}")
    body = builder(generator)
    if fuse:
        fuse_activations(body)
    return StreamingGenerator(body, generator.n_mels, generator.hop_length, getattr(generator, "min_frames", 1))


def _script(network: StreamingGenerator) -> torch.jit.ScriptModule:
    """``torch.jit.script`` + ``torch.jit.freeze`` of a streaming network (same state layout, so the eager and
    the scripted module can take turns within one utterance). Freezing inlines the weights and the layer
    attributes as constants, which saves the per-call attribute lookups that dominate short chunks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the fastest here
        scripted = torch.jit.script(network.eval())
        return torch.jit.freeze(scripted, preserved_attrs=["initial_states", "flush"])


# --------------------------------------------------------------------------------------------------- user API
class StreamingVocoder:
    """Push mel frames, get final audio; see the module docstring.

    Args:
        model: a :class:`vocoder.Vocoder` or a generator (``forward(mel [B, n_mels, T]) -> [B, 1, T * hop]``).
        script: ``True``: also build a frozen TorchScript copy of the network and run chunks shorter than
            :data:`SCRIPT_MAX_FRAMES` (and ``flush``) through it, longer ones through the eager network (its FFT
            convolutions); same state, same output. ``"auto"`` (default): ``True`` unless the generator has
            anti-aliased activations (BigVGAN), whose fused kernel is eager-only. ``False``: eager only.
            Measured (1 thread, random weights, stream / offline time): HiFi-GAN V3 3.66x -> 2.46x at 1-frame
            chunks, 1.34x -> 1.11x at 10, about even at 50; V1 4.19x -> 3.47x, 1.50x -> 1.39x, even at 50.
            Scripting costs about 0.6 s (V3) to 2 s (V1) when this is built.
    """

    def __init__(self, model: nn.Module, script: Union[str, bool] = "auto"):
        gen = model.generator if isinstance(getattr(model, "generator", None), nn.Module) else model
        if not isinstance(gen, nn.Module):
            raise ValueError(f"expected a Vocoder or a generator nn.Module, got {type(model).__name__}")
        if script not in ("auto", True, False):
            raise ValueError(f"script must be 'auto', True or False, got {script!r}")
        self.generator = gen
        self.network = build_streaming_generator(gen).eval()
        if script == "auto":
            # Anti-aliased activations: the fused kernel is eager-only; scripting would fall back to the
            # slower reference filter.
            script = not any(isinstance(m, StreamActivation1d) for m in self.network.modules())
        self.scripted: Optional[torch.jit.ScriptModule] = _script(self.network) if script else None
        self.n_mels = self.network.n_mels
        self.hop_length = self.network.hop_length
        self.reset()

    def _pick(self, frames: int):
        """The module for a call of ``frames`` new frames (0: flush): the scripted one below
        :data:`SCRIPT_MAX_FRAMES`, the eager one (FFT convolutions) from there."""
        if self.scripted is not None and frames < SCRIPT_MAX_FRAMES:
            return self.scripted
        return self.network

    def _run(self, frames: int, *args):
        module = self._pick(frames)
        call = module.flush if frames == 0 else module
        # The scripted network runs unoptimised: its calls are large aten ops with nothing to fuse, while the
        # profiling executor re-specialises the graph for every new pattern of chunk shapes (first chunk,
        # steady chunks, a shorter last one, flush), each time re-pooling the frozen weights with O(n^2)
        # tensor compares: measured 2.4 s instead of 0.97 s for the first 3-s utterance of HiFi-GAN V1 in
        # 10-frame chunks, and no faster afterwards. The switch is thread-local and restored on exit.
        with torch.jit.optimized_execution(module is not self.scripted):
            return call(*args)

    @property
    def lookahead_frames(self) -> int:
        """Frames of future input the audio of a frame waits for (the generator's right receptive field)."""
        return self.network.lookahead_frames

    @property
    def left_context_frames(self) -> int:
        return self.network.left_context_frames

    def reset(self) -> None:
        """Forget the current utterance; the next ``push`` starts a new one."""
        self._states: Optional[List[torch.Tensor]] = None
        self._batched: Optional[bool] = None
        self._batch = 0
        self.frames_in = 0
        self.samples_out = 0

    @property
    def device(self) -> torch.device:
        return self._ref().device

    def state_numel(self) -> int:
        """Total elements held in the state (constant in steady state, whatever the utterance length)."""
        return 0 if self._states is None else sum(s.numel() for s in self._states)

    def _ref(self) -> torch.Tensor:
        for b in self.network.buffers():
            if b.is_floating_point():
                return b
        return torch.zeros(0)

    def _check(self, mel) -> torch.Tensor:
        if not torch.is_tensor(mel):
            try:
                import numpy as np

                if isinstance(mel, np.ndarray):
                    mel = torch.from_numpy(np.ascontiguousarray(mel))
            except ImportError:  # pragma: no cover
                pass
        if not torch.is_tensor(mel) or not mel.is_floating_point():
            raise ValueError(f"expected float mel frames [n_mels={self.n_mels}, t] or [B, {self.n_mels}, t], "
                             f"got {type(mel).__name__} {getattr(mel, 'dtype', '')}")
        if mel.dim() not in (2, 3) or mel.shape[-2] != self.n_mels:
            raise ValueError(f"expected mel frames [n_mels={self.n_mels}, t] or [B, n_mels={self.n_mels}, t], "
                             f"got shape {tuple(mel.shape)}")
        batched = mel.dim() == 3
        batch = mel.shape[0] if batched else 1
        if self._batched is not None and (batched != self._batched or batch != self._batch):
            raise ValueError(f"expected chunks shaped like the first of this utterance "
                             f"({'[B=%d, n_mels, t]' % self._batch if self._batched else '[n_mels, t]'}), "
                             f"got {tuple(mel.shape)}; call reset() to start another utterance")
        if not torch.isfinite(mel).all():
            raise ValueError("mel frames contain NaN or inf values")
        return mel if batched else mel.unsqueeze(0)

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        self.samples_out += y.shape[-1]
        y = y.float()
        return y if self._batched else y[0]

    @torch.inference_mode()
    def push(self, mel) -> torch.Tensor:
        """Feed the next frames; returns the samples now final (``[samples]`` or ``[B, samples]``)."""
        x = self._check(mel)
        if self._states is None:
            ref = self._ref()
            self._batched, self._batch = mel.dim() == 3, x.shape[0]
            self._states = self.network.initial_states(x.shape[0], ref)
        ref = self._states[0]
        x = x.to(device=ref.device, dtype=ref.dtype)
        self.frames_in += x.shape[-1]
        y, self._states = self._run(x.shape[-1], x, self._states)
        return self._out(y)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of input: the remaining samples (offline right-edge padding applied); then :meth:`reset`."""
        if self._states is None:
            raise ValueError("flush() before any push(): no utterance to finish")
        if self.frames_in < self.network.min_frames:
            raise ValueError(f"this generator needs at least {self.network.min_frames} frames, "
                             f"got {self.frames_in}")
        y, _ = self._run(0, self._states)
        out = self._out(y)
        expected = self.frames_in * self.hop_length
        if self.samples_out != expected:
            raise RuntimeError(f"streaming emitted {self.samples_out} samples for {self.frames_in} frames, "
                               f"expected {expected}")
        self.reset()
        return out

    def stream(self, mel_chunks):
        """Generator: push each chunk, yield the final audio (non-empty pieces), then the flushed rest."""
        self.reset()
        pushed = False
        for chunk in mel_chunks:
            pushed = True
            y = self.push(chunk)
            if y.shape[-1] > 0:
                yield y
        if pushed:
            y = self.flush()
            if y.shape[-1] > 0:
                yield y
