"""VocoderDataModule: shapes, mel consistency, bad-file handling, splits, fine-tuning pairs, resume."""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.training.clips import validation_count
from vocoder.training.data import (EpochSampler, SegmentDataset, VocoderDataModule, default_num_workers,
                                   list_audio_files, split_by_file)

from helpers import REPO, load_script

SR = 16000
MEL = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, win_length=256, n_mels=20, fmin=0.0, fmax=8000.0)
SEG = 64 * 40  # 2560 samples, 0.16 s


def _tone(seconds: float, sr: int, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """Good clips (mono, stereo, 44.1 kHz, shorter than a segment) and bad ones (broken, silent, too short)."""
    d = tmp_path / "corpus"
    d.mkdir()
    for i in range(6):
        sf.write(d / f"good{i}.wav", _tone(0.3 + 0.05 * i, SR, 200 + 50 * i, i), SR, subtype="PCM_16")
    stereo = np.stack([_tone(0.4, SR, 300, 10), _tone(0.4, SR, 500, 11)], axis=1)
    sf.write(d / "stereo.wav", stereo, SR, subtype="PCM_16")
    sf.write(d / "hirate.wav", _tone(0.3, 44100, 440, 12), 44100, subtype="PCM_16")
    sf.write(d / "padme.wav", _tone(0.12, SR, 250, 13), SR, subtype="PCM_16")  # 1920 < SEG samples
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    sf.write(d / "silent.wav", np.zeros(int(0.3 * SR), np.float32), SR, subtype="PCM_16")
    sf.write(d / "short.wav", _tone(0.02, SR, 300, 14), SR, subtype="PCM_16")
    return d


def _dm(train, val=None, **kw) -> VocoderDataModule:
    args = dict(mel_config=MEL, segment_length=SEG, batch_size=3, num_workers=0, val_clips=2, seed=7,
                min_seconds=0.1, val_max_seconds=0.25)
    args.update(kw)
    return VocoderDataModule(train, val, **args)


GOOD = {"good0", "good1", "good2", "good3", "good4", "good5", "stereo", "hirate", "padme"}
BAD = {"broken", "silent", "short"}


def test_bad_files_skipped_with_one_warning_each(corpus, caplog):
    dm = _dm(corpus)
    with caplog.at_level(logging.WARNING, logger="vocoder.training.clips"):
        dm.setup("fit")
        dm.setup("validate")  # a second setup must not rescan (or warn again)
    used = {c.path.stem for c in dm.train_store.clips} | {c.path.stem for c in dm.val_store.clips}
    skipped = {p.stem for p, _ in dm.train_store.skipped + dm.val_store.skipped}
    assert skipped == BAD
    assert used == GOOD
    for name in BAD:
        assert sum(f"{name}.wav" in r.getMessage() for r in caplog.records) == 1, name
    reasons = dict((p.stem, why) for p, why in dm.train_store.skipped + dm.val_store.skipped)
    assert "silent" in reasons["silent"] and "too short" in reasons["short"] and "cannot read" in reasons["broken"]


def test_all_bad_raises(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"junk")
    (tmp_path / "b.wav").write_bytes(b"junk too")
    with pytest.raises(ValueError, match="no usable training audio"):
        _dm(tmp_path, val_clips=1).setup()


def test_train_batches_shapes_and_mel(corpus):
    dm = _dm(corpus)
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_store) // 3  # drop_last
    for b in batches:
        assert b["wav"].shape == (3, 1, SEG) and b["wav"].dtype == torch.float32
        assert b["mel"].shape == (3, MEL.n_mels, SEG // MEL.hop_length)
        torch.testing.assert_close(b["mel"], mel_spectrogram(b["wav"].squeeze(1), MEL), atol=1e-5, rtol=1e-5)
        assert b["wav"].abs().max() <= 1.0


def test_resampled_and_stereo_and_padded_clips(corpus):
    dm = _dm(corpus, val_clips=0, cache=False)  # no validation: every usable file trains
    dm.setup()
    assert len(dm.val_store) == 0
    clips = {c.path.stem: (i, c) for i, c in enumerate(dm.train_store.clips)}
    assert set(clips) == GOOD
    store = dm.train_store
    # 0.3 s at 44.1 kHz -> 4800 samples at 16 kHz, read through load_audio (not a seek)
    assert clips["hirate"][1].num_samples == 4800 and not clips["hirate"][1].native
    i, _ = clips["hirate"]
    seg = store.read(i, 0, 4800)
    freqs = np.fft.rfftfreq(4800, 1 / SR)
    assert abs(freqs[np.argmax(np.abs(np.fft.rfft(seg)))] - 440) < 5
    # channels averaged, as load_audio does
    i, _ = clips["stereo"]
    data, _ = sf.read(corpus / "stereo.wav", dtype="float32")
    np.testing.assert_allclose(store.read(i, 100, 500), data.mean(1)[100:600], atol=1e-6)
    # shorter than a segment: zero-padded at the end
    i, c = clips["padme"]
    item = SegmentDataset(store, SEG, seed=0)[(0, i)]
    assert item["wav"].shape == (1, SEG)
    assert torch.all(item["wav"][0, c.num_samples:] == 0) and item["wav"][0, : c.num_samples].abs().max() > 0.1


def test_cached_equals_uncached(corpus):
    a, b = _dm(corpus, cache=True), _dm(corpus, cache=False)
    for x, y in zip(a.train_dataloader(), b.train_dataloader()):
        torch.testing.assert_close(x["wav"], y["wav"], atol=1.5 / 32768, rtol=0)  # int16 cache of resampled audio


def test_split_by_file(corpus):
    dm = _dm(corpus, val_clips=3)
    dm.setup()
    usable = {p for p in list_audio_files(corpus) if p.stem not in BAD}
    assert len(dm.val_files) == 1 and len(dm.val_store) == 1  # 9 usable files: at most 10 %, at least 1
    assert set(dm.train_files) | set(dm.val_files) == usable
    assert not set(dm.train_files) & set(dm.val_files)
    again = _dm(corpus, val_clips=3)
    again.setup()
    assert again.val_files == dm.val_files  # the seed fixes the draw
    other = _dm(corpus, val_clips=3, seed=8)
    other.setup()
    assert other.val_files != dm.val_files
    paths = sorted(usable)
    train, val = split_by_file(paths, 3, 7)
    assert len(val) == 3 and set(train) | set(val) == usable and split_by_file(paths, 3, 7) == (train, val)
    assert split_by_file(paths, 3, 8)[1] != val
    with pytest.raises(ValueError, match="at least 2"):
        split_by_file([corpus / "good0.wav"], 1, 0)


def test_validation_hold_out_is_a_small_fraction():
    """min(val_clips, 10 % of the files), at least 1; none under 4 files or with val_clips 0 / None."""
    table = {(1, 8): 0, (3, 8): 0, (4, 8): 1, (12, 8): 1, (19, 8): 1, (20, 8): 2, (100, 8): 8, (100, 40): 10,
             (1000, 40): 40, (100, 0): 0, (100, None): 0, (4, 1): 1}
    assert {k: validation_count(*k) for k in table} == table


@pytest.mark.parametrize("n_files", [1, 3, 12])
def test_small_sets_yield_batches_and_keep_every_file_for_training(tmp_path, n_files, caplog):
    d = tmp_path / "small"
    d.mkdir()
    for i in range(n_files):
        sf.write(d / f"c{i}.wav", _tone(1.5, SR, 200 + 30 * i, i), SR, subtype="PCM_16")  # the 1.5 s clips
    dm = _dm(d, batch_size=16, val_clips=8)
    with caplog.at_level(logging.WARNING, logger="vocoder.training"):
        dm.setup()
        loader = dm.train_dataloader()
    n_val = 1 if n_files >= 4 else 0
    assert len(dm.val_store) == n_val and len(dm.train_store) == n_files - n_val
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "tiny" in messages and "with replacement" in messages
    assert ("no validation split" in messages) == (n_val == 0)
    batches = list(loader)
    assert len(batches) == 1 and batches[0]["wav"].shape == (16, 1, SEG)
    # each draw of a clip crops its own segment
    wav = batches[0]["wav"][:, 0]
    assert len({tuple(w[:64].tolist()) for w in wav}) == 16
    loader.sampler.set_epoch(1)
    assert not torch.equal(next(iter(loader))["wav"], batches[0]["wav"])


def test_epoch_sampler_small_set_rounds_and_ranks():
    # one segment per item when the set is large enough: the order of one-pass epochs (resumed runs unchanged)
    keys = list(EpochSampler(10, seed=3, min_epoch_items=4))
    assert keys == [(0, i, 0) for i in np.random.default_rng([3, 0]).permutation(10).tolist()]
    # 3 items, epochs of 8: rounds of fresh permutations, every item once per round
    keys = list(EpochSampler(3, seed=3, min_epoch_items=8))
    assert len(keys) == 8 and [r for _, _, r in keys] == [0, 0, 0, 1, 1, 1, 2, 2]
    for rnd in (0, 1):
        assert sorted(i for _, i, r in keys if r == rnd) == [0, 1, 2]
    # two ranks, batch 4: each rank gets a full batch from a single clip
    ranks = [list(EpochSampler(1, seed=0, num_replicas=2, rank=r, min_epoch_items=8)) for r in range(2)]
    assert [len(r) for r in ranks] == [4, 4] and len({k for r in ranks for k in r}) == 8
    with pytest.raises(ValueError, match="at least one item"):
        EpochSampler(0)


def test_num_workers_fit_the_machine(monkeypatch, corpus):
    from vocoder.training import runner
    from vocoder.training.recipes import load_recipe

    for cpus, requested, expect in [(2, 4, 1), (1, 4, 0), (16, 4, 4), (8, 0, 0)]:
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert default_num_workers(requested) == expect
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "hifigan_v3.yaml", ["data.num_workers=4"])
    assert runner.build_datamodule(recipe, str(corpus)).num_workers == 1


