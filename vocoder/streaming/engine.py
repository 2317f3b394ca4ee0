"""Streaming decoding: mel frames in as they come, the audio that is final out, equal to the offline decode.

    sv = StreamingVocoder(vocoder)            # a Vocoder or a bare generator (HiFi-GAN, MelGAN, BigVGAN, Vocos)
    for chunk in mel_chunks:                  # [n_mels, t] or [B, n_mels, t], any t >= 1
        play(sv.push(chunk))                  # [samples] / [B, samples], possibly empty
    play(sv.flush())                          # the rest, with the offline right-edge padding
    sv.reset()                                # (flush resets too) next utterance

Concatenating every ``push`` and the ``flush`` equals ``generator(mel)`` (float rounding aside) for any
chunking. Every layer keeps the left context it needs (see :mod:`vocoder.nn.streaming`), so a chunk costs
in proportion to its own length and the state stays the same size however long the utterance runs. The
delay is the generator's right receptive field, :attr:`StreamingGenerator.lookahead_frames` frames: after
``T`` frames, at least ``(T - lookahead_frames) * hop`` samples are out.

Many streams at once: :func:`push_together` runs the next chunk of several decoders of the same model as one
batched call where their states line up (same chunk length, same position counters), and splits the state again;
each decoder's output is what its own ``push`` would give (float rounding aside). A server with many open streams
uses it to pay the per-call cost once per round instead of once per stream.

Export: :class:`StreamingGenerator` holds the state outside itself (a ``List[Tensor]``), so it compiles with
``torch.jit.script``: ``states = m.initial_states(batch, ref)``, ``audio, states = m(mel_chunk, states)``,
``audio, states = m.flush(states)``. A scripted module runs the reference anti-aliased activation (the
fused kernels are Python-dispatched extension calls). ``torch.jit.trace`` is not supported: how many samples a
call emits depends on counters inside the state, and a trace would freeze one call's counts.
"""
from __future__ import annotations

import logging
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..audio.mel import MelConfig, check_audio, check_mel
from ..generators.registry import streaming_builder
from ..nn.phase_retrieval import RTPGHIStream
from ..nn.streaming import (StateAllocator, StreamActivation1d, StreamConv1d, StreamConvTranspose1d, StreamISTFT,
                            StreamLayer, StreamPointwise, StreamSequential)

__all__ = ["StreamingGenerator", "StreamingVocoder", "RTPGHIPhase", "build_streaming_generator", "fuse_activations",
           "push_together", "stream_phase", "STREAM_PHASES"]

log = logging.getLogger(__name__)

#: Chunks of at least this many frames run the eager network even in scripted mode (see StreamingVocoder).
SCRIPT_MAX_FRAMES = 64

#: What :class:`StreamingVocoder` takes the phase from (``phase=``).
STREAM_PHASES = ("auto", "model", "rtpghi")


def stream_phase(model) -> str:
    """The phase a stream of ``model`` uses by default: ``"rtpghi"`` for a Vocoder whose offline phase is computed
    from the amplitude (``phase="pghi"`` or ``"rtpghi"``; PGHI needs the whole utterance, RTPGHI is its
    streaming form), else ``"model"``."""
    return "rtpghi" if getattr(model, "phase", "model") in ("pghi", "rtpghi") else "model"


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
    body = streaming_builder(generator)(generator)
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


