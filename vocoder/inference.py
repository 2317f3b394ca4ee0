"""``Vocoder``: a loaded generator plus the mel settings it expects, with input checks and batching.

    voc = Vocoder.from_pretrained("path/to/bigvgan_folder")      # or our .pt, a HiFi-GAN g_ file, None
    wav = voc(mel)                     # [n_mels, T] -> [T * hop]; [B, n_mels, T] -> [B, T * hop], float32
    wav = voc.synthesize("speech.wav")  # copy synthesis: audio -> mel -> audio at voc.sample_rate

Weight norm is folded at load (the same output, fewer ops), the forward runs under ``torch.inference_mode``,
and bad input is a ``ValueError`` that says what was expected, before it reaches a convolution.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from .audio.io import load_audio, resample
from .audio.mel import MelConfig, as_tensor, check_audio, check_mel, mel_spectrogram
from .checkpoints import load_checkpoint, save_checkpoint
from .generators.registry import build_generator_for_mel, check_generator_fits_mel, get_preset, is_fourier, preset_names
from .nn.phase_retrieval import PHASE_METHODS
from .nn.weight_normalization import fold_weight_norm as fold_weights  # the name is taken by the argument
from .streaming import StreamingVocoder, build_streaming_generator, stream_phase

__all__ = ["Vocoder", "DEFAULT_MODEL_PATH"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "pretrained" / "default.pt"

PathLike = Union[str, os.PathLike]


def _check_device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available on this machine")
    return device


class Vocoder(nn.Module):
    """A generator bound to its :class:`MelConfig`: ``mel [n_mels, T] -> wav [T * hop]`` (or batched).

    Args:
        generator: a registered generator (``forward(mel [B, n_mels, T]) -> [B, 1, T * hop]``).
        mel_config: the mel settings the generator was trained on.
        meta: free-form information (training steps, source file, ...).
        fold_weight_norm: fold weight norm into plain weights (inference only needs the product).
        phase_iterations: Fourier-head generators only: refine the predicted phase with this many fast Griffin-Lim
            iterations (:mod:`vocoder.nn.phase_refinement`). 0: off; ``None`` (default): the checkpoint's setting,
            ``meta["phase_iterations"]`` (the shipped model stores the K it was released with), else 0. Offline
            only: :meth:`stream` runs the plain decode (and says so once in the log).
        phase: Fourier-head generators only: where the phase comes from before any iterations: ``"model"`` (the
            network's prediction), ``"pghi"`` or ``"rtpghi"`` (computed from the predicted amplitude,
            :mod:`vocoder.nn.phase_retrieval`). ``None`` (default): the checkpoint's ``meta["phase_method"]``, else
            ``"model"``. Offline: :meth:`stream` runs the plain decode with the model's phase.
    """

    def __init__(self, generator: nn.Module, mel_config: MelConfig, meta: Optional[Mapping] = None,
                 fold_weight_norm: bool = True, phase_iterations: Optional[int] = None,
                 phase: Optional[str] = None):
        super().__init__()
        if not isinstance(mel_config, MelConfig):
            raise ValueError(f"expected a MelConfig, got {type(mel_config).__name__}")
        check_generator_fits_mel(generator, mel_config)
        if fold_weight_norm:
            fold_weights(generator)
        self.generator = generator.eval()
        self.generator.requires_grad_(False)
        self._mel_config = mel_config
        self.meta = dict(meta or {})
        self.phase = self.meta.get("phase_method", "model") if phase is None else phase
        self.phase_iterations = self.meta.get("phase_iterations", 0) if phase_iterations is None else phase_iterations

    @property
    def phase(self) -> str:
        """Where a Fourier head's phase comes from in offline decoding: ``"model"``, ``"pghi"`` or ``"rtpghi"``."""
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value not in PHASE_METHODS:
            raise ValueError(f"phase must be one of {', '.join(PHASE_METHODS)}, got {value!r}")
        if value != "model" and not is_fourier(self.generator):
            raise ValueError(f"phase {value!r} needs a Fourier-head generator (the vocos family); "
                             f"{self.generator_name} makes its waveform directly, with no phase to replace")
        self._phase = value

    @property
    def offline_phase(self) -> bool:
        """Whether offline decoding computes or refines the phase (:attr:`phase` not ``"model"``, or
        :attr:`phase_iterations` > 0): an offline-only step, so :meth:`stream` (the plain decode) differs from it."""
        return bool(self._phase_iterations) or self._phase != "model"

    @property
    def phase_iterations(self) -> int:
        """Fast Griffin-Lim iterations applied to a Fourier head's phase in offline decoding (0: none)."""
        return self._phase_iterations

    @phase_iterations.setter
    def phase_iterations(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"phase_iterations must be an integer >= 0, got {value!r}")
        if value and not is_fourier(self.generator):
            raise ValueError(f"phase refinement needs a Fourier-head generator (the vocos family); "
                             f"{self.generator_name} makes its waveform directly, with no phase to refine")
        self._phase_iterations = int(value)

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path: Optional[PathLike] = None, device="cpu", config=None,
                        random_init: bool = False, phase_iterations: Optional[int] = None,
                        phase: Optional[str] = None, revision: Optional[str] = None,
                        cache_dir: Optional[PathLike] = None, local_files_only: bool = False) -> "Vocoder":
        """Load a model.

        Args:
            path: our ``.pt`` checkpoint; our ``config.json`` + ``model.safetensors`` folder (:meth:`save_pretrained`);
                a Hugging Face Hub repo id ``"org/name"`` (or ``"org/name@REVISION"``) holding any of these layouts
                (:mod:`vocoder.checkpoints.hub`: only the files the layout needs are fetched, into the Hub's cache);
                an official BigVGAN folder (``config.json`` + ``bigvgan_generator.pt``); a HiFi-GAN generator file
                (``g_XXXXXXXX``, with ``config.json`` next to it or given as ``config``);
                a ParallelWaveGAN run; an official Vocos folder (``config.yaml`` + ``pytorch_model.bin``); a preset
                name (``"hifigan_v1"``, ...) together with ``random_init=True`` (random weights, for tests and
                benchmarks); or ``None`` for the model shipped at ``vocoder/pretrained/default.pt``. A local path
                always wins over a repo id of the same spelling: ``"org/name"`` is looked up on the Hub only when
                no such file or folder exists (write ``"./org/name"`` to insist on the local one).
            device: where the model runs.
            config: official ``config.json`` (Vocos: ``config.yaml``) path or dict, for official files whose config
                is elsewhere.
            random_init: allow a preset name, which has no weights.
            phase_iterations: see :class:`Vocoder` (Fourier-head models only; ``None``: the checkpoint's
                setting, e.g. the shipped model's; 0 turns refinement off).
            phase: see :class:`Vocoder` (``None``: the checkpoint's setting; ``"model"`` turns retrieval off).
            revision: Hub repo ids only: a branch, tag or commit (default: ``main``).
            cache_dir: Hub repo ids only: the cache folder (default: huggingface_hub's, ``HF_HUB_CACHE``).
            local_files_only: Hub repo ids only: use the cache, never the network (as ``HF_HUB_OFFLINE=1`` does);
                files not cached are a ``ValueError`` naming the repo, the revision and how to fetch them.
        """
        device = _check_device(device)
        hub = None
        if path is None:
            if not DEFAULT_MODEL_PATH.is_file():
                raise ValueError(
                    f"the shipped default model ({DEFAULT_MODEL_PATH}) is not present yet (it is still being "
                    f"trained); pass a model: our .pt checkpoint, an official BigVGAN folder or a HiFi-GAN g_ file"
                )
            path = DEFAULT_MODEL_PATH
        if isinstance(path, str) and not os.path.exists(path):
            if path in preset_names():
                if not random_init:
                    raise ValueError(
                        f"{path!r} is a preset name, which carries no trained weights; pass a checkpoint path, or "
                        f"random_init=True for a randomly initialised {path} (tests, benchmarks)"
                    )
                preset = get_preset(path)
                gen = build_generator_for_mel(preset.generator, preset.config, preset.mel, f"preset {path}")
                return cls(gen, preset.mel, {"source": "preset", "preset": path, "random_init": True},
                           phase_iterations=phase_iterations, phase=phase).to(device)
            from .checkpoints.hub import looks_like_repo_id, resolve_repo, split_revision  # deferred: huggingface_hub

            if not looks_like_repo_id(path):
                raise ValueError(f"model not found: {path!r} is neither a file, a folder nor a preset name "
                                 f"(presets: {', '.join(preset_names())}), nor a Hugging Face repo id 'org/name'")
            repo = split_revision(path, revision)[0]
            path = resolve_repo(path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
            snapshot = path if path.is_dir() else path.parent  # .../models--org--name/snapshots/COMMIT
            hub = f"{repo}@{snapshot.name}"
        generator, mel, meta = load_checkpoint(path, map_location="cpu", config=config)
        if hub is not None:
            meta["hub"] = hub  # the repo and the commit it was read at
        return cls(generator, mel, meta, phase_iterations=phase_iterations, phase=phase).to(device)

    def save(self, path: PathLike, meta: Optional[Mapping] = None) -> None:
        """Write our checkpoint format, one ``.pt`` (weights as held: folded after ``from_pretrained``)."""
        save_checkpoint(path, self.generator, self._mel_config, self._meta_to_save(meta))

    def save_pretrained(self, folder: PathLike, meta: Optional[Mapping] = None) -> Path:
        """Write ``folder/config.json`` (generator name + config, mel settings, meta) + ``folder/model.safetensors``
        (the weights as held), the layout a Hub repo of ours holds; ``from_pretrained(folder)`` (or the repo id
        once uploaded, e.g. ``hf upload org/name folder``) reads it back exactly. Meta must be JSON values.
        Returns ``folder``."""
        from .checkpoints.safetensors_folder import save_safetensors_folder  # deferred: safetensors

        return save_safetensors_folder(folder, self.generator, self._mel_config, self._meta_to_save(meta))

    def _meta_to_save(self, meta: Optional[Mapping]) -> dict:
        """``self.meta`` updated with ``meta`` and the phase settings (they travel with the weights)."""
        meta = {**self.meta, **dict(meta or {})}
        if self._phase_iterations or "phase_iterations" in meta:
            meta["phase_iterations"] = self._phase_iterations
        if self._phase != "model" or "phase_method" in meta:
            meta["phase_method"] = self._phase
        return meta

    # ------------------------------------------------------------------------------------------ properties
    @property
    def mel_config(self) -> MelConfig:
        return self._mel_config

    @property
    def sample_rate(self) -> int:
        return self._mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self._mel_config.hop_length

    @property
    def n_mels(self) -> int:
        return self._mel_config.n_mels

    @property
    def device(self) -> torch.device:
        p = next(self.generator.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.generator.parameters(), None)
        return p.dtype if p is not None else torch.float32

    @property
    def generator_name(self) -> str:
        return getattr(type(self.generator), "registry_name", type(self.generator).__name__)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())

    def describe(self) -> dict:
        """A plain summary: generator, matching preset, parameter count, audio settings, meta."""
        cfg = self.generator.config
        cfg_dict = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}
        preset = None
        for name in preset_names():
            p = get_preset(name)
            if p.generator == self.generator_name and p.config == cfg and p.mel == self._mel_config:
                preset = name
                break
        return {
            "generator": self.generator_name,
            "preset": preset,
            "parameters": self.num_parameters(),
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "mel": self._mel_config.to_dict(),
            "phase": self._phase,
            "phase_iterations": self._phase_iterations,
            "streaming": self.streaming_decode(),
            "dtype": str(self.dtype).replace("torch.", ""),
            "config": cfg_dict,
            "meta": dict(self.meta),
        }

    # ------------------------------------------------------------------------------------------ checks
    @staticmethod
    def _check_lengths(lengths, batch: int, frames: int) -> list:
        if torch.is_tensor(lengths) or isinstance(lengths, np.ndarray):
            lengths = as_tensor(lengths, "lengths")
            if lengths.is_floating_point() or lengths.dim() != 1:
                raise ValueError(f"expected lengths as 1-D integers [B], got {lengths.dtype} {tuple(lengths.shape)}")
            lengths = lengths.tolist()
        if not isinstance(lengths, Sequence) or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                                        for n in lengths):
            raise ValueError(f"expected lengths as a sequence of ints (frames per item), got {lengths!r}")
        lengths = [int(n) for n in lengths]
        if len(lengths) != batch:
            raise ValueError(f"expected {batch} lengths (one per batch item), got {len(lengths)}")
        bad = [n for n in lengths if not 1 <= n <= frames]
        if bad:
            raise ValueError(f"lengths must be in [1, {frames}] frames, got {bad}")
        return lengths

    # ------------------------------------------------------------------------------------------ decoding
    @torch.inference_mode()
    def forward(self, mel, lengths=None, exact: bool = True) -> torch.Tensor:
        """Decode log-mels to audio.

        Args:
            mel: ``[n_mels, T]`` or ``[B, n_mels, T]`` float (tensor or numpy), on any device.
            lengths: frames per batch item (``[B]``); samples past ``lengths[i] * hop`` are zero.
            exact: with ``lengths``, decode items of equal length together and never show the generator the
                padding, so each item equals its own decode; ``False`` decodes the padded batch in one pass
                (faster, but the last ~receptive-field samples of shorter items differ).
        Returns:
            float32 ``[T * hop]`` or ``[B, T * hop]`` on the model's device.
        Raises:
            ValueError: a mel the model cannot take (shape, dtype, NaN / inf, values over
                :func:`vocoder.audio.mel.mel_limit`: a dB or power mel); :class:`vocoder.audio.mel.NonFiniteAudio`
                (a ``ValueError``) when the decode still produced NaN / inf, never returned.
        """
        mel = check_mel(mel, self.n_mels, config=self._mel_config)
        single = mel.dim() == 2
        if single:
            if lengths is not None:
                raise ValueError("lengths is for a batch [B, n_mels, T]; a single mel [n_mels, T] has no padding")
            mel = mel.unsqueeze(0)
        mel = mel.to(device=self.device, dtype=self.dtype)
        batch, frames = mel.shape[0], mel.shape[-1]
        hop = self.hop_length
        if lengths is None:
            wav = self._generate(mel)
        else:
            lengths = self._check_lengths(lengths, batch, frames)
            if exact:
                wav = torch.zeros(batch, frames * hop, device=mel.device, dtype=torch.float32)
                for n in sorted(set(lengths)):
                    idx = [i for i, m in enumerate(lengths) if m == n]
                    wav[idx, : n * hop] = self._generate(mel[idx, :, :n])
            else:
                wav = self._generate(mel)
                keep = torch.arange(frames * hop, device=wav.device)[None, :] < (
                    torch.tensor(lengths, device=wav.device)[:, None] * hop)
                wav = wav * keep
        check_audio(wav, lambda: f"the mel {tuple(mel.shape[1:]) if single else tuple(mel.shape)} (values "
                                 f"{float(mel.min()):.3g}..{float(mel.max()):.3g})")
        return wav[0] if single else wav

    def _generate(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, T] -> float32 [B, T * hop]`` (the generator's own output checked against the contract)."""
        if self.offline_phase:
            out = self.generator.refined(mel, self._phase_iterations, phase=self._phase)
        else:
            out = self.generator(mel)
        expected = (mel.shape[0], 1, mel.shape[-1] * self.hop_length)
        if tuple(out.shape) != expected:
            raise RuntimeError(f"generator returned {tuple(out.shape)}, contract says {expected}")
        return out[:, 0].float()

    # ------------------------------------------------------------------------------------------ audio side
    def mel(self, wav) -> torch.Tensor:
        """Log-mel of audio at ``sample_rate``: ``[T] -> [n_mels, F]``, ``[B, T] -> [B, n_mels, F]`` with
        ``F = mel_config.num_frames(T)``: ``T // hop``, or ``T // hop + 1`` for centred framing (Vocos)."""
        wav = as_tensor(wav, "audio")
        if not wav.is_floating_point():
            raise ValueError(f"expected float audio in [-1, 1], got dtype {wav.dtype}")
        if wav.dim() == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.dim() not in (1, 2):
            raise ValueError(f"expected audio [T] or [B, T], got shape {tuple(wav.shape)}")
        c = self._mel_config
        min_len = max(c.hop_length, c.min_samples)
        if wav.shape[-1] < min_len:
            raise ValueError(f"audio too short: {wav.shape[-1]} samples, need at least {min_len} "
                             f"(n_fft={c.n_fft}, hop={c.hop_length})")
        if not torch.isfinite(wav).all():
            raise ValueError("audio contains NaN or inf samples")
        return mel_spectrogram(wav.float(), c)

    def synthesize(self, audio: Union[PathLike, torch.Tensor, np.ndarray], sample_rate: Optional[int] = None,
                   resample_input: bool = True) -> torch.Tensor:
        """Copy synthesis: audio -> mel -> audio at :attr:`sample_rate` (``[T // hop * hop]`` float32; with centred
        framing the mel has one frame more, and the samples past ``T // hop * hop`` are dropped, as Vocos does).

        Args:
            audio: a file path (read and resampled to the model rate), or ``[T]`` / ``[B, T]`` samples.
            sample_rate: the rate of a tensor / array input (required for those).
            resample_input: resample a tensor whose rate differs; ``False`` makes a rate mismatch an error.
        """
        if isinstance(audio, (str, os.PathLike)):
            wav = load_audio(audio, self.sample_rate)
        else:
            wav = as_tensor(audio, "audio")
            if sample_rate is None:
                raise ValueError(f"give the sample_rate of the audio tensor (the model runs at {self.sample_rate} Hz)")
            if int(sample_rate) != self.sample_rate:
                if not resample_input:
                    raise ValueError(f"expected audio at {self.sample_rate} Hz, got {sample_rate} Hz "
                                     f"(resampling disabled)")
                if not wav.is_floating_point():
                    raise ValueError(f"expected float audio in [-1, 1], got dtype {wav.dtype}")
                wav = resample(wav.float(), int(sample_rate), self.sample_rate)
        mel = self.mel(wav)
        return self(mel)[..., : wav.shape[-1] // self.hop_length * self.hop_length]

    def extra_repr(self) -> str:
        return f"generator={self.generator_name}, sample_rate={self.sample_rate}, hop={self.hop_length}, n_mels={self.n_mels}"

    # ------------------------------------------------------------------------------------------ streaming
    def _streamer(self):
        # Built on first use and kept (it copies the folded weights once); rebuilt if the generator was
        # replaced, moved, its weights changed in place (load_state_dict, an optimiser step: every in-place
        # write bumps a tensor's version counter) or its noise seed changed.
        sv = self._cached_streamer()
        if sv is None:
            sv = StreamingVocoder(self.generator, mel_config=self._mel_config, phase=stream_phase(self))
            self.__dict__["_streaming"] = (self._weights_key(), sv)
        return sv

    def _weights_key(self) -> tuple:
        # the noise seed of a noise-driven generator (Parallel WaveGAN) is not a weight but the stream draws with it
        return (getattr(self.generator, "noise_seed", None),) + tuple(
            (t.data_ptr(), t._version) for t in self.generator.state_dict(keep_vars=True).values())

    def _cached_streamer(self):
        """The cached streamer if it was built from this generator with these very weights and the phase this
        Vocoder streams with, else ``None``."""
        cached = self.__dict__.get("_streaming")
        if (cached is not None and cached[1].generator is self.generator and cached[1].phase == stream_phase(self)
                and cached[0] == self._weights_key()):
            return cached[1]
        return None

    @property
    def lookahead_frames(self) -> int:
        """Future mel frames streaming waits for before a frame's audio is final (the right receptive field, and
        one frame more when streams take RTPGHI's phase)."""
        sv = self._cached_streamer()
        if sv is not None:
            return sv.lookahead_frames
        # The architecture alone decides it: an eager streaming network answers without the TorchScript build.
        return build_streaming_generator(self.generator).lookahead_frames + (stream_phase(self) == "rtpghi")

    def streaming_decode(self) -> str:
        """What :meth:`stream` computes, in words, and how it relates to the offline decode."""
        if stream_phase(self) == "rtpghi":
            extra = (f"; the offline decode adds {self._phase_iterations} Griffin-Lim iterations, which are offline "
                     f"only" if self._phase_iterations else "")
            pghi = "; PGHI needs the whole utterance" if self._phase == "pghi" else ""
            return (f"RTPGHI phase from the streamed amplitude (one frame more of lookahead), equal to the offline "
                    f"decode with phase='rtpghi', phase_iterations=0{pghi}{extra}")
        if self.offline_phase:
            return (f"plain decode: {self.phase_description()} is offline only; streams equal the offline decode "
                    f"with phase='model', phase_iterations=0")
        return "plain decode, equal to the offline decode"

    def phase_description(self) -> str:
        """The offline phase setting in words, e.g. ``"the model's phase + 16 Griffin-Lim iterations"``."""
        text = {"model": "the model's phase", "pghi": "PGHI phase", "rtpghi": "RTPGHI phase"}[self._phase]
        return text + (f" + {self._phase_iterations} Griffin-Lim iterations" if self._phase_iterations else "")

    def stream(self, mel_chunks):
        """Streaming decode: iterate over ``[n_mels, t]`` (or ``[B, n_mels, t]``) chunks, yield float32 audio
        (``[samples]`` / ``[B, samples]``) as soon as it is final; all pieces together equal ``self(mel)`` with
        :attr:`phase_iterations` = 0 and, for ``phase="pghi"``, ``phase="rtpghi"`` (:meth:`streaming_decode` says
        which, in words). Phase refinement is offline (each iteration widens the receptive field by n_fft / hop - 1
        frames both ways), so a model that refines offline streams without it and says so once in the log."""
        if self.offline_phase and not self.__dict__.get("_told_streaming_is_plain"):
            log.info("streaming: %s", self.streaming_decode())
            self.__dict__["_told_streaming_is_plain"] = True
        return self._streamer().stream(mel_chunks)  # each chunk checked as it enters (StreamingVocoder.push)
