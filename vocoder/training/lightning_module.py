"""``GANVocoder``: the Lightning module that trains a generator against a list of discriminators.

One GAN step (manual optimisation, two optimisers), in HiFi-GAN's order::

    fake = G(mel)                                         # [B, 1, T]
    D step:  L_D = disc * sum_k adv_D(D_k(real), D_k(fake.detach()))        (from discriminator_start_step on)
    G step:  L_G = sum of weight * term over the reconstruction terms with a weight > 0 (mel, multiscale_mel,
                   stft_sc, stft_mag, the Fourier-head terms, ...: losses on (fake, real) or on G's spectrum)
                 + adv * adv_G(D(fake)) + fm * FM(D(real), D(fake))           (from generator_adv_start_step on,
                                                                                 default discriminator_start_step)

The terms are the ones the loss modules declare (:mod:`vocoder.losses.registry`), built once for the recipe's
weights and summed in their registration order; a loss whose inputs are the predicted spectrum needs a Fourier-head
generator (:func:`~vocoder.generators.registry.is_fourier`).

``self.gan_step`` counts GAN steps; it is saved in the checkpoint and drives every schedule (warm-up, LR decay,
logging, checkpoints). Lightning's ``global_step`` counts optimiser steps instead (two per GAN step once the
discriminator trains), see :func:`vocoder.training.recipes.lightning_max_steps`. ``self.cpu_seconds`` is the CPU
time the run has used (the training process and its threads; with DDP, rank 0's), carried across resumes in the
checkpoint, for curves and model cards in CPU-hours.

Learning rate: ``ExponentialLR(gamma=optim.lr_decay)`` stepped once every ``optim.lr_decay_every`` GAN steps, so
``lr = lr0 * lr_decay ** (gan_step // lr_decay_every)``. BigVGAN-v2 decays per step (0.9999996, every 1);
HiFi-GAN decays 0.999 per epoch, which the HiFi-GAN recipes express as a fixed number of steps.

Losses run in float32 with autocast off: cuFFT has no bf16 STFT and log-mel distances need the precision.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pytorch_lightning as pl
import torch

from .. import losses as vl
from ..audio.mel import MelConfig, mel_spectrogram
from ..generators.registry import is_fourier
from ..checkpoints.training_layout import (DISCRIMINATOR_NOISE, RECIPE, read_cpu_seconds, read_gan_step,
                                           training_extras)
from .recipes import plain_data
from .discriminator_noise import DiscriminatorNoise
from .settings import TrainingRecipe, as_training_recipe

__all__ = ["GANVocoder", "VALIDATION_LOSSES"]

#: losses validation reports whatever their training weight (``val/mel_l1``, ``val/mrstft``)
VALIDATION_LOSSES = ("mel", "stft")

log = logging.getLogger(__name__)


class GANVocoder(pl.LightningModule):
    """Generator + :class:`CombinedDiscriminator` trained from a recipe: a :class:`TrainingRecipe`, or a resolved
    recipe dict (see ``recipes.py``), typed here (Lightning rebuilds the module from the dict it saved)."""

    def __init__(self, recipe: Union[Mapping[str, Any], TrainingRecipe]):
        super().__init__()
        self.plan = plan = as_training_recipe(recipe)
        self.save_hyperparameters({RECIPE: dict(plan.raw)})  # the argument's name: Lightning rebuilds from it
        self.automatic_optimization = False
        self.recipe = dict(plan.raw)
        self.mel_config: MelConfig = plan.mel
        self.generator = plan.build_generator()
        self.generator_name = plan.generator_name
        self.generator_config = dataclasses.asdict(plan.generator_config)
        self.discriminator = plan.build_discriminator()
        # Diffusion-GAN / SpecDiff-GAN noise on the discriminators' inputs (identity unless the recipe enables it)
        self.discriminator_noise = DiscriminatorNoise(plan.discriminator_noise, plan.mel, adversarial=plan.losses.kind)
        self.gan_step = 0  # GAN steps done; saved in checkpoints
        self._cpu_before = 0.0  # CPU seconds of earlier processes of this run (from the checkpoint)
        self._cpu_start = time.process_time()

        L = plan.losses
        self.w = L.weights()  # every term's weight, by name
        spectrum_terms = [t for t in vl.terms(("spectrum",)) if self.w[t] > 0]
        self.needs_spectrum = bool(spectrum_terms)
        if self.needs_spectrum and not is_fourier(self.generator):
            raise ValueError(f"losses {spectrum_terms} need a Fourier-head generator (one with spectrum()), got "
                             f"{self.generator_name}")
        # Validation's losses and the discriminators' are built whatever their weight.
        always = VALIDATION_LOSSES + tuple(s.name for s in vl.loss_specs() if s.inputs == "discrimination")
        built = vl.build_losses(vl.LossContext(self.mel_config, self.generator, L), also=always)
        # Non-persistent buffers only (windows, filterbanks): the state dict holds generator and discriminator.
        self.loss_modules = torch.nn.ModuleDict({name: b.module for name, b in built.items()})
        self._terms = {name: (b.spec.inputs, b.active) for name, b in built.items() if b.active}
        self._log_names = {k.name: k.log or k.name for s in vl.loss_specs() for k in s.keys if k.name in self.w}
        o = plan.optim
        self.d_start = o.discriminator_start_step
        self.g_adv_start = o.generator_adv_start
        if self.g_adv_start > 0 and not any(self.w[k] > 0 for k in vl.reconstruction_terms()):
            raise ValueError(f"optim.discriminator_start_step={self.d_start} / generator_adv_start_step="
                             f"{self.g_adv_start} need a reconstruction loss for the generator's warm-up, but losses "
                             f"{', '.join(vl.reconstruction_terms())} are all 0")
        self._logged_real = False

    @property
    def fourier_loss(self) -> Optional[torch.nn.Module]:
        """The Fourier-head losses (:class:`vocoder.losses.FourierLosses`) when a term of theirs is weighted."""
        return self.loss_modules["fourier"] if "fourier" in self._terms else None

    def _losses_with(self, *inputs: str) -> Sequence[Tuple[str, Tuple[str, ...]]]:
        """``(loss name, weighted terms)`` of the built losses with these inputs, in registration order."""
        return [(name, active) for name, (kind, active) in self._terms.items() if kind in inputs]

    # ------------------------------------------------------------------ optimisers

    def configure_optimizers(self):
        o = self.plan.optim
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        kw = dict(lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
        opt_g = cls(self.generator.parameters(), **kw)
        opt_d = cls(self.discriminator.parameters(), **kw)
        # Stepped by hand (manual optimisation); Lightning still saves and restores their state.
        sch_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, gamma=o.lr_decay)
        sch_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, gamma=o.lr_decay)
        return [opt_g, opt_d], [sch_g, sch_d]

    # ------------------------------------------------------------------ checkpoint state

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds this run has used so far (earlier processes of the run included)."""
        return self._cpu_before + time.process_time() - self._cpu_start

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Add what :mod:`vocoder.checkpoints.training_layout` lays out next to Lightning's keys."""
        checkpoint.update(training_extras(self.gan_step, self.cpu_seconds, self.generator_name,
                                          plain_data(self.generator_config), self.mel_config, self.plan.name))
        if self.discriminator_noise.config.enabled:
            checkpoint[DISCRIMINATOR_NOISE] = self.discriminator_noise.state_dict()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self.gan_step = read_gan_step(checkpoint)
        # Checkpoints from before this counter: unknown, counted from 0 (the warm-start README keeps the totals).
        cpu_before = read_cpu_seconds(checkpoint)
        self._cpu_before = 0.0 if cpu_before is None else cpu_before
        self._cpu_start = time.process_time()
        if self.discriminator_noise.config.enabled and DISCRIMINATOR_NOISE in checkpoint:
            self.discriminator_noise.load_state_dict(checkpoint[DISCRIMINATOR_NOISE])

    def on_train_start(self) -> None:
        """Put the optimisers on the recipe's LR schedule at ``gan_step``.

        A resumed run restores its optimiser and scheduler state, which would keep the old schedule even when the
        recipe changed it (``--resume auto optim.lr=1e-4``). The LR is a function of the recipe and ``gan_step``
        (module docstring), so where the restored LR is not that value, it is set to it. An unchanged recipe
        restores within rounding of the formula and is left bit-exact.
        """
        o = self.plan.optim
        lr = o.lr * o.lr_decay ** (self.gan_step // o.lr_decay_every)
        for opt, sch in zip(self.optimizers(), self.lr_schedulers()):
            opt = getattr(opt, "optimizer", opt)  # LightningOptimizer wraps the torch optimiser
            current = [g["lr"] for g in opt.param_groups]
            if all(abs(c - lr) <= 1e-6 * lr for c in current) and sch.gamma == o.lr_decay:
                continue
            log.info("optimiser LR %.3g -> %.3g: the recipe's schedule (optim.lr=%g, lr_decay=%g every %d) at GAN "
                     "step %d", current[0], lr, o.lr, o.lr_decay, o.lr_decay_every, self.gan_step)
            for g in opt.param_groups:
                g["lr"], g["initial_lr"] = lr, o.lr
            sch.base_lrs = [o.lr] * len(opt.param_groups)
            sch.gamma = o.lr_decay
            sch._last_lr = [lr] * len(opt.param_groups)

    # ------------------------------------------------------------------ losses

    def _fp32(self):
        return torch.autocast(device_type=self.device.type, enabled=False)

    def reconstruction_losses(self, fake: torch.Tensor, real: torch.Tensor,
                              spectrum: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        """The weighted reconstruction terms of ``fake`` vs ``real`` (both ``[B, 1, T]``; ``spectrum``: the
        generator's ``(log_amplitude, phase)``, needed when a spectrum term is weighted), unweighted, float32."""
        out: Dict[str, torch.Tensor] = {}
        with self._fp32():
            fake, real = fake.float(), real.float()
            for name, active in self._losses_with("audio", "spectrum"):
                loss = self.loss_modules[name]
                values = loss(fake, real) if self._terms[name][0] == "audio" else loss(*spectrum, fake, real)
                out.update((t, values[t]) for t in active)
        return out

    def adversarial_losses(self, real_judgement, fake_judgement) -> Dict[str, torch.Tensor]:
        """The generator's weighted adversarial terms (``adv``, ``fm``, ...), unweighted, float32; each judgement is
        the discriminator's ``(logits, feature_maps)``."""
        out: Dict[str, torch.Tensor] = {}
        with self._fp32():
            real = ([x.float() for x in real_judgement[0]], [[f.float() for f in fs] for fs in real_judgement[1]])
            fake = ([x.float() for x in fake_judgement[0]], [[f.float() for f in fs] for fs in fake_judgement[1]])
            for name, active in self._losses_with("judgement"):
                values = self.loss_modules[name](real, fake)
                out.update((t, values[t]) for t in active)
        return out

    def discriminator_loss(self, real_logits, fake_logits) -> torch.Tensor:
        """The discriminators' loss, weighted, float32: ``disc * adv_D(real, fake)`` (every discrimination term,
        weighted, also at weight 0, so that the step has a loss to differentiate)."""
        with self._fp32():
            real_logits, fake_logits = [x.float() for x in real_logits], [x.float() for x in fake_logits]
            total = 0
            for spec in vl.loss_specs():
                if spec.inputs == "discrimination":
                    values = self.loss_modules[spec.name](real_logits, fake_logits)
                    total = total + sum(self.w[t] * values[t] for t in spec.terms)
        return total

    def _discriminator_mel(self, mel: torch.Tensor, copies: int) -> Optional[torch.Tensor]:
        """The mel a conditional discriminator sees next to ``copies`` stacked batches of audio (``None`` when no
        member is conditional)."""
        return torch.cat([mel] * copies, dim=0) if self.discriminator.conditional else None

    def _weighted_sum(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum((self.w[k] * v for k, v in terms.items()), torch.zeros((), device=self.device))

    @staticmethod
    def _match(fake: torch.Tensor, real: torch.Tensor):
        """Trim both to the shorter length (a clip is rarely a whole number of hops)."""
        if real.dim() == 2:
            real = real.unsqueeze(1)
        n = min(fake.shape[-1], real.shape[-1])
        return fake[..., :n], real[..., :n]

    def _clip(self, params, limit) -> torch.Tensor:
        limit = float("inf") if limit is None else float(limit)
        grads = [p for p in params if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        return torch.nn.utils.clip_grad_norm_(grads, limit)

    # ------------------------------------------------------------------ training

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int):
        opt_g, opt_d = self.optimizers()
        sch_g, sch_d = self.lr_schedulers()
        o = self.plan.optim
        mel, real = batch["mel"], batch["wav"]
        spectrum = None
        if self.needs_spectrum:  # the spectrum losses also need the predicted STFT
            spectrum = self.generator.spectrum(mel)
            fake = self.generator.synthesize(*spectrum)
        else:
            fake = self.generator(mel)
        fake, real = self._match(fake, real)
        adversarial = self.gan_step >= self.d_start
        generator_adversarial = self.gan_step >= self.g_adv_start  # D may learn first (generator_adv_start_step)
        logs: Dict[str, torch.Tensor] = {}

        if adversarial:
            # ---- discriminator
            self.toggle_optimizer(opt_d)
            # One pass over [real; fake]: same result as two passes (no batch statistics in D), cheaper.
            real_d, fake_d = self.discriminator_noise(real, fake.detach().to(real.dtype), mel)
            both, _ = self.discriminator(torch.cat([real_d, fake_d], dim=0), mel=self._discriminator_mel(mel, 2))
            n = real.shape[0]
            loss_d = self.discriminator_loss([x[:n] for x in both], [x[n:] for x in both])
            if self.discriminator_noise.config.enabled:
                self.discriminator_noise.update([x[:n] for x in both])
                logs["diffusion_steps"] = torch.tensor(float(self.discriminator_noise.steps))
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            logs["grad_norm_d"] = self._clip(self.discriminator.parameters(), o.discriminator_grad_clip)
            opt_d.step()
            self.untoggle_optimizer(opt_d)
            logs["loss_d"] = loss_d.detach()

        # ---- generator
        self.toggle_optimizer(opt_g)
        terms = self.reconstruction_losses(fake, real, spectrum)
        if generator_adversarial and self._losses_with("judgement"):
            real_g, fake_g = self.discriminator_noise(real, fake, mel)
            d_mel = self._discriminator_mel(mel, 1)
            with self.discriminator.same_windows():  # random-window members judge real and fake on one window
                with torch.no_grad():
                    real_judgement = self.discriminator(real_g, mel=d_mel)
                fake_judgement = self.discriminator(fake_g, mel=d_mel)
            terms.update(self.adversarial_losses(real_judgement, fake_judgement))
        loss_g = self._weighted_sum(terms)
        for k, v in terms.items():
            logs[self._log_names[k]] = v.detach()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        logs["grad_norm_g"] = self._clip(self.generator.parameters(), o.grad_clip)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        logs["loss_g"] = loss_g.detach()

        self.gan_step += 1
        if self.gan_step % o.lr_decay_every == 0:
            sch_g.step()
            sch_d.step()

        bs = real.shape[0]
        for k, v in logs.items():
            self.log(f"train/{k}", v, on_step=True, on_epoch=False, prog_bar=k in ("loss_g", "loss_d", "mel"),
                     batch_size=bs)
        self.log("train/lr", float(sch_g.get_last_lr()[0]), on_step=True, on_epoch=False, batch_size=bs)
        self.log("gan_step", float(self.gan_step), on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
        self.log("train/cpu_hours", self.cpu_seconds / 3600.0, on_step=True, on_epoch=False, batch_size=bs)
        return logs["loss_g"]

    # ------------------------------------------------------------------ validation

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int):
        """Whole clips at batch size 1: mel L1 (the loss mel) and multi-resolution STFT distance."""
        mel, real = batch["mel"], batch["wav"]
        fake = self.generator(mel)
        fake, real = self._match(fake, real)
        with self._fp32():
            fake, real = fake.float(), real.float()
            mel_l1 = self.loss_modules["mel"](fake, real)["mel"]
            stft = self.loss_modules["stft"](fake, real)
            sc, mag = stft["stft_sc"], stft["stft_mag"]
        bs = real.shape[0]
        self.log("val/mel_l1", mel_l1, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=bs)
        self.log("val/mrstft", sc + mag, on_epoch=True, sync_dist=True, batch_size=bs)
        n_samples = self.plan.trainer.val_log_samples
        if batch_idx < n_samples and self.global_rank == 0:
            self._log_sample(batch_idx, real[0, 0], fake[0, 0])
        return mel_l1

    def _tensorboard(self):
        for lg in (self.loggers or []):
            if isinstance(lg, pl.loggers.TensorBoardLogger):
                return lg.experiment
        return None

    def _log_sample(self, idx: int, real: torch.Tensor, fake: torch.Tensor) -> None:
        tb = self._tensorboard()
        if tb is None:
            return
        sr = self.mel_config.sample_rate
        real, fake = real.detach().float().cpu(), fake.detach().float().cpu().clamp(-1, 1)
        tb.add_audio(f"val/{idx}/generated", fake.unsqueeze(0), self.gan_step, sample_rate=sr)
        if not self._logged_real:  # the reference audio once per run
            tb.add_audio(f"val/{idx}/real", real.unsqueeze(0), self.gan_step, sample_rate=sr)
        with torch.no_grad():
            m_real = mel_spectrogram(real.unsqueeze(0), self.mel_config)[0].numpy()
            m_fake = mel_spectrogram(fake.unsqueeze(0), self.mel_config)[0].numpy()
        tb.add_image(f"val/{idx}/mel", _spectrogram_image(m_real, m_fake), self.gan_step, dataformats="HWC")

    def on_validation_epoch_end(self) -> None:
        self._logged_real = True


def _spectrogram_image(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """Real (top) and generated (bottom) log-mels as an RGB uint8 array ``[H, W, 3]`` (matplotlib Agg)."""
    # deferred: only runs when validation logs a sample; matplotlib adds ~0.3 s to every import of the module
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), dpi=80)
    canvas = FigureCanvasAgg(fig)
    vmin, vmax = float(min(real.min(), fake.min())), float(max(real.max(), fake.max()))
    for i, (m, title) in enumerate(((real, "real"), (fake, "generated"))):
        ax = fig.add_subplot(2, 1, i + 1)
        im = ax.imshow(m, aspect="auto", origin="lower", interpolation="none", vmin=vmin, vmax=vmax)
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