# --------------------------------------------------------------------------------------------------- phase stage
class RTPGHIPhase:
    """The RTPGHI phase of one stream item: the Fourier frames of a streamed network in (``[C, t]``, the channels
    :class:`StreamISTFT` reads), the same frames out with their phase channels replaced by RTPGHI's from their
    amplitude, one frame later (RTPGHI's time derivative is centred). The amplitude is the one the inverse STFT
    synthesises (:meth:`StreamISTFT.amplitude`), as offline ``VocosGenerator.refined(phase="rtpghi")`` takes it."""

    def __init__(self, istft: StreamISTFT):
        self.istft = istft
        self.phase = RTPGHIStream(istft.hop, istft.n_fft)
        self.waiting: Optional[torch.Tensor] = None  # [C, k] frames pushed, phase not out yet

    @property
    def pending_frames(self) -> int:
        return 0 if self.waiting is None else self.waiting.shape[1]

    def _release(self, phase) -> torch.Tensor:
        n = phase.shape[1]
        out = self.waiting[:, :n].clone()
        out[-self.istft.n_bins:] = torch.from_numpy(phase).to(out.dtype)  # float64 -> float32, as offline
        self.waiting = self.waiting[:, n:]
        return out

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """``[C, t]`` -> ``[C, t']`` (the frames whose phase is now final)."""
        self.waiting = frames if self.waiting is None else torch.cat([self.waiting, frames], dim=1)
        return self._release(self.phase.push(self.istft.amplitude(frames[None])[0]))

    def flush(self) -> torch.Tensor:
        """The last frame (``[C, 1]``; ``[C, 0]`` if none); then ready for the next utterance."""
        if self.waiting is None:
            raise ValueError("RTPGHIPhase.flush() before any push()")
        out = self._release(self.phase.flush(self.istft.n_bins))
        self.waiting = None
        return out


