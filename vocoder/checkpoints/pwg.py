"""ParallelWaveGAN (kan-bayashi) runs: ``config.yml`` + ``checkpoint-<N>steps.pkl`` (``{"model": {"generator":
state_dict, ...}, ...}``) + the feature statistics ``stats.h5`` (or ``stats.npy``), for its
``ParallelWaveGANGenerator`` (the WaveNet; same module names as ours, loaded as they are), ``HiFiGANGenerator`` and
(single-band) ``MelGANGenerator``. Its generators take standardised log10 mels; the imported generator gets an
``input_norm`` layer holding the statistics, so it takes our log-mel like any other.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from ..audio.mel import MelConfig
from ..generators.hifigan import HiFiGANConfig
from ..generators.melgan import MelGANConfig
from ..generators.parallel_wavegan import ParallelWaveGANConfig
from ..generators.registry import build_generator, build_generator_for_mel
from ..nn.weight_normalization import weight_key_kind
from .state import PathLike, load_matching_form, read_yaml, strip_prefix, torch_load

__all__ = ["PWG_CONFIG", "import_parallel_wavegan", "latest_pwg_file", "pwg_config", "pwg_layer_names"]


PWG_CONFIG = "config.yml"


# Constructor defaults of ParallelWaveGAN's generators (parallel_wavegan/models/{parallel_wavegan,hifigan,melgan}.py);
# a config.yml lists only what it changes.
_PWG_DEFAULTS = {
    "ParallelWaveGANGenerator": dict(
        in_channels=1, out_channels=1, kernel_size=3, layers=30, stacks=3, residual_channels=64, gate_channels=128,
        skip_channels=64, aux_channels=80, aux_context_window=2, dropout=0.0, bias=True, use_weight_norm=True,
        use_causal_conv=False, upsample_conditional_features=True, upsample_net="ConvInUpsampleNetwork",
        upsample_params={"upsample_scales": [4, 4, 4, 4]}),
    "HiFiGANGenerator": dict(
        in_channels=80, out_channels=1, channels=512, kernel_size=7, upsample_scales=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4), resblock_kernel_sizes=(3, 7, 11),
        resblock_dilations=[(1, 3, 5), (1, 3, 5), (1, 3, 5)], use_additional_convs=True, bias=True,
        nonlinear_activation="LeakyReLU", nonlinear_activation_params={"negative_slope": 0.1},
        use_causal_conv=False, use_weight_norm=True, global_channels=-1),  # global_channels: newer releases
    "MelGANGenerator": dict(
        in_channels=80, out_channels=1, kernel_size=7, channels=512, bias=True, upsample_scales=[8, 8, 2, 2],
        stack_kernel_size=3, stacks=3, nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.2}, pad="ReflectionPad1d", pad_params={},
        use_final_nonlinear_activation=True, use_weight_norm=True, use_causal_conv=False),
}

# Settings our generators have fixed (what the official HiFi-GAN / MelGAN use): anything else cannot be imported.
_PWG_FIXED = {
    "ParallelWaveGANGenerator": dict(in_channels=1, out_channels=1, bias=True, use_causal_conv=False,
                                     upsample_conditional_features=True, upsample_net="ConvInUpsampleNetwork"),
    "HiFiGANGenerator": dict(out_channels=1, kernel_size=7, bias=True, nonlinear_activation="LeakyReLU",
                             nonlinear_activation_params={"negative_slope": 0.1}, use_causal_conv=False,
                             global_channels=-1),
    "MelGANGenerator": dict(out_channels=1, kernel_size=7, bias=True, stack_kernel_size=3,
                            nonlinear_activation="LeakyReLU", nonlinear_activation_params={"negative_slope": 0.2},
                            pad="ReflectionPad1d", pad_params={}, use_final_nonlinear_activation=True,
                            use_causal_conv=False),
}


# What our ParallelWaveGAN generator's upsampling network computes (ConvInUpsampleNetwork's defaults besides the
# scales): no nonlinearity, nearest interpolation, a one-bin frequency kernel.
_PWG_UPSAMPLE_FIXED = dict(nonlinear_activation=None, nonlinear_activation_params={}, interpolate_mode="nearest",
                           freq_axis_kernel_size=1)


def latest_pwg_file(folder: Path) -> Optional[Path]:
    """ParallelWaveGAN's newest ``checkpoint-<N>steps.pkl`` in ``folder`` (by N), if its config.yml is there."""
    if not (folder / PWG_CONFIG).is_file():
        return None
    found = []
    for p in folder.glob("checkpoint-*steps.pkl"):
        m = re.fullmatch(r"checkpoint-(\d+)steps\.pkl", p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def _pwg_generator_config(h: Mapping[str, Any], where: str):
    """(registry name, our config) for a ParallelWaveGAN ``config.yml``; ValueError naming what cannot be mapped."""
    kind = h.get("generator_type", "ParallelWaveGANGenerator")
    if kind not in _PWG_DEFAULTS:
        raise ValueError(f"{where}: generator_type {kind} is not supported (importable: {sorted(_PWG_DEFAULTS)})")
    params = {**_PWG_DEFAULTS[kind], **dict(h.get("generator_params") or {})}
    unknown = sorted(set(params) - set(_PWG_DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"{where}: {kind} parameters {unknown} are not supported")
    off = {k: params[k] for k, v in _PWG_FIXED[kind].items() if params[k] != v}
    if off:
        extra = " (out_channels > 1 is multi-band MelGAN, which needs PQMF synthesis)" if "out_channels" in off else ""
        raise ValueError(f"{where}: {kind} with {off} cannot be imported; supported: {_PWG_FIXED[kind]}{extra}")
    if kind == "ParallelWaveGANGenerator":
        return "parallel_wavegan", _pwg_wavenet_config(params, where)
    n_mels = int(params["in_channels"])
    if kind == "HiFiGANGenerator":
        rates, kernels = tuple(params["upsample_scales"]), tuple(params["upsample_kernel_sizes"])
        # Its transposed convs pad u//2 + u%2 (output_padding u%2); ours pad (k-u)//2: the same layer when k = 2u
        # with u even (and ParallelWaveGAN needs k = 2u for its output length anyway).
        bad = [(u, k) for u, k in zip(rates, kernels) if u % 2 or k != 2 * u]
        if bad:
            raise ValueError(f"{where}: upsampling (scale, kernel) {bad} differ from the kernel = 2 x scale (even "
                             f"scale) layers our HiFi-GAN builds")
        dil = params["resblock_dilations"]
        cfg = HiFiGANConfig(n_mels=n_mels, upsample_rates=rates, upsample_kernel_sizes=kernels,
                            upsample_initial_channel=int(params["channels"]),
                            resblock="1" if params["use_additional_convs"] else "2",
                            resblock_kernel_sizes=tuple(params["resblock_kernel_sizes"]),
                            resblock_dilation_sizes=tuple(tuple(d) for d in dil), input_norm="log10_standardize")
        return "hifigan", cfg
    ratios = tuple(int(r) for r in params["upsample_scales"])
    channels = int(params["channels"])
    if channels % 2 ** len(ratios):
        raise ValueError(f"{where}: MelGAN channels {channels} must be divisible by 2**{len(ratios)}")
    cfg = MelGANConfig(n_mels=n_mels, ngf=channels // 2 ** len(ratios), ratios=ratios,
                       n_residual_layers=int(params["stacks"]), input_norm="log10_standardize")
    return "melgan", cfg


def _pwg_wavenet_config(params: Mapping[str, Any], where: str) -> ParallelWaveGANConfig:
    """Our config for a ``ParallelWaveGANGenerator``'s full parameters (``dropout`` only acts in training and is
    not kept; ``use_weight_norm`` either way: the weights load in both forms)."""
    up = dict(params.get("upsample_params") or {})
    unknown = sorted(set(up) - set(_PWG_UPSAMPLE_FIXED) - {"upsample_scales", "use_causal_conv", "aux_channels",
                                                            "aux_context_window"})
    if unknown or "upsample_scales" not in up:
        raise ValueError(f"{where}: ParallelWaveGANGenerator upsample_params {sorted(up)} are not supported "
                         f"(expected upsample_scales and some of {sorted(_PWG_UPSAMPLE_FIXED)})")
    off = {k: up[k] for k, v in _PWG_UPSAMPLE_FIXED.items() if k in up and up[k] != v}
    if off:
        raise ValueError(f"{where}: ParallelWaveGANGenerator upsample_params {off} cannot be imported; supported: "
                         f"{_PWG_UPSAMPLE_FIXED}")
    try:
        return ParallelWaveGANConfig(
            n_mels=int(params["aux_channels"]), layers=int(params["layers"]), stacks=int(params["stacks"]),
            residual_channels=int(params["residual_channels"]), gate_channels=int(params["gate_channels"]),
            skip_channels=int(params["skip_channels"]), kernel_size=int(params["kernel_size"]),
            aux_context_window=int(params["aux_context_window"]),
            upsample_scales=tuple(int(u) for u in up["upsample_scales"]), input_norm="log10_standardize")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: ParallelWaveGANGenerator parameters do not make a generator: {e}") from None


def pwg_config(name: str, cfg, mel: MelConfig) -> Dict[str, Any]:
    """The ``config.yml`` of ParallelWaveGAN that builds our generator ``name`` (``"hifigan"`` / ``"melgan"``) with
    config ``cfg``: ``generator_type``, full ``generator_params``, the feature settings and ``format: npy`` (its
    ``load_model`` then reads ``stats.npy`` beside the checkpoint). The inverse of :func:`_pwg_generator_config`;
    ``ValueError`` for what ParallelWaveGAN's generators cannot build."""
    if name == "hifigan":
        bad = [(u, k) for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes) if u % 2 or k != 2 * u]
        if bad:
            raise ValueError(f"ParallelWaveGAN's HiFiGANGenerator pads its upsamplers for kernel = 2 x scale with an "
                             f"even scale; this model has (scale, kernel) {bad}")
        kind = "HiFiGANGenerator"
        params = dict(_PWG_DEFAULTS[kind], in_channels=cfg.n_mels, channels=cfg.upsample_initial_channel,
                      upsample_scales=list(cfg.upsample_rates), upsample_kernel_sizes=list(cfg.upsample_kernel_sizes),
                      resblock_kernel_sizes=list(cfg.resblock_kernel_sizes),
                      resblock_dilations=[list(d) for d in cfg.resblock_dilation_sizes],
                      use_additional_convs=cfg.resblock == "1")
    elif name == "melgan":
        kind = "MelGANGenerator"
        params = dict(_PWG_DEFAULTS[kind], in_channels=cfg.n_mels, channels=cfg.ngf * 2 ** len(cfg.ratios),
                      upsample_scales=list(cfg.ratios), stacks=cfg.n_residual_layers)
    elif name == "parallel_wavegan":
        kind = "ParallelWaveGANGenerator"
        params = dict(_PWG_DEFAULTS[kind], aux_channels=cfg.n_mels, layers=cfg.layers, stacks=cfg.stacks,
                      residual_channels=cfg.residual_channels, gate_channels=cfg.gate_channels,
                      skip_channels=cfg.skip_channels, kernel_size=cfg.kernel_size,
                      aux_context_window=cfg.aux_context_window,
                      upsample_params={"upsample_scales": list(cfg.upsample_scales)})
    else:
        raise ValueError(f"ParallelWaveGAN has no generator for our {name} family (exportable: hifigan, melgan, "
                         f"parallel_wavegan)")
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
    if "nonlinear_activation_params" in params:
        params["nonlinear_activation_params"] = dict(params["nonlinear_activation_params"])
    if kind == "HiFiGANGenerator":
        params.pop("global_channels")  # newer releases only: 0.6.1 refuses the keyword
    return {"sampling_rate": mel.sample_rate, "fft_size": mel.n_fft, "hop_size": mel.hop_length,
            "win_length": mel.win_length, "window": "hann", "num_mels": mel.n_mels, "fmin": float(mel.fmin),
            "fmax": float(mel.fmax if mel.fmax is not None else mel.sample_rate / 2), "global_gain_scale": 1.0,
            "format": "npy", "generator_type": kind, "generator_params": params}


def pwg_layer_names(h: Mapping[str, Any]) -> list:
    """ParallelWaveGAN's module names of the weighted layers of the generator a ``config.yml`` builds, in
    state-dict order (the order of our generator's layers: the importer maps by position)."""
    kind = h["generator_type"]
    p = {**_PWG_DEFAULTS[kind], **dict(h["generator_params"])}
    if kind == "HiFiGANGenerator":
        names = ["input_conv"] + [f"upsamples.{i}.1" for i in range(len(p["upsample_scales"]))]
        convs = ("convs1", "convs2") if p["use_additional_convs"] else ("convs1",)
        for b in range(len(p["upsample_scales"]) * len(p["resblock_kernel_sizes"])):
            dil = p["resblock_dilations"][b % len(p["resblock_kernel_sizes"])]
            names += [f"blocks.{b}.{c}.{j}.1" for c in convs for j in range(len(dil))]
        return names + ["output_conv.1"]
    if kind == "MelGANGenerator":  # one nn.Sequential: pad, conv, then per scale LeakyReLU, conv-T, stacks, ...
        names, i = ["melgan.1"], 2
        for _ in p["upsample_scales"]:
            names.append(f"melgan.{i + 1}")
            for s in range(p["stacks"]):
                names += [f"melgan.{i + 2 + s}.stack.2", f"melgan.{i + 2 + s}.stack.4", f"melgan.{i + 2 + s}.skip_layer"]
            i += 2 + p["stacks"]
        return names + [f"melgan.{i + 2}"]
    raise ValueError(f"generator_type {kind} is not supported (exportable: HiFiGANGenerator, MelGANGenerator)")


def _pwg_mel_config(h: Mapping[str, Any], where: str) -> MelConfig:
    if h.get("window", "hann") != "hann":
        raise ValueError(f"{where}: window {h.get('window')!r} is not supported (our front end uses hann)")
    if float(h.get("global_gain_scale", 1.0)) != 1.0:
        raise ValueError(f"{where}: global_gain_scale {h['global_gain_scale']} is not supported (the model was "
                         f"trained on rescaled audio)")
    sr = int(h["sampling_rate"])
    n_fft = int(h["fft_size"])
    return MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=int(h["hop_size"]),
                     win_length=int(h.get("win_length") or n_fft), n_mels=int(h["num_mels"]),
                     fmin=float(h.get("fmin") or 0.0), fmax=float(h.get("fmax") or sr / 2))


