"""Training data for GAN vocoders: random fixed-length waveform segments and their log-mels (the files themselves:
:mod:`vocoder.training.clips`).

The data path::

    file list or folder -> scan (decode, resample, reject broken / silent / short files, optional int16 cache)
        train: (epoch, index) -> random segment wav [1, S] -> mel [n_mels, S // hop]   (batched: [B, 1, S], [B, n_mels, F])
        val:   index -> whole clip cropped to ``val_max_seconds`` -> wav [1, T], mel [n_mels, T // hop]   (batch 1)

The mel is computed in the dataset (so DataLoader workers do it) with :func:`vocoder.audio.mel_spectrogram`,
exactly as the loss will compute it on generated audio. For fine-tuning on a acoustic model's output,
``finetune_mels=True`` reads ``<name>.npy`` (``[n_mels, frames]``) next to each ``<name>.wav`` and cuts
aligned mel/wav segments instead.

An epoch is a number of random segments, not a pass over whole files: one segment per clip, or, when the set is
smaller than a batch on every rank, ``batch_size x ranks`` segments drawn from the clips with replacement (the
clips are reshuffled for every round through them and each draw crops its own segment), so any non-empty training
set yields batches.

Reproducibility: the sampler draws a permutation from ``(seed, epoch)`` (``(seed, epoch, round)`` for further
rounds through a small set) and every item draws its crop from ``(seed, epoch, index)`` (``+ round``), so the
stream of batches does not depend on the number of workers, and a resumed run (epoch + batches already consumed,
kept by :meth:`VocoderDataModule.state_dict`) continues the same stream.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..audio.mel import MelConfig, mel_spectrogram
from .clips import MIN_FILES_FOR_SPLIT, ClipStore, list_audio_files, split_by_file, validation_count

__all__ = [
    "VocoderDataModule",
    "ClipStore",
    "SegmentDataset",
    "ClipDataset",
    "EpochSampler",
    "list_audio_files",
    "split_by_file",
    "default_num_workers",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

def _survive_group_sigterm(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a worker ignores a SIGTERM meant for the whole job, not its parent's.

    SLURM's preemption and ``timeout`` signal every process of the job; a worker killed by that makes the trainer
    fail (PyTorch raises in the trainer when a worker dies) before it writes ``last.ckpt``, so such a signal is
    ignored here: the trainer saves and then stops its workers itself. The parent's own SIGTERM (what
    ``multiprocessing`` sends daemonic workers at interpreter exit, or the loader to a worker that does not stop)
    still ends the worker. Telling them apart needs the sender's pid: SIGTERM is blocked in this process and a
    thread takes it with ``sigwaitinfo``. Where that does not exist (not Linux), the default handling stays.
    """
    if not hasattr(signal, "sigwaitinfo") or threading.active_count() > 1:
        return  # other threads could not be made to block SIGTERM; keep the default
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by threads started from here on

    def take_sigterm() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent:
                os._exit(128 + signal.SIGTERM)  # as if killed by it

    threading.Thread(target=take_sigterm, name="sigterm", daemon=True).start()


