"""Shared helpers of the training tests: tiny recipe overrides and a folder of generated audio."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from vocoder.training.recipes import resolve_recipe

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"

# Shrinks each model so two steps run in seconds on CPU; the structure (layers, discriminator kinds) is unchanged.
_TINY_GEN = {
    "hifigan": ["generator.config.upsample_initial_channel=32", "generator.config.resblock_kernel_sizes=[3]"],
    "bigvgan": ["generator.config.upsample_initial_channel=64", "generator.config.resblock_kernel_sizes=[3]",
                "generator.config.resblock_dilation_sizes=[[1, 3, 5]]"],
    "melgan": ["generator.config.ngf=4", "generator.config.n_residual_layers=1"],
    "vocos": ["generator.config.dim=16", "generator.config.intermediate_dim=32", "generator.config.num_layers=2"],
    # (the F0 network keeps its size: it runs at frame rate, and a recipe's pretrained one must fit it)
    "hiftnet": ["generator.config.upsample_initial_channel=32", "generator.config.resblock_kernel_sizes=[3]",
                "generator.config.resblock_dilation_sizes=[[1, 3, 5]]"],
    "hiftnet_frame": ["generator.config.dim=16", "generator.config.intermediate_dim=32", "generator.config.num_layers=2"],
    "parallel_wavegan": ["generator.config.layers=4", "generator.config.stacks=2", "generator.config.residual_channels=8",
                         "generator.config.gate_channels=16", "generator.config.skip_channels=8"],
}
_TINY_DISC = {
    "mpd": {"channel_mult": 0.0625, "periods": [2, 3]},
    "msd": {"channel_mult": 0.25, "scales": 2},
    "mrd": {"channel_mult": 0.0625},
    "msstftd": {"filters": 4, "max_filters": 16, "n_ffts": [512, 256], "hop_lengths": [128, 64],
                "win_lengths": [512, 256]},
    "pwgd": {"layers": 4, "conv_channels": 8},
    "rwd": {"channel_mult": 0.0625, "window_frames": [1, 2, 4]},
    "pwgd_residual": {"layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 16, "skip_channels": 8},
    "cqtd": {"filters": 4, "max_filters": 16, "n_octaves": [5, 5], "hop_lengths": [256, 256],
             "bins_per_octaves": [12, 24]},
}


def tiny_overrides(recipe_path) -> list:
    """Overrides that make recipe ``recipe_path`` tiny: small generator and discriminators, 2048-sample batches of 2."""
    with open(recipe_path) as f:
        raw = yaml.safe_load(f)
    r = resolve_recipe(raw)
    gname = r["generator"]["name"] or r["generator"]["preset"]
    out = list(_TINY_GEN[gname])
    if r["generator"]["preset"] == "hifigan_v3":  # resblock 2 takes two dilations per kernel
        out.append("generator.config.resblock_dilation_sizes=[[1, 2]]")
    elif gname == "hifigan":
        out.append("generator.config.resblock_dilation_sizes=[[1, 3, 5]]")
    for i, d in enumerate(r["discriminators"]):
        for k, v in _TINY_DISC[d["name"]].items():
            out.append(f"discriminators.{i}.args.{k}={v}")
        if d["name"] == "msstftd":
            out.append(f"discriminators.{i}.args.dilations=[1, 2]")
    out += ["data.segment_length=2048", "data.batch_size=2", "data.num_workers=0", "data.val_clips=1",
            "trainer.max_steps=2", "trainer.val_check_interval=1000", "trainer.num_sanity_val_steps=0",
            "trainer.log_every_n_steps=1", "trainer.checkpoint_every_n_steps=0", "trainer.accelerator=cpu",
            "trainer.val_log_samples=0"]
    return out



def make_audio_dir(folder: Path, n: int = 4, seconds: float = 0.25, sample_rate: int = 22050) -> Path:
    """``n`` short wavs (harmonic tone + noise, different pitch each) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for i in range(n):
        f0 = 110.0 * (1 + i / 3)
        wav = sum(np.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 6)) * 0.2
        wav = wav + 0.01 * g.standard_normal(t.shape)
        sf.write(str(folder / f"clip{i}.wav"), wav.astype(np.float32), sample_rate)
    return folder


@pytest.fixture
def one_thread(monkeypatch):
    """One intra-op thread: on a loaded 2-core machine, tiny convs with 2+ threads run 20x slower (oversubscription).
    The fused kernels are switched off so a first-time kernel build never lands inside a training test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("VOCODER_KERNELS", "0")
    yield
    torch.set_num_threads(n)