def _pwg_stats(folder: Path, stats: Optional[PathLike], n_mels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale) from ParallelWaveGAN's ``stats.h5`` (datasets ``mean``, ``scale``) or ``stats.npy`` ([2, n])."""
    if stats is None:
        found = [folder / n for n in ("stats.h5", "stats.npy") if (folder / n).is_file()]
        if not found:
            raise ValueError(f"no stats.h5 or stats.npy in {folder}: ParallelWaveGAN models need the feature "
                             f"statistics they were trained with (pass stats=...)")
        stats = found[0]
    stats = Path(stats)
    try:
        if stats.suffix == ".npy":
            arr = np.load(stats)
            mean, scale = arr[0], arr[1]
        else:
            try:
                import h5py
            except ImportError:
                raise ValueError(f"reading {stats} needs h5py (pip install h5py)") from None
            with h5py.File(stats, "r") as f:
                mean, scale = f["mean"][()], f["scale"][()]
    except ValueError:
        raise
    except Exception as e:  # missing datasets, a corrupt file
        raise ValueError(f"cannot read feature statistics from {stats}: {type(e).__name__}: {e}") from None
    mean = torch.as_tensor(np.asarray(mean, dtype=np.float32).reshape(-1))
    scale = torch.as_tensor(np.asarray(scale, dtype=np.float32).reshape(-1))
    if mean.numel() != n_mels or scale.numel() != n_mels:
        raise ValueError(f"{stats}: statistics for {mean.numel()} / {scale.numel()} bands, the model takes {n_mels}")
    if not bool(torch.isfinite(mean).all() and torch.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(f"{stats}: mean/scale must be finite with scale > 0")
    return mean, scale


def _rename_by_position(theirs: Mapping[str, torch.Tensor], ours: Mapping[str, torch.Tensor],
                        where: str) -> Dict[str, torch.Tensor]:
    """Give ``theirs`` our key names, layer by layer in order (the architectures are the same; the names are not):
    weight-norm halves, plain weights and biases keep their kind. ValueError if the layers do not line up."""
    def layers(sd):  # module prefix -> {key: tensor}, in state-dict order
        out: Dict[str, Dict[str, torch.Tensor]] = {}
        for k, v in sd.items():
            lk = weight_key_kind(k)[0]
            out.setdefault(lk.rsplit(".", 1)[0] if "." in lk else "", {})[k] = v
        return out

    t_layers, o_layers = layers(theirs), layers(ours)
    if len(t_layers) != len(o_layers):
        raise ValueError(f"{where}: the checkpoint has {len(t_layers)} layers, the configured generator "
                         f"{len(o_layers)}: config.yml does not describe this checkpoint")
    mapped = {}
    for (t_mod, t_entries), o_mod in zip(t_layers.items(), o_layers):
        for key, value in t_entries.items():
            suffix = key[len(t_mod) + 1:] if t_mod else key
            mapped[f"{o_mod}.{suffix}" if o_mod else suffix] = value
    return mapped


def import_parallel_wavegan(path: PathLike, config: Union[PathLike, Mapping, None] = None, map_location="cpu",
                            stats: Optional[PathLike] = None) -> Tuple[nn.Module, MelConfig, dict]:
    """Read a ParallelWaveGAN (kan-bayashi) ``ParallelWaveGANGenerator`` / ``HiFiGANGenerator`` /
    ``MelGANGenerator`` checkpoint.

    Args:
        path: its training folder (``config.yml``, ``checkpoint-<N>steps.pkl``: the newest is used, ``stats.h5``)
            or one ``.pkl`` file with ``config.yml`` next to it.
        config: ``config.yml`` path or dict, if not next to the checkpoint.
        stats: ``stats.h5`` / ``stats.npy``, if not next to the checkpoint.
    Returns:
        ``(generator, mel_config, meta)`` like :func:`load_checkpoint`. The generator takes our log-mel: its
        ``input_norm`` computes ParallelWaveGAN's features from it (``log10``, minus ``mean``, over ``scale``).
        ParallelWaveGAN frames its STFT centred (frame ``i`` at sample ``i * hop``), ours half a hop later, so
        copy-synthesis through :meth:`vocoder.Vocoder.mel` shifts by half a hop; mels from a TTS model are used as
        they are.
    """
    path = Path(path)
    weights = latest_pwg_file(path) if path.is_dir() else path
    if weights is None:
        raise ValueError(f"no checkpoint-<N>steps.pkl (with {PWG_CONFIG}) in {path}")
    if isinstance(config, Mapping):
        h = dict(config)
    else:
        cfg_path = Path(config) if config is not None else weights.parent / PWG_CONFIG
        h = read_yaml(cfg_path)
    where = str(weights)
    name, our_cfg = _pwg_generator_config(h, where)
    mel = _pwg_mel_config(h, where)
    ckpt = torch_load(weights, map_location)
    model = ckpt.get("model") if isinstance(ckpt, Mapping) else None
    if not isinstance(model, Mapping) or not isinstance(model.get("generator"), Mapping):
        got = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ValueError(f"{weights}: expected ParallelWaveGAN's {{'model': {{'generator': state_dict}}}}, got {got}")
    generator = build_generator_for_mel(name, our_cfg, mel, where)
    if name == "parallel_wavegan":  # the package's own module names: loaded as they are
        state = {k: v for k, v in strip_prefix(model["generator"]).items() if k not in ("mean", "scale")}
    else:
        ours = {k: v for k, v in generator.state_dict().items() if not k.startswith("input_norm.")}
        state = _rename_by_position(strip_prefix(model["generator"]), ours, where)
    mean, scale = _pwg_stats(weights.parent, stats, our_cfg.n_mels)
    state.update({"input_norm.mean": mean, "input_norm.scale": scale})
    load_matching_form(generator, state, where)
    meta = {"source": "parallel_wavegan", "path": str(weights), "generator_type": h.get("generator_type"),
            "steps": int(ckpt.get("steps", 0) or 0)}
    return generator.eval(), mel, meta