def test_file_list_and_validation_clips(corpus, tmp_path):
    lst = tmp_path / "lists" / "train.txt"
    lst.parent.mkdir()
    lst.write_text("# comment\n../corpus/good0.wav\n../corpus/good1.wav\n\n../corpus/stereo.wav\n")
    val = tmp_path / "lists" / "val.txt"
    val.write_text(f"{corpus / 'good4.wav'}\n{corpus / 'good5.wav'}\n")
    dm = _dm(lst, val, batch_size=2)
    dm.setup()
    assert [p.name for p in dm.train_files] == ["good0.wav", "good1.wav", "stereo.wav"]
    vb = list(dm.val_dataloader())
    assert len(vb) == 2
    max_len = int(0.25 * SR) // 64 * 64
    for b in vb:
        assert b["wav"].shape[0] == 1 and b["wav"].shape[1] == 1
        assert b["wav"].shape[-1] == max_len  # the clips are longer than 0.25 s: cropped to a hop multiple
        assert b["mel"].shape == (1, MEL.n_mels, max_len // 64)
        torch.testing.assert_close(b["mel"][0], mel_spectrogram(b["wav"][0, 0], MEL), atol=1e-5, rtol=1e-5)
    # validation starts at the clip start: equals the file's first samples
    data, _ = sf.read(corpus / "good4.wav", dtype="float32")
    np.testing.assert_allclose(vb[0]["wav"][0, 0].numpy(), data[:max_len], atol=1e-6)
    lst.write_text("../corpus/good0.wav\n../corpus/good4.wav\n")
    with pytest.raises(ValueError, match="must not be training files"):
        _dm(lst, val).setup()


def test_bad_arguments(corpus):
    with pytest.raises(ValueError, match="multiple of hop_length"):
        _dm(corpus, segment_length=1000)
    with pytest.raises(ValueError, match="folder of audio files or a file list"):
        list_audio_files(corpus / "nope")


def _batches(dm, n=None):
    return [b["wav"] for b in itertools.islice(dm.train_dataloader(), n)]


def test_deterministic_across_workers_and_epochs(corpus):
    a = _batches(_dm(corpus, num_workers=0))
    b = _batches(_dm(corpus, num_workers=1))
    assert len(a) == len(b) > 1
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    dm = _dm(corpus)
    loader = dm.train_dataloader()
    first = [x["wav"] for x in loader]
    loader.sampler.set_epoch(1)
    second = [x["wav"] for x in loader]
    assert not torch.equal(torch.cat(first), torch.cat(second))  # a new epoch: new order and crops


def test_resume_mid_epoch(corpus):
    full = _batches(_dm(corpus))
    dm = _dm(corpus)
    part = _batches(dm, n=1)
    state = dm.state_dict()
    assert state == {"seed": 7, "epoch": 0, "position": 1}
    resumed = _dm(corpus)
    resumed.load_state_dict(state)
    rest = _batches(resumed)
    assert len(part) + len(rest) == len(full)
    for x, y in zip(part + rest, full):
        torch.testing.assert_close(x, y)
    assert len(resumed.train_dataloader()) == len(full)  # the trainer's epoch length does not shrink


def test_sampler_shards_ranks():
    ranks = [list(EpochSampler(10, seed=3, num_replicas=2, rank=r)) for r in range(2)]
    idx = [i for r in ranks for _, i, _ in r]
    assert sorted(idx) == list(range(10)) and all(e == 0 for r in ranks for e, _, _ in r)


def _write_pair(d: Path, name: str, seconds: float, frames_delta: int = 0, n_mels: int = MEL.n_mels):
    wav = _tone(seconds, SR, 330, 20)
    sf.write(d / f"{name}.wav", wav, SR, subtype="PCM_16")
    frames = len(wav) // MEL.hop_length + frames_delta
    # each frame holds its own index: alignment is visible in the values
    mel = np.tile(np.arange(frames, dtype=np.float32), (n_mels, 1))
    np.save(d / f"{name}.npy", mel)
    return wav


def test_finetune_pairs_aligned(tmp_path, caplog):
    d = tmp_path / "ft"
    d.mkdir()
    waves = {f"p{i}": _write_pair(d, f"p{i}", 0.3 + 0.04 * i, frames_delta=i % 2) for i in range(4)}
    waves["short"] = _write_pair(d, "short", 0.12)  # shorter than a segment: both sides padded
    sf.write(d / "nomel.wav", _tone(0.3, SR, 300, 1), SR, subtype="PCM_16")
    _write_pair(d, "wrongbands", 0.3, n_mels=MEL.n_mels + 1)
    _write_pair(d, "misaligned", 0.3, frames_delta=9)
    dm = _dm(d, finetune_mels=True, val_clips=1, batch_size=1)
    with caplog.at_level(logging.WARNING, logger="vocoder.training.clips"):
        dm.setup()
    skipped = {p.stem for p, _ in dm.train_store.skipped + dm.val_store.skipped}
    assert skipped == {"nomel", "wrongbands", "misaligned"}
    hop, frames = MEL.hop_length, SEG // MEL.hop_length
    for epoch in range(3):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        for key, b in zip(list(loader.sampler), loader):
            name = dm.train_store.clips[key[1]].path.stem
            wav, mel = b["wav"][0, 0].numpy(), b["mel"][0].numpy()
            assert mel.shape == (MEL.n_mels, frames) and wav.shape == (SEG,)
            start = int(mel[0, 0])
            usable = dm.train_store.clips[key[1]].mel_frames
            expect = np.arange(start, start + frames, dtype=np.float32)
            np.testing.assert_array_equal(mel[0, : usable - start], expect[: usable - start])
            src = waves[name][start * hop: start * hop + SEG]
            np.testing.assert_allclose(wav[: len(src)], src, atol=1.0 / 32768)
            assert np.all(wav[len(src):] == 0)
            if usable - start < frames:
                assert np.all(mel[:, usable - start:] == pytest.approx(np.log(1e-5)))
    vb = next(iter(dm.val_dataloader()))
    assert vb["mel"].shape[-1] * hop == vb["wav"].shape[-1]
    np.testing.assert_array_equal(vb["mel"][0, 0].numpy(), np.arange(vb["mel"].shape[-1], dtype=np.float32))


def test_lightning_fit_resume_reproduces_stream(corpus, tmp_path):
    pl = pytest.importorskip("pytorch_lightning")

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append(batch["wav"].clone())
            return (self.w - batch["wav"].mean()).pow(2)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainer(**kw):
        return pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
                          default_root_dir=tmp_path,
                          enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, **kw)

    ref = Probe()
    trainer(enable_checkpointing=False).fit(ref, datamodule=_dm(corpus, batch_size=2))
    n = len(ref.seen) // 2
    assert n >= 3
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=n + 1, save_top_k=-1)
    first = Probe()
    trainer(callbacks=[ckpt]).fit(first, datamodule=_dm(corpus, batch_size=2))
    path = next(iter(sorted((tmp_path / "ck").glob("*step=*.ckpt"))))
    saved = torch.load(path, weights_only=False)
    assert saved["VocoderDataModule"]["epoch"] == 1 and saved["VocoderDataModule"]["position"] == 1
    again = Probe()
    trainer(enable_checkpointing=False).fit(again, datamodule=_dm(corpus, batch_size=2), ckpt_path=path)
    assert len(again.seen) == len(ref.seen) - (n + 1)
    for x, y in zip(again.seen, ref.seen[n + 1:]):
        torch.testing.assert_close(x, y)


