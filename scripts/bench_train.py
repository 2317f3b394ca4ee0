#!/usr/bin/env python
"""Seconds per full GAN training step (float32, CPU or CUDA), ours against a peer measured in the same run.

One step = generator forward, discriminator forward + backward + optimiser step, generator losses
(adversarial + feature matching + mel L1) + backward + optimiser step, gradient clipping on both sides.

Recipes:
  hifigan  HiFi-GAN V2 + MPD + MSD (batch 16 x 8192) vs ParallelWaveGAN's HiFiGANGenerator (V2 sizes) +
           HiFiGANMultiScaleMultiPeriodDiscriminator + its GeneratorAdversarialLoss, FeatureMatchLoss,
           MelSpectrogramLoss, DiscriminatorAdversarialLoss, stepped as ParallelWaveGAN's trainer does
           (generator first; ``--pwg-recompute`` adds the trainer's default re-generation before the D step).
  bigvgan  BigVGAN base (22 kHz, 80 bands) + MPD + MRD (batch 4 x 8192) vs the ``bigvgan`` package's
           BigVGAN + MultiPeriodDiscriminator + MultiResolutionDiscriminator + loss.py, stepped as its train.py
           (its torch activation: NVIDIA's CUDA kernel is forward-only and cannot train).
  bigvgan_kernels  ours BigVGAN base + MPD + MRD (batch 4 x 8192) with the fused activation kernels against
           the same step with the PyTorch reference activation (``VOCODER_KERNELS=0``): what the kernels buy training.

Our step runs the discriminator once on ``cat([real, fake])`` in the D step and, in the G step, judges
the real audio under ``no_grad`` with the discriminator's parameters frozen (same generator gradients).

Timing: one warm-up step each, then the two alternate step by step (so machine load hits both alike);
the median step time is reported. Example quick run:
    python scripts/bench_train.py --batch 2 --segment 8192 --steps 2 --recipes hifigan,bigvgan
On a GPU: ``--device cuda --steps 20 --warmup 3``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vocoder.audio.mel import MelConfig  # noqa: E402
from vocoder.discriminators import CombinedDiscriminator, build_discriminator  # noqa: E402
from vocoder.generators import build_generator, get_preset  # noqa: E402
from vocoder.kernels.dispatch import use_kernels  # noqa: E402
from vocoder.losses import (MelL1Loss, discriminator_adversarial_loss, feature_matching_loss,  # noqa: E402
                            generator_adversarial_loss)

W_MEL, W_FM, W_ADV = 45.0, 2.0, 1.0
CLIP = 1000.0
DEFAULT_BATCH = {"hifigan": 16, "bigvgan": 4, "bigvgan_kernels": 4}


def _adamw(params):
    return torch.optim.AdamW(params, lr=2e-4, betas=(0.8, 0.99))


def _inputs(batch, segment, hop, n_mels, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, n_mels, segment // hop, generator=g) - 5.0
    wav = (0.3 * torch.randn(batch, 1, segment, generator=g)).clamp(-1, 1)
    return mel.to(device), wav.to(device)


def _n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


# ------------------------------------------------------------------------------------------------ ours


def our_step_fn(preset: str, disc_names, batch: int, segment: int, device: str = "cpu"):
    gen = build_generator(preset).to(device)
    p = get_preset(preset)
    # HiFi-GAN / BigVGAN v1 compute the loss mel with fmax=None ("fmax_for_loss")
    loss_mel_cfg = MelConfig(**{**p.mel.to_dict(), "fmax": None})
    disc = CombinedDiscriminator([build_discriminator(n) for n in disc_names]).to(device)
    mel_loss = MelL1Loss(loss_mel_cfg).to(device)
    opt_g, opt_d = _adamw(gen.parameters()), _adamw(disc.parameters())
    mel, wav = _inputs(batch, segment, gen.hop_length, gen.n_mels, device)
    d_params = list(disc.parameters())
    gen.train(), disc.train()

    def step():
        fake = gen(mel)
        n = wav.shape[0]
        # discriminator: one pass over [real; fake]
        for q in d_params:
            q.requires_grad_(True)
        logits, _ = disc(torch.cat([wav, fake.detach()], dim=0))
        loss_d, _, _ = discriminator_adversarial_loss([x[:n] for x in logits], [x[n:] for x in logits])
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        torch.nn.utils.clip_grad_norm_(d_params, CLIP)
        opt_d.step()
        # generator: D frozen, real judged without a graph
        for q in d_params:
            q.requires_grad_(False)
        with torch.no_grad():
            _, real_fmaps = disc(wav)
        fake_logits, fake_fmaps = disc(fake)
        adv, _ = generator_adversarial_loss(fake_logits)
        fm = feature_matching_loss(real_fmaps, fake_fmaps)
        loss_g = W_ADV * adv + W_FM * fm + W_MEL * mel_loss(fake, wav)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), CLIP)
        opt_g.step()
        return float(loss_d), float(loss_g)

    return step, _n_params(gen), _n_params(disc)


# ------------------------------------------------------------------------------------------------ peers


def pwg_hifigan_step_fn(batch: int, segment: int, recompute: bool, device: str = "cpu"):
    import scipy.signal
    import scipy.signal.windows
    scipy.signal.kaiser = scipy.signal.windows.kaiser  # parallel_wavegan imports a name scipy removed
    from parallel_wavegan.losses import (DiscriminatorAdversarialLoss, FeatureMatchLoss,
                                         GeneratorAdversarialLoss, MelSpectrogramLoss)
    from parallel_wavegan.models.hifigan import (HiFiGANGenerator,
                                                 HiFiGANMultiScaleMultiPeriodDiscriminator)

    # HiFi-GAN V2 sizes (ParallelWaveGAN's hifigan configs, channels 128)
    gen = HiFiGANGenerator(in_channels=80, out_channels=1, channels=128, kernel_size=7,
                           upsample_scales=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
                           resblock_kernel_sizes=(3, 7, 11), resblock_dilations=[(1, 3, 5)] * 3,
                           use_additional_convs=True).to(device)
    disc = HiFiGANMultiScaleMultiPeriodDiscriminator().to(device)
    gen_adv = GeneratorAdversarialLoss(average_by_discriminators=False, loss_type="mse")
    dis_adv = DiscriminatorAdversarialLoss(average_by_discriminators=False, loss_type="mse")
    fm_loss = FeatureMatchLoss(average_by_layers=False, average_by_discriminators=False)
    mel_loss = MelSpectrogramLoss(fs=22050, fft_size=1024, hop_size=256, win_length=None, window="hann",
                                  num_mels=80, fmin=0, fmax=None).to(device)
    opt_g, opt_d = _adamw(gen.parameters()), _adamw(disc.parameters())
    x, y = _inputs(batch, segment, 256, 80, device)
    gen.train(), disc.train()

    def step():  # ParallelWaveGAN's Trainer._train_step for HiFi-GAN configs
        y_ = gen(x)
        gen_loss = W_MEL * mel_loss(y_, y)
        p_ = disc(y_)
        adv = gen_adv(p_)
        with torch.no_grad():
            p = disc(y)
        adv = adv + W_FM * fm_loss(p_, p)
        gen_loss = gen_loss + W_ADV * adv
        opt_g.zero_grad()
        gen_loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), CLIP)
        opt_g.step()
        if recompute:
            with torch.no_grad():
                y_ = gen(x)
        p = disc(y)
        p_ = disc(y_.detach())
        real_loss, fake_loss = dis_adv(p_, p)
        dis_loss = real_loss + fake_loss
        opt_d.zero_grad()
        dis_loss.backward()
        torch.nn.utils.clip_grad_norm_(disc.parameters(), CLIP)
        opt_d.step()
        return float(dis_loss), float(gen_loss)

    return step, _n_params(gen), _n_params(disc)


def bigvgan_step_fn(batch: int, segment: int, device: str = "cpu"):
    from bigvgan.bigvgan import BigVGAN
    from bigvgan.discriminators import MultiPeriodDiscriminator, MultiResolutionDiscriminator
    from bigvgan.env import AttrDict
    from bigvgan.loss import discriminator_loss, feature_loss, generator_loss
    from bigvgan.meldataset import mel_spectrogram

    # the official bigvgan_base_22khz_80band config.json, model part
    h = AttrDict(dict(
        resblock="1", num_mels=80, upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
        upsample_initial_channel=512, resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], activation="snakebeta", snake_logscale=True,
        resolutions=[[1024, 120, 600], [2048, 240, 1200], [512, 50, 240]], mpd_reshapes=[2, 3, 5, 7, 11],
        use_spectral_norm=False, discriminator_channel_mult=1, sampling_rate=22050, n_fft=1024, hop_size=256,
        win_size=1024, fmin=0, fmax=8000, fmax_for_loss=None,
    ))
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints while building
        gen = BigVGAN(h, use_cuda_kernel=False).to(device)
        mpd, mrd = MultiPeriodDiscriminator(h).to(device), MultiResolutionDiscriminator(h).to(device)
    opt_g = _adamw(gen.parameters())
    opt_d = _adamw(list(mrd.parameters()) + list(mpd.parameters()))
    x, y = _inputs(batch, segment, 256, 80, device)
    mel_args = (h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin, h.fmax_for_loss)
    y_mel = mel_spectrogram(y.squeeze(1), *mel_args)  # the data loader's job in BigVGAN
    gen.train(), mpd.train(), mrd.train()

    def step():  # bigvgan/train.py's loop body
        y_g_hat = gen(x)
        y_g_hat_mel = mel_spectrogram(y_g_hat.squeeze(1), *mel_args)
        opt_d.zero_grad()
        y_df_r, y_df_g, _, _ = mpd(y, y_g_hat.detach())
        loss_disc_f, _, _ = discriminator_loss(y_df_r, y_df_g)
        y_ds_r, y_ds_g, _, _ = mrd(y, y_g_hat.detach())
        loss_disc_s, _, _ = discriminator_loss(y_ds_r, y_ds_g)
        loss_disc_all = loss_disc_s + loss_disc_f
        loss_disc_all.backward()
        torch.nn.utils.clip_grad_norm_(mpd.parameters(), CLIP)
        torch.nn.utils.clip_grad_norm_(mrd.parameters(), CLIP)
        opt_d.step()
        opt_g.zero_grad()
        loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * W_MEL
        y_df_r, y_df_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
        loss_fm_f = feature_loss(fmap_f_r, fmap_f_g)
        loss_gen_f, _ = generator_loss(y_df_g)
        y_ds_r, y_ds_g, fmap_s_r, fmap_s_g = mrd(y, y_g_hat)
        loss_fm_s = feature_loss(fmap_s_r, fmap_s_g)
        loss_gen_s, _ = generator_loss(y_ds_g)
        loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel
        loss_gen_all.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), CLIP)
        opt_g.step()
        return float(loss_disc_all), float(loss_gen_all)

    return step, _n_params(gen), _n_params(mpd, mrd)


# ------------------------------------------------------------------------------------------------ timing


def with_kernels(step, enabled: bool):
    """``step`` run with the fused kernels on or off (the dispatcher reads ``VOCODER_KERNELS`` at every call)."""
    def run():
        with use_kernels(enabled):
            return step()
    return run


def _sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _time(step):
    """(wall seconds, process CPU seconds) of one step; CPU time is the steadier number on a shared machine."""
    _sync()
    t, c = time.perf_counter(), time.process_time()
    losses = step()  # float(loss) waits for the device too
    _sync()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    if not all(map(lambda v: v == v and abs(v) < float("inf"), losses)):
        raise RuntimeError(f"non-finite loss {losses}")
    return dt, dc


def run_pair(name, ours, peer, steps, warmup):
    (our_step, our_g, our_d), (peer_step, peer_g, peer_d) = ours, peer
    print(f"[{name}] params: ours G {our_g / 1e6:.2f} M, D {our_d / 1e6:.2f} M | "
          f"peer G {peer_g / 1e6:.2f} M, D {peer_d / 1e6:.2f} M", flush=True)
    for _ in range(warmup):
        _time(our_step), _time(peer_step)
    t_ours, t_peer = [], []
    for i in range(steps):
        # alternate which goes first so a load change hurts both alike
        if i % 2 == 0:
            t_ours.append(_time(our_step))
            t_peer.append(_time(peer_step))
        else:
            t_peer.append(_time(peer_step))
            t_ours.append(_time(our_step))
        print(f"[{name}] step {i + 1}/{steps}: ours {t_ours[-1][0]:.2f} s ({t_ours[-1][1]:.2f} s CPU), "
              f"peer {t_peer[-1][0]:.2f} s ({t_peer[-1][1]:.2f} s CPU)", flush=True)
    med = lambda ts, j: statistics.median(t[j] for t in ts)
    return med(t_ours, 0), med(t_peer, 0), med(t_ours, 1), med(t_peer, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="hifigan,bigvgan", help="comma list of: hifigan, bigvgan, bigvgan_kernels")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 16 for hifigan, 4 for bigvgan)")
    ap.add_argument("--segment", type=int, default=8192, help="samples per item (multiple of 256)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per model first")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--pwg-recompute", action="store_true",
                    help="re-generate before ParallelWaveGAN's D step (its trainer's default)")
    args = ap.parse_args(argv)
    if args.segment % 256:
        ap.error(f"--segment must be a multiple of 256, got {args.segment}")
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [r for r in recipes if r not in DEFAULT_BATCH]
    if bad:
        ap.error(f"unknown recipes {bad}; choose from {sorted(DEFAULT_BATCH)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # deprecation chatter from the peers
    torch.manual_seed(0)
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 {where}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for r in recipes:
        batch = args.batch or DEFAULT_BATCH[r]
        if r == "hifigan":
            ours = our_step_fn("hifigan_v2", ["mpd", "msd"], batch, args.segment, args.device)
            peer = pwg_hifigan_step_fn(batch, args.segment, args.pwg_recompute, args.device)
            label = f"HiFi-GAN V2 + MPD + MSD vs ParallelWaveGAN{' (recompute)' if args.pwg_recompute else ''}"
        elif r == "bigvgan":
            ours = our_step_fn("bigvgan_base_22khz_80band", ["mpd", "mrd"], batch, args.segment, args.device)
            peer = bigvgan_step_fn(batch, args.segment, args.device)
            label = "BigVGAN base + MPD + MRD vs bigvgan package"
        else:  # same step, same weights and data, fused kernels on vs off
            torch.manual_seed(0)
            step, n_g, n_d = our_step_fn("bigvgan_base_22khz_80band", ["mpd", "mrd"], batch, args.segment,
                                         args.device)
            torch.manual_seed(0)
            ref_step, _, _ = our_step_fn("bigvgan_base_22khz_80band", ["mpd", "mrd"], batch, args.segment,
                                         args.device)
            ours = (with_kernels(step, True), n_g, n_d)
            peer = (with_kernels(ref_step, False), n_g, n_d)
            label = "BigVGAN base + MPD + MRD, fused vs reference activation"
        results.append((label, batch) + run_pair(r, ours, peer, args.steps, args.warmup))
        del ours, peer
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print(f"{'recipe':<62} {'batch x seg':>12} {'ours s/step':>12} {'peer s/step':>12} {'ours/peer':>10} "
          f"{'CPU ours/peer':>14}")
    for label, batch, mo, mp, co, cp in results:
        print(f"{label:<62} {f'{batch} x {args.segment}':>12} {mo:>12.3f} {mp:>12.3f} {mo / mp:>10.3f} "
              f"{co / cp:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