def default_num_workers(requested: int) -> int:
    """DataLoader workers for this machine: ``min(requested, CPUs - 1)``, at least 0 (the main process needs a core;
    more workers than cores only oversubscribe them). CPUs are those this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(0, min(int(requested), cpus - 1))


def check_segment_length(segment_length: int, hop_length: int) -> None:
    """``ValueError`` unless a training segment is a positive whole number of hops (its mel has exact frames)."""
    if segment_length <= 0 or segment_length % hop_length:
        raise ValueError(f"segment_length must be a positive multiple of hop_length={hop_length}, got {segment_length}")


class SegmentDataset(Dataset):
    """Random training segments.

    Indexed by ``(epoch, index, round)`` (what :class:`EpochSampler` yields), ``(epoch, index)`` (round 0) or a
    plain ``index`` (epoch 0). Each key crops its own segment: the same clip drawn twice in an epoch (a small set)
    gives two different segments.
    Returns ``{"wav": [1, S], "mel": [n_mels, S // hop]}`` float32 with ``S = segment_length``.
    A clip shorter than ``S`` is zero-padded at the end.
    """

    def __init__(self, store: ClipStore, segment_length: int, seed: int = 0):
        check_segment_length(segment_length, store.mel_config.hop_length)
        self.store = store
        self.segment_length = segment_length
        self.seed = seed

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, key) -> dict:
        key = tuple(key) if isinstance(key, (tuple, list)) else (0, key)
        epoch, index = int(key[0]), int(key[1])
        draw = int(key[2]) if len(key) > 2 else 0
        # try the asked clip, then deterministic substitutes if it became unreadable since the scan
        for attempt in range(min(len(self.store), 16)):
            i = (index + attempt) % len(self.store)
            # round 0 keeps the (seed, epoch, clip) crops of one-segment-per-clip epochs
            rng = np.random.default_rng([self.seed, epoch, i] + ([draw] if draw else []))
            try:
                return self._item(i, rng)
            except ValueError as e:
                self.store.warn_failed_once(i, e)
        raise RuntimeError(f"no readable clip found near index {index}; see the warnings above")

    def _item(self, index: int, rng: np.random.Generator) -> dict:
        store, seg = self.store, self.segment_length
        c = store.mel_config
        clip = store.clips[index]
        if store.finetune_mels:
            frames = seg // c.hop_length
            start_frame = int(rng.integers(0, max(clip.mel_frames - frames, 0) + 1))
            wav = store.read(index, start_frame * c.hop_length, seg)
            mel = torch.from_numpy(store.read_mel(index, start_frame, frames))
            wav = torch.from_numpy(wav)
        else:
            start = int(rng.integers(0, max(clip.num_samples - seg, 0) + 1))
            wav = torch.from_numpy(store.read(index, start, seg))
            mel = mel_spectrogram(wav, c)
        return {"wav": wav.unsqueeze(0), "mel": mel}


class ClipDataset(Dataset):
    """Validation clips, whole (from the start), cropped to ``max_samples`` and to a multiple of the hop.

    Returns ``{"wav": [1, T], "mel": [n_mels, T // hop]}``; meant for batch size 1 (lengths differ).
    """

    def __init__(self, store: ClipStore, max_samples: int):
        self.store = store
        hop = store.mel_config.hop_length
        self.max_samples = max(hop, max_samples // hop * hop)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict:
        store = self.store
        c = store.mel_config
        clip = store.clips[index]
        if store.finetune_mels:
            frames = min(clip.mel_frames, self.max_samples // c.hop_length)
            wav = torch.from_numpy(store.read(index, 0, frames * c.hop_length))
            mel = torch.from_numpy(store.read_mel(index, 0, frames))
        else:
            length = min(clip.num_samples, self.max_samples) // c.hop_length * c.hop_length
            wav = torch.from_numpy(store.read(index, 0, length))
            mel = mel_spectrogram(wav, c)
        return {"wav": wav.unsqueeze(0), "mel": mel}


class EpochSampler(DistributedSampler):
    """Shuffles with a permutation drawn from ``(seed, epoch)`` and yields ``(epoch, index, round)`` keys.

    An epoch is ``max(num_items, min_epoch_items)`` draws: one per item in a random order, and when there are
    fewer items than ``min_epoch_items`` further rounds, each a new permutation drawn from ``(seed, epoch, round)``
    (sampling with replacement across rounds, without within one), cut at ``min_epoch_items``.
    A :class:`DistributedSampler` so Lightning keeps it under DDP (and calls :meth:`set_epoch` each epoch);
    each rank takes every ``num_replicas``-th key of the shared order. ``resume(epoch, skip)``
    makes the next pass over ``epoch`` start after ``skip`` items of this rank (mid-epoch resume);
    ``len()`` stays the full epoch so the trainer's batch count is unchanged.
    """

    def __init__(self, num_items: int, seed: int = 0, num_replicas: int = 1, rank: int = 0, drop_last: bool = False,
                 min_epoch_items: int = 0):
        if num_items <= 0:
            raise ValueError(f"EpochSampler needs at least one item, got {num_items}")
        self.num_items = int(num_items)
        super().__init__(range(max(self.num_items, int(min_epoch_items))), num_replicas=num_replicas, rank=rank,
                         shuffle=True, seed=seed, drop_last=drop_last)
        self._resume: Optional[tuple[int, int]] = None

    def _order(self, epoch: int) -> list[tuple[int, int, int]]:
        """The epoch's ``(epoch, index, round)`` keys before sharding."""
        size = len(self.dataset)
        keys: list[tuple[int, int, int]] = []
        rnd = 0
        while len(keys) < size:
            seed = [self.seed, epoch] + ([rnd] if rnd else [])
            keys += [(epoch, i, rnd) for i in np.random.default_rng(seed).permutation(self.num_items).tolist()]
            rnd += 1
        return keys[:size]

    def resume(self, epoch: int, skip: int) -> None:
        self.epoch = int(epoch)
        self._resume = (int(epoch), int(skip))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n, epoch = len(self.dataset), int(self.epoch)
        order = self._order(epoch)
        if self.drop_last:
            order = order[: self.total_size]
        else:
            order += order[: self.total_size - n]  # pad so every rank gets the same count
        mine = order[self.rank: self.total_size: self.num_replicas]
        skip = 0
        if self._resume is not None and self._resume[0] == epoch:
            skip = self._resume[1]
        self._resume = None
        yield from mine[skip:]


class _ResumableLoader(DataLoader):
    """DataLoader that counts the batches it handed out and saves/restores its place via the datamodule.

    Having ``state_dict``/``load_state_dict`` tells Lightning the loader can resume mid-epoch.
    """

    _datamodule: Optional["VocoderDataModule"] = None
    batches_out: int = 0

    def __iter__(self):
        self.batches_out = 0
        sampler = self.sampler
        if isinstance(sampler, EpochSampler) and sampler._resume is not None and sampler._resume[0] == sampler.epoch:
            self.batches_out = sampler._resume[1] // max(1, self.batch_size or 1)
        for batch in super().__iter__():
            self.batches_out += 1
            yield batch

    def state_dict(self) -> dict:
        return self._datamodule.state_dict() if self._datamodule is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self._datamodule is not None and state:
            self._datamodule.load_state_dict(state)


class VocoderDataModule(pl.LightningDataModule):
    """Segments of real audio with their mels, for GAN vocoder training.

    Args:
        train: folder of audio files or a file list (one path per line, relative to the list's folder), or a
            list of such sources.
        val: the same for validation, or None to split whole files off ``train``: ``val_clips`` of them but at
            most 10 % (at least one), and none when fewer than 4 files are usable (with a warning).
        mel_config: the mel front end; audio is resampled to its ``sample_rate``.
        segment_length: training segment in samples (a multiple of ``hop_length``), e.g. 8192.
        batch_size: training batch size (validation uses 1: whole clips of different lengths). A training set
            smaller than a batch is sampled with replacement (see :class:`EpochSampler`), with a warning.
        num_workers: DataLoader worker processes (None: :func:`default_num_workers` of 2).
        val_clips: files split off for validation when ``val`` is None; when ``val`` is given, at most this
            many of its files are used (a fixed draw), None for all.
        seed: drives the split, the per-epoch shuffle and the per-item crops.
        finetune_mels: train on ``<name>.npy`` mels (``[n_mels, frames]``) stored next to each wav (True) or
            in the given folder (a path); False/None: mels computed from the audio.
        cache: keep decoded audio in memory as int16 (fast on few cores; ~2.6 MB/min at 22.05 kHz).
        val_max_seconds: validation clips are cropped to this length.
        min_seconds: files shorter than this are skipped (shorter-than-segment files above it are padded).
    Batches: train ``{"wav": [B, 1, S], "mel": [B, n_mels, S // hop]}``; val ``{"wav": [1, 1, T], "mel": [1, n_mels, T // hop]}``.
    """

    def __init__(self, train: Union[PathLike, Sequence[PathLike]], val: Union[PathLike, Sequence[PathLike], None] = None,
                 mel_config: Optional[MelConfig] = None,
                 segment_length: int = 8192, batch_size: int = 16, num_workers: Optional[int] = None,
                 val_clips: Optional[int] = 40, seed: int = 1234, finetune_mels: Union[bool, PathLike, None] = False,
                 cache: bool = True,
                 val_max_seconds: float = 4.0, min_seconds: float = 0.25, pin_memory: bool = False):
        super().__init__()
        self.mel_config = mel_config or MelConfig()
        check_segment_length(segment_length, self.mel_config.hop_length)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.train_source, self.val_source = train, val
        self.segment_length = segment_length
        self.batch_size = batch_size
        self.num_workers = default_num_workers(2) if num_workers is None else int(num_workers)
        self.val_clips = val_clips
        self.seed = seed
        self.finetune_mels = finetune_mels
        self.cache = cache
        self.val_max_seconds = val_max_seconds
        self.min_seconds = min_seconds
        self.pin_memory = pin_memory
        self.train_store: Optional[ClipStore] = None
        self.val_store: Optional[ClipStore] = None
        self.train_files: list[Path] = []
        self.val_files: list[Path] = []
        self._sampler: Optional[EpochSampler] = None
        self._train_loader: Optional[_ResumableLoader] = None
        self._pending: Optional[dict] = None  # state loaded before the sampler exists

    # ---- building -------------------------------------------------------------------------------------------
    @property
    def min_samples(self) -> int:
        # the mel's reflect padding needs more than (n_fft - hop) / 2 samples; one frame at least
        c = self.mel_config
        return max(int(self.min_seconds * c.sample_rate), c.n_fft, c.hop_length)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_store is not None:
            return  # scanned already (fit then validate calls setup again)
        kw = dict(mel_config=self.mel_config, min_samples=self.min_samples, cache=self.cache,
                  finetune_mels=self.finetune_mels)
        train_files = list_audio_files(self.train_source)
        if self.val_source is None:
            # scan first, then split the usable clips by file, so broken files cannot empty validation
            store = ClipStore(train_files, **kw)
            paths = [c.path for c in store.clips]
            count = validation_count(len(paths), self.val_clips)
            if count:
                train_paths, val_paths = split_by_file(paths, count, self.seed)
                if count < self.val_clips:
                    log.info("validation: %d of %d usable files held out (at most 10 %%; data.val_clips=%d)",
                             count, len(paths), self.val_clips)
            else:  # val_clips=0 or None, or too few files: no validation
                train_paths, val_paths = paths, []
                if self.val_clips and paths:
                    log.warning("only %d usable training file(s): no validation split (it needs at least %d files); "
                                "every file trains. Pass a validation set (--val) to validate", len(paths),
                                MIN_FILES_FOR_SPLIT)
            val_set = set(val_paths)
            self.train_store = store.subset([i for i, p in enumerate(paths) if p not in val_set])
            self.val_store = store.subset([i for i, p in enumerate(paths) if p in val_set])
            self.train_store.skipped = store.skipped
            self.train_files, self.val_files = train_paths, val_paths
        else:
            val_files = list_audio_files(self.val_source)
            if self.val_clips is not None and len(val_files) > self.val_clips:
                keep = sorted(np.random.default_rng(self.seed).permutation(len(val_files))[: self.val_clips].tolist())
                val_files = [val_files[i] for i in keep]
            overlap = {p.resolve() for p in train_files} & {p.resolve() for p in val_files}
            if overlap:
                raise ValueError(f"validation files must not be training files; {len(overlap)} are both, "
                                 f"e.g. {sorted(overlap)[0]}")
            self.train_files, self.val_files = train_files, val_files
            self.train_store = ClipStore(train_files, **kw)
            self.val_store = ClipStore(val_files, **kw)
        if len(self.train_store) == 0:
            raise ValueError(f"no usable training audio in {self.train_source} ({len(train_files)} files, "
                             f"all skipped; see the warnings)")
        if len(self.val_store) == 0 and self.val_source is not None:
            log.warning("no usable validation clips (from %s)", self.val_source)
        log.info("training data: %d clips, %.1f min; validation: %d clips, %.1f min; %d files skipped",
                 len(self.train_store), self.train_store.seconds / 60, len(self.val_store),
                 self.val_store.seconds / 60, len(self.train_store.skipped) + len(self.val_store.skipped))

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        trainer = getattr(self, "trainer", None)
        replicas = getattr(trainer, "world_size", 1) if trainer is not None else 1
        rank = getattr(trainer, "global_rank", 0) if trainer is not None else 0
        per_epoch = self.batch_size * replicas  # at least one batch on every rank
        if len(self.train_store) < per_epoch:
            log.warning("the training set is tiny: %d clip(s) (%.1f s) for batches of %d%s; an epoch is %d random "
                        "segments drawn from them with replacement", len(self.train_store), self.train_store.seconds,
                        self.batch_size, f" on {replicas} ranks" if replicas > 1 else "", per_epoch)
        self._sampler = EpochSampler(len(self.train_store), seed=self.seed, num_replicas=replicas, rank=rank,
                                     min_epoch_items=per_epoch)
        if self._pending is not None:
            self._sampler.resume(self._pending["epoch"], self._pending["position"] * self.batch_size)
            self._pending = None
        dataset = SegmentDataset(self.train_store, self.segment_length, seed=self.seed)
        loader = _ResumableLoader(dataset, batch_size=self.batch_size, sampler=self._sampler, drop_last=True,
                                  num_workers=self.num_workers, pin_memory=self.pin_memory,
                                  persistent_workers=self.num_workers > 0, worker_init_fn=_survive_group_sigterm)
        loader._datamodule = self
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        max_samples = int(self.val_max_seconds * self.mel_config.sample_rate)
        return DataLoader(ClipDataset(self.val_store, max_samples), batch_size=1, shuffle=False,
                          num_workers=min(self.num_workers, 1), pin_memory=self.pin_memory,
                          worker_init_fn=_survive_group_sigterm)

    # ---- resume -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"seed", "epoch", "position"}``: position = training batches already consumed in ``epoch``."""
        epoch, position = 0, 0
        if self._sampler is not None:
            epoch = int(self._sampler.epoch)
            position = self._train_loader.batches_out if self._train_loader is not None else 0
        elif self._pending is not None:
            epoch, position = self._pending["epoch"], self._pending["position"]
        trainer = getattr(self, "trainer", None)
        fit_loop = getattr(trainer, "fit_loop", None) if trainer is not None else None
        if fit_loop is not None and self._sampler is not None:
            # the trainer prefetches a batch ahead; its own count is the number actually trained on
            position = int(fit_loop.epoch_loop.batch_progress.current.processed)
        return {"seed": int(self.seed), "epoch": epoch, "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        missing = {"epoch", "position"} - set(state)
        if missing:
            raise ValueError(f"datamodule state needs keys epoch and position, got {sorted(state)}")
        if "seed" in state and int(state["seed"]) != self.seed:
            log.warning("resuming data stream saved with seed %s under seed %s: the batches will differ",
                        state["seed"], self.seed)
        pending = {"epoch": int(state["epoch"]), "position": int(state["position"])}
        if self._sampler is not None:
            self._sampler.resume(pending["epoch"], pending["position"] * self.batch_size)
        else:
            self._pending = pending