def _with_rtpghi(body: StreamSequential, x: torch.Tensor, states: List[torch.Tensor], final: bool,
                 phases: Sequence[RTPGHIPhase]) -> torch.Tensor:
    """``body(x, states, final)`` of a Fourier network with the phase of its frames taken from ``phases`` (one
    :class:`RTPGHIPhase` per item) between the network and its inverse STFT (the body's last layer)."""
    y = x
    for layer in body.layers[:-1]:
        y = layer(y, states, final)
    rows = [p.push(y[b]) for b, p in enumerate(phases)]
    if final:
        rows = [torch.cat([r, p.flush()], dim=1) for r, p in zip(rows, phases)]
    return body.layers[-1](torch.stack(rows), states, final)


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
        mel_config: the model's mel settings (default: ``model.mel_config`` of a Vocoder; none for a bare
            generator): chunks with values over its :func:`vocoder.audio.mel.mel_limit` are refused.
        phase: ``"model"``: the network's own phase (the plain decode); ``"rtpghi"`` (Fourier heads): the phase
            computed from the streamed amplitude by RTPGHI (:class:`RTPGHIPhase`), one frame more of lookahead;
            ``"auto"`` (default): ``"rtpghi"`` for a Vocoder whose offline phase is ``"pghi"`` or ``"rtpghi"``, else
            ``"model"`` (:func:`stream_phase`). With RTPGHI the stream equals the offline decode with
            ``phase="rtpghi", phase_iterations=0`` (phase refinement is offline only): the heap integration is bit for
            bit the offline one given the same amplitude, and the amplitude a chunked network computes equals the
            whole utterance's to float rounding, so the audio agrees to a tolerance (tests/test_streaming.py states
            it) rather than to rounding; the network runs eager.

    :meth:`push` and :meth:`flush` refuse NaN / inf output (:class:`vocoder.audio.mel.NonFiniteAudio`);
    :func:`push_together` leaves that check to its caller (one stream's fault must not fail the others).
    """

    def __init__(self, model: nn.Module, script: Union[str, bool] = "auto", mel_config: Optional[MelConfig] = None,
                 phase: str = "auto"):
        if phase not in STREAM_PHASES:
            raise ValueError(f"phase must be one of {STREAM_PHASES}, got {phase!r}")
        if phase == "auto":
            phase = stream_phase(model)
        if getattr(model, "offline_phase", False):
            log.info("streaming a Vocoder whose offline phase is %s: %s", model.phase_description(),
                     "RTPGHI from the streamed amplitude, no iterations" if phase == "rtpghi" else "the plain decode")
        gen = model.generator if isinstance(getattr(model, "generator", None), nn.Module) else model
        if not isinstance(gen, nn.Module):
            raise ValueError(f"expected a Vocoder or a generator nn.Module, got {type(model).__name__}")
        if script not in ("auto", True, False):
            raise ValueError(f"script must be 'auto', True or False, got {script!r}")
        self.generator = gen
        if mel_config is None and isinstance(getattr(model, "mel_config", None), MelConfig):
            mel_config = model.mel_config
        self.mel_config = mel_config  # when known, chunks over its mel_limit are refused
        self.network = build_streaming_generator(gen).eval()
        self.phase = phase
        if phase == "rtpghi":
            if not isinstance(self.network.body.layers[-1], StreamISTFT):
                raise ValueError(f"phase='rtpghi' needs a Fourier-head generator (one that ends in an inverse STFT), "
                                 f"got {type(gen).__name__}")
            script = False  # the phase stage sits between the network and its inverse STFT, in Python
        if script == "auto":
            # Anti-aliased activations: the fused kernel is eager-only; scripting would fall back to the
            # slower reference filter.
            script = not any(isinstance(m, StreamActivation1d) for m in self.network.modules())
        self.scripted: Optional[torch.jit.ScriptModule] = _script(self.network) if script else None
        self.n_mels = self.network.n_mels
        self.hop_length = self.network.hop_length
        # Which state slots hold one row per item (buffers) and which are shared by the batch (position counters):
        # a batch of 2 tells them apart. push_together concatenates the former and requires equal latter.
        ref = self._ref()
        one, two = self.network.initial_states(1, ref), self.network.initial_states(2, ref)
        self._per_item = [a.dim() > 0 and a.shape[0] == 1 and b.shape[0] == 2 for a, b in zip(one, two)]
        self.reset()

    def _pick(self, frames: int):
        """The module for a call of ``frames`` new frames (0: flush): the scripted one below
        :data:`SCRIPT_MAX_FRAMES`, the eager one (FFT convolutions) from there."""
        if self.scripted is not None and frames < SCRIPT_MAX_FRAMES:
            return self.scripted
        return self.network

    def _run(self, frames: int, *args, phases: Optional[List[RTPGHIPhase]] = None):
        if self.phase == "rtpghi":
            phases = self._phases if phases is None else phases
            if frames == 0:  # flush
                states = [s for s in args[0]]
                ref = states[0]
                x = ref.new_zeros(ref.shape[0], self.n_mels, 0)
            else:
                x, states = args[0], [s for s in args[1]]
            return _with_rtpghi(self.network.body, x, states, frames == 0, phases)[:, 0], states
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
        """Frames of future input the audio of a frame waits for (the generator's right receptive field, and one
        more with RTPGHI's phase)."""
        return self.network.lookahead_frames + (self.phase == "rtpghi")

    @property
    def left_context_frames(self) -> int:
        return self.network.left_context_frames

    def reset(self) -> None:
        """Forget the current utterance; the next ``push`` starts a new one."""
        self._states: Optional[List[torch.Tensor]] = None
        self._phases: List[RTPGHIPhase] = []  # with phase="rtpghi": one per item
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
        mel = check_mel(mel, self.n_mels, config=self.mel_config)
        batched = mel.dim() == 3
        batch = mel.shape[0] if batched else 1
        if self._batched is not None and (batched != self._batched or batch != self._batch):
            raise ValueError(f"expected chunks shaped like the first of this utterance "
                             f"({'[B=%d, n_mels, t]' % self._batch if self._batched else '[n_mels, t]'}), "
                             f"got {tuple(mel.shape)}; call reset() to start another utterance")
        return mel if batched else mel.unsqueeze(0)

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        self.samples_out += y.shape[-1]
        y = y.float()
        return y if self._batched else y[0]

    def _prepare(self, mel) -> torch.Tensor:
        """Checks a chunk, starts the utterance on the first one; the chunk as ``[B, n_mels, t]`` for the network."""
        x = self._check(mel)
        if self._states is None:
            ref = self._ref()
            self._batched, self._batch = mel.ndim == 3, x.shape[0]  # a tensor or a numpy array
            self._states = self.network.initial_states(x.shape[0], ref)
            if self.phase == "rtpghi":
                self._phases = [RTPGHIPhase(self.network.body.layers[-1]) for _ in range(x.shape[0])]
        ref = self._states[0]
        return x.to(device=ref.device, dtype=ref.dtype)

    def _signature(self, frames: int) -> tuple:
        """What must agree for two decoders to run a chunk of ``frames`` together: the network they copy, the
        chunk length, each per-item state's shape past the batch axis, each shared counter's value."""
        parts = [id(self.generator), self.phase, frames, self._states[0].dtype, self._states[0].device,
                 self._phases[0].pending_frames if self._phases else None]
        for s, per_item in zip(self._states, self._per_item):
            if per_item:
                parts.append(tuple(s.shape[1:]))
            elif s.numel() == 1 and not s.is_floating_point():
                parts.append(int(s.item()))
            else:  # a shared tensor this function does not know how to compare cheaply: never batch
                parts.append(id(s))
        return tuple(parts)

    @torch.inference_mode()
    def push(self, mel) -> torch.Tensor:
        """Feed the next frames; returns the samples now final (``[samples]`` or ``[B, samples]``)."""
        x = self._prepare(mel)
        self.frames_in += x.shape[-1]
        y, self._states = self._run(x.shape[-1], x, self._states)
        return check_audio(self._out(y), f"the chunk {tuple(mel.shape)} ending at frame {self.frames_in} of "
                                         f"this utterance (call reset() to start another)")

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of input: the remaining samples (offline right-edge padding applied); then :meth:`reset`."""
        if self._states is None:
            raise ValueError("flush() before any push(): no utterance to finish")
        if self.frames_in < self.network.min_frames:
            raise ValueError(f"this generator needs at least {self.network.min_frames} frames, "
                             f"got {self.frames_in}")
        y, _ = self._run(0, self._states)
        out = check_audio(self._out(y), f"the end of an utterance of {self.frames_in} frames")
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


@torch.inference_mode()
def push_together(decoders: Sequence[StreamingVocoder], chunks: Sequence,
                  stats: Optional[dict] = None) -> List[torch.Tensor]:
    """``[d.push(c) for d, c in zip(decoders, chunks)]``, with the decoders whose states line up run as one batch.

    Decoders of the same model (built from the same generator) that are at the same point of their utterance
    structure (equal chunk length, equal position counters: in steady state, any two) form a group: their chunks
    and per-item states are concatenated along the batch axis, the group's first decoder runs the network once,
    and outputs and states are split back. A decoder appearing twice, or one that fits no group, runs alone, in
    the order given. Each result equals that decoder's own ``push`` up to float rounding. Every chunk is checked
    before any is decoded (a bad one raises and no decoder has moved); ``stats["calls"]`` gets the number of
    network calls made.
    """
    if len(decoders) != len(chunks):
        raise ValueError(f"{len(decoders)} decoders but {len(chunks)} chunks")
    if len({id(d) for d in decoders}) != len(decoders):  # pushes to one decoder must stay in order
        if stats is not None:
            stats["calls"] = len(decoders)
        return [d.push(c) for d, c in zip(decoders, chunks)]
    xs = [d._prepare(c) for d, c in zip(decoders, chunks)]
    groups: Dict[tuple, List[int]] = {}
    for i, (d, x) in enumerate(zip(decoders, xs)):
        groups.setdefault(d._signature(x.shape[-1]), []).append(i)
    out: List[Optional[torch.Tensor]] = [None] * len(decoders)
    for members in groups.values():
        lead = decoders[members[0]]
        frames = xs[members[0]].shape[-1]
        if len(members) == 1:
            states = lead._states
        else:
            states = [torch.cat([decoders[i]._states[k] for i in members]) if per_item else s
                      for k, (s, per_item) in enumerate(zip(lead._states, lead._per_item))]
        y, states = lead._run(frames, torch.cat([xs[i] for i in members]) if len(members) > 1 else xs[members[0]],
                              states, phases=[p for i in members for p in decoders[i]._phases])
        row = 0
        for i in members:
            d = decoders[i]
            n = xs[i].shape[0]
            d.frames_in += frames
            if len(members) == 1:
                d._states = states
            else:
                d._states = [s[row:row + n] if per_item else s.clone()
                             for s, per_item in zip(states, lead._per_item)]
            out[i] = d._out(y[row:row + n])
            row += n
    if stats is not None:
        stats["calls"] = len(groups)
    return out  # type: ignore[return-value]