def _corpus_script():
    return load_script(REPO / "recipes" / "data" / "build_corpus.py")


def test_corpus_script_names_speakers_and_holds_out_test_voices():
    bc = _corpus_script()
    pkgs = {p.name: p for p in bc.PACKAGES}
    root = Path("/x")
    f = pkgs["fillets-ng-data-cs"]
    assert bc.describe(f, root, root / "usr/share/games/fillets-ng/sound/city/cs/vit-m-hlava.ogg") == (
        "cs", "fillets_cs_m", "city__vit-m-hlava")
    assert bc.describe(f, root, root / "usr/share/games/fillets-ng/sound/gods/cs/b1-2.ogg") is None  # misc
    k = pkgs["ktuberling-data"]
    assert bc.describe(k, root, root / "usr/share/ktuberling/sounds/sr@latin/uvo.ogg")[1] == "ktuberling_sr"
    kl = pkgs["klettres-data"]
    assert bc.describe(kl, root, root / "usr/share/klettres/nl/syllab/ad-2.ogg") == ("nl", "klettres_nl", "syllab_ad-2")
    clips = [bc.Clip(Path(f"/s/{i}.ogg"), p, "xx", spk, Path(f"wav/{spk}/{i}.wav"), 22050, 1.5)
             for i, (p, spk) in enumerate([(f, "fillets_cs_m"), (f, "fillets_cs_x"), (kl, "klettres_nl"),
                                           (kl, "klettres_fr"), (k, "ktuberling_en")] * 20)]
    bc.split(clips, set(bc.TEST_SPEAKERS), val_clips=6, seed=0)
    by_split = {s: {c.speaker for c in clips if c.split == s} for s in ("train", "val", "test")}
    assert by_split["test"] == {"fillets_cs_x", "klettres_nl"}
    assert not (by_split["train"] | by_split["val"]) & set(bc.TEST_SPEAKERS)
    assert sum(c.split == "val" for c in clips) == 6


