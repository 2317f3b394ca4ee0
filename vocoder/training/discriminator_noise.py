"""Diffusion noise on the discriminator's inputs: Diffusion-GAN (Wang et al. 2022) as SpecDiff-GAN (Baoueb et al.
2024) uses it for a HiFi-GAN vocoder, optionally with spectrally shaped noise.

Before the discriminator, real and generated audio get the same forward-diffusion step::

    x_t = sqrt(abar_t) * x + sqrt(1 - abar_t) * noise_std * eps,   abar_t = prod_{s <= t} (1 - beta_s)

with one ``t`` per batch (drawn from ``{1 .. T}``, ``P(t) ~ t`` ("priority") or uniform; ``t = 0`` would be the
clean audio) and the same ``eps`` for both (the same draw, so ``real == fake`` gives ``real_t == fake_t``). The
betas are a linear schedule from ``beta_start`` to ``beta_end`` over the *current* ``T`` steps, recomputed when
``T`` moves, as in Diffusion-GAN's code.

``T`` adapts (Diffusion-GAN's rule): every ``adjust_every`` GAN steps, ``r_d = mean(sign(D(x_real) - threshold))``
over the real logits seen since the last adjustment, and ``T += sign(r_d - target) * adjust_step``, clipped to
``[steps_min, steps_max]`` (``T`` is kept as a real number and rounded when used, so ``adjust_step`` may be below
1). ``threshold`` is where the discriminator is undecided: 0 for hinge logits (the sign of the logits, as the paper's
code), 0.5 for LSGAN (half-way between its targets 0 and 1).

Shaped noise (SpecDiff-GAN; the filter as PriorGrad / SpecGrad derive it): white Gaussian noise filtered in the STFT
domain (the mel's ``n_fft``, ``hop_length``, Hann window, centred frames) by the spectral envelope of the mel frame
under each STFT frame, then scaled to unit variance per item. The envelope: the mel's amplitudes
``exp(log-mel)`` through the pseudo-inverse of the mel filterbank (a linear-frequency amplitude, floored at
``envelope_floor``), smoothed along frequency by cepstral liftering (the first ``lifter`` cepstral coefficients of its
log) -- a zero-phase gain per bin and frame. Above the mel's ``fmax`` the envelope is the floor's smoothed tail.

Use: ``noise = DiscriminatorNoise(DiscriminatorNoiseConfig.from_dict(recipe["discriminator_noise"]), mel_config,
adversarial="lsgan")``; ``real_t, fake_t = noise(real, fake, mel)`` before each discriminator call, and
``noise.update(real_logits)`` once per discriminator step. ``state_dict()`` / ``load_state_dict()`` carry ``T`` (and
the running ``r_d``) across resumes.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch

from ..audio.mel import MelConfig, mel_filterbank

__all__ = ["DiscriminatorNoiseConfig", "DiscriminatorNoise", "linear_alphas_bar", "spectral_envelope",
           "shaped_noise", "LOGIT_THRESHOLDS"]

#: the logit at which a discriminator is undecided, per adversarial objective (vocoder.losses.adversarial)
LOGIT_THRESHOLDS = {"lsgan": 0.5, "hinge": 0.0}
T_DISTRIBUTIONS = ("priority", "uniform")


@dataclass(frozen=True)
class DiscriminatorNoiseConfig:
    """The recipe's ``discriminator_noise`` section. Defaults: Diffusion-GAN's (linear betas 1e-4 .. 2e-2, ``T`` in
    [5, 500] starting at 5, target ``r_d`` 0.6, adjusted every 4 steps) with ``adjust_step`` 0.3 steps of ``T``
    per adjustment (about Diffusion-GAN's rate at batch 16); ``shaped`` is SpecDiff-GAN's spectrally shaped noise."""

    enabled: bool = False
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    steps_min: int = 5
    steps_max: int = 500
    #: where ``T`` starts (``None``: ``steps_min``, as Diffusion-GAN)
    steps_init: Optional[float] = None
    target: float = 0.6
    adjust_every: int = 4
    adjust_step: float = 0.3
    t_distribution: str = "priority"
    noise_std: float = 1.0
    shaped: bool = False
    lifter: int = 24
    envelope_floor: float = 1e-4
    #: the undecided logit (``None``: from the adversarial objective, :data:`LOGIT_THRESHOLDS`)
    threshold: Optional[float] = None

    def __post_init__(self):
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError(f"discriminator_noise needs 0 < beta_start <= beta_end < 1, got {self.beta_start}, "
                             f"{self.beta_end}")
        if not 1 <= self.steps_min <= self.steps_max:
            raise ValueError(f"discriminator_noise needs 1 <= steps_min <= steps_max, got {self.steps_min}, "
                             f"{self.steps_max}")
        if self.steps_init is not None and not self.steps_min <= self.steps_init <= self.steps_max:
            raise ValueError(f"discriminator_noise.steps_init must lie in [steps_min, steps_max] = "
                             f"[{self.steps_min}, {self.steps_max}], got {self.steps_init}")
        if not -1 <= self.target <= 1:
            raise ValueError(f"discriminator_noise.target is a mean sign, in [-1, 1], got {self.target}")
        if self.adjust_every < 1 or self.adjust_step < 0:
            raise ValueError(f"discriminator_noise needs adjust_every >= 1 and adjust_step >= 0, got "
                             f"{self.adjust_every}, {self.adjust_step}")
        if self.t_distribution not in T_DISTRIBUTIONS:
            raise ValueError(f"discriminator_noise.t_distribution must be one of {T_DISTRIBUTIONS}, got "
                             f"{self.t_distribution!r}")
        if self.noise_std <= 0 or self.lifter < 1 or self.envelope_floor <= 0:
            raise ValueError(f"discriminator_noise needs noise_std > 0, lifter >= 1, envelope_floor > 0, got "
                             f"{self.noise_std}, {self.lifter}, {self.envelope_floor}")

    @classmethod
    def from_dict(cls, section: Optional[Mapping[str, Any]]) -> "DiscriminatorNoiseConfig":
        """From the recipe section (``None`` or ``{}``: disabled); unknown keys are an error naming the known ones;
        numbers written as strings (YAML's ``1e-4``) are converted."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ValueError(f"discriminator_noise must be a mapping, got {type(section).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - set(fields))
        if unknown:
            raise ValueError(f"discriminator_noise: unknown keys {unknown}; expected some of {sorted(fields)}")
        kwargs = {}
        for key, value in section.items():
            kind = str(fields[key].type)
            try:
                if value is None:
                    pass
                elif kind == "bool":
                    if not isinstance(value, bool):
                        raise ValueError(f"expected true or false, got {value!r}")
                elif "float" in kind:
                    value = float(value)
                elif "int" in kind:
                    if float(value) != int(float(value)):
                        raise ValueError(f"expected an integer, got {value!r}")
                    value = int(float(value))
                elif kind == "str":
                    value = str(value)
            except (TypeError, ValueError) as e:
                raise ValueError(f"discriminator_noise.{key}: {e}") from e
            kwargs[key] = value
        return cls(**kwargs)


def linear_alphas_bar(steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """``abar [steps + 1]`` (float64): ``abar[0] = 1`` (clean), ``abar[t] = prod_{s=1..t} (1 - beta_s)`` with betas
    linear from ``beta_start`` to ``beta_end`` over ``steps`` steps."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def spectral_envelope(mel: torch.Tensor, mel_config: MelConfig, lifter: int = 24, floor: float = 1e-4) -> torch.Tensor:
    """The smoothed linear-frequency amplitude envelope ``[B, n_fft // 2 + 1, frames]`` of a log-mel
    ``[B, n_mels, frames]``: pseudo-inverse of the filterbank, floored, cepstrally liftered to ``lifter``
    coefficients. Normalised to a peak of 1 per item (only its shape matters)."""
    if mel.dim() != 3 or mel.shape[1] != mel_config.n_mels:
        raise ValueError(f"spectral_envelope: expected mel [B, {mel_config.n_mels}, frames], got {tuple(mel.shape)}")
    fb = mel_filterbank(mel_config, device=mel.device, dtype=torch.float64)
    linear = torch.linalg.pinv(fb) @ mel.double().exp()  # [B, F, frames]
    log_amp = linear.clamp_min(floor).log()
    n_bins = log_amp.shape[1]
    cep = torch.fft.irfft(log_amp, n=2 * (n_bins - 1), dim=1)  # real, even cepstrum
    keep = torch.zeros(cep.shape[1], dtype=cep.dtype, device=cep.device)
    keep[:lifter] = 1
    keep[cep.shape[1] - lifter + 1:] = 1  # the mirrored half
    smooth = torch.fft.rfft(cep * keep[None, :, None], dim=1).real  # [B, F, frames]
    env = smooth.exp()
    return (env / env.amax(dim=(1, 2), keepdim=True)).to(mel.dtype if mel.is_floating_point() else torch.float32)


def shaped_noise(shape: Tuple[int, int, int], envelope: torch.Tensor, mel_config: MelConfig,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """White Gaussian noise ``[B, 1, T]`` filtered in the STFT domain by ``envelope [B, n_fft // 2 + 1, frames]``
    (mel frame ``k`` for STFT frame ``k``, the last frame repeated), unit variance per item."""
    b, c, t = shape
    n_fft, hop = mel_config.n_fft, mel_config.hop_length
    eps = torch.randn(b, t, device=envelope.device, dtype=torch.float32, generator=generator)
    window = torch.hann_window(n_fft, device=envelope.device)
    spec = torch.stft(eps, n_fft, hop, window=window, center=True, return_complex=True)  # [B, F, t // hop + 1]
    frames = spec.shape[-1]
    env = envelope.float()
    if env.shape[-1] < frames:
        env = torch.cat([env, env[..., -1:].expand(-1, -1, frames - env.shape[-1])], dim=-1)
    out = torch.istft(spec * env[..., :frames], n_fft, hop, window=window, center=True, length=t)
    out = out / out.std(dim=-1, keepdim=True).clamp_min(1e-12)
    return out.view(b, 1, t).expand(b, c, t)


class DiscriminatorNoise:
    """Diffusion-GAN's noise on the discriminator's inputs (see the module docstring).

    Args:
        config: the recipe's section, typed.
        mel_config: the mel the recipe trains on (needed for ``shaped``).
        adversarial: the adversarial objective (``losses.kind``), for the default ``threshold``.
    """

    def __init__(self, config: DiscriminatorNoiseConfig, mel_config: Optional[MelConfig] = None,
                 adversarial: str = "lsgan"):
        if config.shaped and mel_config is None:
            raise ValueError("discriminator_noise.shaped needs the recipe's mel config (pass mel_config=)")
        if config.threshold is None and adversarial not in LOGIT_THRESHOLDS:
            raise ValueError(f"discriminator_noise: no default threshold for adversarial kind {adversarial!r}; "
                             f"set discriminator_noise.threshold or use one of {sorted(LOGIT_THRESHOLDS)}")
        self.config = config
        self.mel_config = mel_config
        self.threshold = config.threshold if config.threshold is not None else LOGIT_THRESHOLDS[adversarial]
        self.level = float(config.steps_init if config.steps_init is not None else config.steps_min)
        self._sign_sum = 0.0
        self._sign_count = 0
        self._updates = 0
        self._abar_cache: Dict[int, torch.Tensor] = {}
        self.last_t = 0  # the step the last call used

    @property
    def steps(self) -> int:
        """``T``, the current number of diffusion steps."""
        return int(min(max(round(self.level), self.config.steps_min), self.config.steps_max))

    def alphas_bar(self) -> torch.Tensor:
        """``abar [T + 1]`` of the current ``T`` (float64)."""
        T = self.steps
        if T not in self._abar_cache:
            self._abar_cache = {T: linear_alphas_bar(T, self.config.beta_start, self.config.beta_end)}
        return self._abar_cache[T]

    def t_probabilities(self) -> torch.Tensor:
        """``P(t)`` over ``t = 1 .. T`` (``[T]``): ``~ t`` (priority: the noisier steps more often) or uniform."""
        T = self.steps
        w = torch.arange(1, T + 1, dtype=torch.float64) if self.config.t_distribution == "priority" \
            else torch.ones(T, dtype=torch.float64)
        return w / w.sum()

    def sample_t(self, generator: Optional[torch.Generator] = None) -> int:
        return int(torch.multinomial(self.t_probabilities(), 1, generator=generator)) + 1

    def __call__(self, real: torch.Tensor, fake: torch.Tensor, mel: Optional[torch.Tensor] = None,
                 t: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(real_t, fake_t)``, both ``[B, 1, T]``: the same step ``t`` (drawn, or given) and the same noise;
        identity when the config is disabled."""
        if not self.config.enabled:
            return real, fake
        if real.shape != fake.shape or real.dim() != 3:
            raise ValueError(f"discriminator_noise: expected real and fake of the same shape [B, 1, T], got "
                             f"{tuple(real.shape)} and {tuple(fake.shape)}")
        if t is None:
            t = self.sample_t()
        if not 0 <= t <= self.steps:
            raise ValueError(f"discriminator_noise: t must lie in [0, T={self.steps}], got {t}")
        self.last_t = t
        abar = float(self.alphas_bar()[t])
        if self.config.shaped:
            if mel is None:
                raise ValueError("discriminator_noise.shaped needs the batch's mel: call noise(real, fake, mel)")
            env = spectral_envelope(mel, self.mel_config, self.config.lifter, self.config.envelope_floor)
            eps = shaped_noise(tuple(real.shape), env, self.mel_config).to(real.dtype)
        else:
            eps = torch.randn_like(real)
        noise = math.sqrt(1.0 - abar) * self.config.noise_std * eps
        return math.sqrt(abar) * real + noise, math.sqrt(abar) * fake + noise

    def update(self, real_logits: Sequence[torch.Tensor]) -> Optional[int]:
        """Record the real logits of one discriminator step; every ``adjust_every`` calls move ``T`` by
        ``sign(r_d - target) * adjust_step``. Returns the new ``T`` when it adjusted, else ``None``."""
        if not self.config.enabled:
            return None
        if torch.is_tensor(real_logits):
            real_logits = [real_logits]
        with torch.no_grad():
            signs = [torch.sign(x.detach().float() - self.threshold) for x in real_logits]
            totals = torch.stack([sum(s.sum() for s in signs), torch.tensor(float(sum(s.numel() for s in signs)),
                                                                            device=signs[0].device)])
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(totals)  # every DDP rank sees every rank's logits: T moves alike
            self._sign_sum += float(totals[0])
            self._sign_count += int(totals[1])
        self._updates += 1
        if self._updates % self.config.adjust_every:
            return None
        r_d = self._sign_sum / max(self._sign_count, 1)
        self._sign_sum, self._sign_count = 0.0, 0
        c = self.config
        direction = (r_d > c.target) - (r_d < c.target)
        self.level = min(max(self.level + direction * c.adjust_step, c.steps_min), c.steps_max)
        return self.steps

    @property
    def r_d(self) -> Optional[float]:
        """The running ``r_d`` since the last adjustment (``None`` before any logits)."""
        return self._sign_sum / self._sign_count if self._sign_count else None

    def state_dict(self) -> Dict[str, Any]:
        return {"level": self.level, "sign_sum": self._sign_sum, "sign_count": self._sign_count,
                "updates": self._updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"level", "sign_sum", "sign_count", "updates"} - set(state)
        if missing:
            raise ValueError(f"discriminator_noise state is missing {sorted(missing)}")
        c = self.config
        self.level = min(max(float(state["level"]), c.steps_min), c.steps_max)
        self._sign_sum, self._sign_count = float(state["sign_sum"]), int(state["sign_count"])
        self._updates = int(state["updates"])