def test_sources_list_and_mel_folder(tmp_path):
    wavs, mels = tmp_path / "wavs", tmp_path / "mels"
    wavs.mkdir()
    mels.mkdir()
    for i in range(3):
        _write_pair(wavs, f"q{i}", 0.3)
        (wavs / f"q{i}.npy").rename(mels / f"q{i}.npy")  # mels kept in their own folder
    extra = tmp_path / "extra.wav"
    sf.write(extra, _tone(0.3, SR, 300, 2), SR, subtype="PCM_16")
    assert [p.name for p in list_audio_files([wavs, extra])] == ["q0.wav", "q1.wav", "q2.wav", "extra.wav"]
    dm = _dm([wavs, extra], finetune_mels=mels, val_clips=0)
    dm.setup()
    assert sorted(c.path.stem for c in dm.train_store.clips) == ["q0", "q1", "q2"]  # extra.wav has no mel
    assert [p.name for p, _ in dm.train_store.skipped] == ["extra.wav"]


_WORKER_SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
from vocoder.audio.mel import MelConfig
from vocoder.training.data import VocoderDataModule
mel = MelConfig(**{mel!r})
dm = VocoderDataModule({corpus!r}, None, mel_config=mel, segment_length={seg}, batch_size=2, num_workers=1,
                       val_clips=2, seed=7, min_seconds=0.1)
loader = dm.train_dataloader()
next(iter(loader))  # a persistent worker is now running
worker = loader._iterator._workers[0].pid
if {group_signal}:
    import subprocess
    subprocess.run(["kill", "-TERM", str(worker)], check=True)  # as SLURM / timeout do: not from its parent
    time.sleep(1.0)
    next(iter(loader))  # the loader still works: the worker ignored it
print("worker", worker, flush=True)
"""  # then the interpreter exits with the worker alive: multiprocessing terminates and joins it


@pytest.mark.parametrize("group_signal", [False, True], ids=["exit", "sigterm-from-elsewhere-then-exit"])
def test_persistent_workers_survive_foreign_sigterm_and_exit_cleanly(corpus, group_signal):
    """Workers ignore a SIGTERM that is not their parent's (training survives a job-wide SIGTERM), yet the
    parent's own at interpreter exit still ends them: the program exits instead of waiting forever."""
    import dataclasses
    import subprocess
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    code = _WORKER_SCRIPT.format(repo=repo, mel=dataclasses.asdict(MEL), corpus=str(corpus), seg=SEG,
                                 group_signal=group_signal)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    pid = int(done.stdout.split()[1])
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
