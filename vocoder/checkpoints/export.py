"""Exporters: write a model back in the official layouts (BigVGAN, HiFi-GAN, Vocos, ParallelWaveGAN / ESPnet),
refusing what the official code cannot compute with a ``ValueError`` saying why; and as graphs that run without
this package (TorchScript, ONNX)."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torchaudio
import yaml

from ..audio.mel import MelConfig
from ..kernels.dispatch import use_kernels
from ..nn.weight_normalization import fold_weight_norm, weight_key_kind
from ..utils import atomic_torch_save, atomic_write_bytes
from .official import BIGVGAN_WEIGHTS, CONFIG_JSON, hifigan_mel_problems
from .pwg import PWG_CONFIG, pwg_config, pwg_layer_names
from .state import PathLike, registry_name, unwrap_generator
from .vocos import VOCOS_CONFIG, VOCOS_WEIGHTS, vocos_hparams

__all__ = ["export_bigvgan", "export_hifigan", "export_vocos", "export_parallel_wavegan", "export_torchscript",
           "export_onnx", "GraphGenerator"]


def _official_json(generator: nn.Module, mel: MelConfig, extra: Mapping[str, Any]) -> dict:
    cfg = dataclasses.asdict(generator.config)
    out = {}
    for key, value in cfg.items():
        if key in ("n_mels", "in_channels"):
            key = "num_mels"
        out[key] = list(map(lambda x: list(x) if isinstance(x, tuple) else x, value)) if isinstance(value, tuple) else value
    out.update({"num_mels": mel.n_mels, "sampling_rate": mel.sample_rate, "n_fft": mel.n_fft, "hop_size": mel.hop_length,
                "win_size": mel.win_length, "fmin": mel.fmin, "fmax": mel.fmax})
    out.update(extra)
    return out


def _folded_state(generator: nn.Module) -> Dict[str, torch.Tensor]:
    g = fold_weight_norm(copy.deepcopy(generator).cpu().float())
    return {k: v.detach().clone() for k, v in g.state_dict().items()}


def _export_source(obj, mel_config: Optional[MelConfig], name: str, label: str,
                   who: str) -> Tuple[nn.Module, MelConfig]:
    """The generator (which must be registered as ``name``) and MelConfig an exporter ``who`` writes:
    ``mel_config`` if given, else the one ``obj`` (a Vocoder) carries."""
    generator, mel = unwrap_generator(obj)
    mel = mel_config or mel
    if registry_name(generator) != name:
        raise ValueError(f"{who} needs a {label} generator, got {registry_name(generator)}")
    if mel is None:
        raise ValueError(f"{who} needs the MelConfig (pass mel_config= or a Vocoder)")
    if getattr(getattr(generator, "config", None), "input_norm", None) is not None:
        raise ValueError(f"{who}: this generator normalises its input ({generator.config.input_norm}, imported from "
                         f"ParallelWaveGAN), which the official format cannot express; save it in our format")
    return generator, mel


def _check_official_layers(generator: nn.Module, who: str) -> None:
    """Official codes have no twin deconvolution (FA-GAN's, ``upsample: twin``): such a model stays in our format."""
    upsample = getattr(getattr(generator, "config", None), "upsample", "transposed")
    if upsample != "transposed":
        raise ValueError(f"{who}: this generator upsamples with `upsample: {upsample}`, which the official code "
                         f"does not have; save it in our format")


def _check_hifigan_mel(mel: MelConfig, who: str) -> None:
    problems = hifigan_mel_problems(mel)
    if problems:
        raise ValueError(f"{who}: the official code computes HiFi-GAN's mel, this model takes another: "
                         f"{', '.join(problems)}; save it in our format")


def export_bigvgan(obj, folder: PathLike, mel_config: Optional[MelConfig] = None) -> Path:
    """Write ``config.json`` + ``bigvgan_generator.pt`` (folded weights, as the published v2 files) to ``folder``.

    ``obj`` is a :class:`~vocoder.inference.Vocoder` or a BigVGAN generator (then ``mel_config`` is needed).
    The result loads with the official ``BigVGAN.from_pretrained(folder)``.
    """
    generator, mel = _export_source(obj, mel_config, "bigvgan", "BigVGAN", "export_bigvgan")
    _check_hifigan_mel(mel, "export_bigvgan")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h = _official_json(generator, mel, {"use_cuda_kernel": False})
    atomic_write_bytes(json.dumps(h, indent=4).encode(), folder / CONFIG_JSON)
    atomic_torch_save({"generator": _folded_state(generator)}, folder / BIGVGAN_WEIGHTS)
    return folder


def export_hifigan(obj, folder: PathLike, mel_config: Optional[MelConfig] = None, name: str = "g_00000000") -> Path:
    """Write a jik876/hifi-gan style ``config.json`` + generator file ``name`` (``{"generator": state_dict}``).

    The weights are written with ``weight_g``/``weight_v`` (HiFi-GAN's ``Generator`` is built with weight norm and
    its ``load_state_dict`` expects those keys); returns the generator file's path.
    """
    generator, mel = _export_source(obj, mel_config, "hifigan", "HiFi-GAN", "export_hifigan")
    _check_hifigan_mel(mel, "export_hifigan")
    _check_official_layers(generator, "export_hifigan")
    folded = _folded_state(generator)
    state = {}
    for k, v in folded.items():
        lk, kind = weight_key_kind(k)
        if kind == "w" and v.dim() >= 2:  # conv weights get weight norm; HiFi-GAN has no other weights
            g = torch.norm_except_dim(v, 2, 0)
            state[lk[: -len("weight")] + "weight_g"] = g
            state[lk[: -len("weight")] + "weight_v"] = v
        else:
            state[k] = v
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h = _official_json(generator, mel, {})
    atomic_write_bytes(json.dumps(h, indent=4).encode(), folder / CONFIG_JSON)
    atomic_torch_save({"generator": state}, folder / name)
    return folder / name


def export_vocos(obj, folder: PathLike, mel_config: Optional[MelConfig] = None) -> Path:
    """Write ``config.yaml`` + ``pytorch_model.bin`` in the layout of the published Vocos models to ``folder``.

    ``obj`` is a :class:`~vocoder.inference.Vocoder` or a ``vocos`` generator (then ``mel_config`` is needed). The
    result loads with ``vocos.Vocos.from_hparams(folder / "config.yaml")`` + a strict ``load_state_dict`` of
    ``pytorch_model.bin``: the file also holds the buffers of its feature extractor (Hann window, mel filters), built
    by the torchaudio ``MelSpectrogram`` that ``MelSpectrogramFeatures`` wraps. Models the official code cannot
    represent are a ValueError (see :func:`vocos_hparams`). Returns ``folder``.
    """
    generator, mel = _export_source(obj, mel_config, "vocos", "Vocos", "export_vocos")
    h = vocos_hparams(generator, mel)
    fe = h["feature_extractor"]["init_args"]
    # what MelSpectrogramFeatures.__init__ builds, so the keys and values are the ones from_hparams makes
    mel_spec = torchaudio.transforms.MelSpectrogram(sample_rate=fe["sample_rate"], n_fft=fe["n_fft"],
                                                    hop_length=fe["hop_length"], n_mels=fe["n_mels"],
                                                    center=fe["padding"] == "center", power=1)
    state = {f"feature_extractor.mel_spec.{k}": v.detach().clone() for k, v in mel_spec.state_dict().items()}
    state.update(_folded_state(generator))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(yaml.safe_dump(h, sort_keys=False).encode(), folder / VOCOS_CONFIG)
    atomic_torch_save(state, folder / VOCOS_WEIGHTS)
    return folder


def export_parallel_wavegan(obj, folder: PathLike, mel_config: Optional[MelConfig] = None, steps: int = 0) -> Path:
    """Write a ParallelWaveGAN (kan-bayashi) run that its ``parallel_wavegan.utils.load_model`` loads strictly, and
    ESPnet with it (``vocoder_file=`` / ``TTSTask.build_vocoder_from_file``): ``config.yml``,
    ``checkpoint-<steps>steps.pkl`` (``{"model": {"generator": state_dict}}``, weight norm as ``weight_g`` /
    ``weight_v``) and ``stats.npy`` (``format: npy``).

    ``obj`` is a :class:`~vocoder.inference.Vocoder` or a ``hifigan`` / ``melgan`` / ``parallel_wavegan``
    generator (then ``mel_config`` is needed). ParallelWaveGAN's generators take log10 mels normalised with the
    statistics (``inference(c, normalize_before=True)``, which ESPnet uses when the statistics are there): a model
    of ours, which takes the natural log, gets ``mean = 0, scale = 1 / ln 10`` (so the normalised features are our
    log-mel exactly); one imported from ParallelWaveGAN keeps its own. Returns the checkpoint's path.
    """
    generator, mel = unwrap_generator(obj)
    mel = mel_config or mel
    if mel is None:
        raise ValueError("export_parallel_wavegan needs the MelConfig (pass mel_config= or a Vocoder)")
    name = registry_name(generator)
    _check_official_layers(generator, "export_parallel_wavegan")
    problems = hifigan_mel_problems(mel)
    if problems:
        raise ValueError(f"export_parallel_wavegan: ParallelWaveGAN's config.yml describes a librosa Slaney mel, this "
                         f"model takes another: {', '.join(problems)}; save it in our format")
    h = pwg_config(name, generator.config, mel)
    folded = _folded_state(generator)
    if "input_norm.mean" in folded:
        mean, scale = folded.pop("input_norm.mean"), folded.pop("input_norm.scale")
    else:
        mean = torch.zeros(mel.n_mels)
        scale = torch.full((mel.n_mels,), 1.0 / math.log(10.0))
    state: Dict[str, torch.Tensor] = {}
    if name == "parallel_wavegan":  # the package's module names already: every conv (Conv2d too) weight-normed
        for k, v in folded.items():
            if k.endswith(".weight"):
                state[k[: -len("weight")] + "weight_g"] = torch.norm_except_dim(v, 2, 0)
                state[k[: -len("weight")] + "weight_v"] = v
            else:
                state[k] = v
    else:
        layers: Dict[str, Dict[str, torch.Tensor]] = {}  # our module prefix -> {weight, bias}, in state-dict order
        for k, v in folded.items():
            module, _, leaf = k.rpartition(".")
            layers.setdefault(module, {})[leaf] = v
        theirs = pwg_layer_names(h)
        if len(theirs) != len(layers):
            raise ValueError(f"export_parallel_wavegan: {len(layers)} weighted layers in the model, ParallelWaveGAN's "
                             f"{h['generator_type']} has {len(theirs)}")
        for their, (ours, entries) in zip(theirs, layers.items()):
            if set(entries) != {"weight", "bias"}:
                raise ValueError(f"export_parallel_wavegan: layer {ours} holds {sorted(entries)}, expected weight + "
                                 f"bias")
            w = entries["weight"]
            state[f"{their}.bias"] = entries["bias"]
            state[f"{their}.weight_g"] = torch.norm_except_dim(w, 2, 0)  # torch.nn.utils.weight_norm(dim=0) halves
            state[f"{their}.weight_v"] = w
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(yaml.safe_dump(h, sort_keys=False).encode(), folder / PWG_CONFIG)
    stats = np.stack([mean.numpy(), scale.numpy()]).astype(np.float32)
    with open(folder / "stats.npy", "wb") as f:
        np.save(f, stats)
    path = folder / f"checkpoint-{int(steps)}steps.pkl"
    atomic_torch_save({"model": {"generator": state}, "steps": int(steps), "epochs": 0}, path)
    return path


# ------------------------------------------------------------------------------------------ graphs
class GraphGenerator(nn.Module):
    """``mel [B, n_mels, T] -> audio [B, T * hop]`` as the exported graphs compute it: a float32 CPU copy of the
    generator with weight norm folded, BigVGAN's activation in its PyTorch reference form (upsample, Snake,
    low-pass: no fused kernel, which neither TorchScript files nor ONNX runtimes have), and a family's
    ``graph_forward`` where it has one (Vocos: the inverse STFT in real arithmetic, no complex tensors or atan2)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = fold_weight_norm(copy.deepcopy(generator).cpu().float()).requires_grad_(False)
        self.eval()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        g = self.generator
        wav = g.graph_forward(mel) if hasattr(g, "graph_forward") else g(mel)
        return wav.squeeze(1)


def _graph_source(obj, mel_config: Optional[MelConfig], who: str) -> Tuple[GraphGenerator, MelConfig]:
    generator, mel = unwrap_generator(obj)
    mel = mel_config or mel
    if mel is None:
        raise ValueError(f"{who} needs the MelConfig (pass mel_config= or a Vocoder)")
    registry_name(generator)  # a registered generator, not an arbitrary module
    return GraphGenerator(generator), mel


def _graph_meta(module: GraphGenerator, mel: MelConfig) -> Dict[str, str]:
    """What a serving stack needs to know beside the graph: rate, hop, bands, the mel settings, the generator."""
    g = module.generator
    return {"sample_rate": str(mel.sample_rate), "hop_length": str(mel.hop_length), "n_mels": str(mel.n_mels),
            "mel": json.dumps(mel.to_dict()), "generator": registry_name(g),
            "generator_config": json.dumps(dataclasses.asdict(g.config)),
            "input": "mel float32 [batch, n_mels, frames] (natural-log mel, the `mel` settings)",
            "output": "audio float32 [batch, frames * hop_length]"}


def _example(module: GraphGenerator, batch: int, frames: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, module.generator.n_mels, frames, generator=gen) - 5.0


def _check_graph(run, module: GraphGenerator, who: str, tolerance: float = 1e-4) -> float:
    """Run the exported graph on a batch size and a length other than the traced ones; ``RuntimeError`` if it
    differs from the module (a shape baked into the graph). Returns the max abs diff."""
    worst = 0.0
    for batch, frames in ((1, 45), (3, 23)):
        mel = _example(module, batch, frames, seed=batch)
        with torch.no_grad():
            want = module(mel)
        got = run(mel)
        if tuple(got.shape) != tuple(want.shape):
            raise RuntimeError(f"{who}: the exported graph gives shape {tuple(got.shape)} for {tuple(mel.shape)}, "
                               f"expected {tuple(want.shape)}")
        worst = max(worst, float((got - want).abs().max()))
    if worst > tolerance:
        raise RuntimeError(f"{who}: the exported graph differs from the model by {worst:.2e} (> {tolerance})")
    return worst


def export_torchscript(obj, path: PathLike, mel_config: Optional[MelConfig] = None) -> Path:
    """Write a TorchScript file: ``torch.jit.load(path)(mel [B, n_mels, T]) -> audio [B, T * hop]`` (float32,
    CPU; ``.to("cuda")`` after loading), any batch size and length, without this package.

    Traced (the generators' Python input checks are not part of the graph) from :class:`GraphGenerator`, so the
    graph holds the reference activation; checked on other batch sizes and lengths than the traced one. The file
    carries ``vocoder.json`` (:func:`torch.jit.load` ``_extra_files``): sample rate, hop, bands, mel settings,
    generator. Returns ``path``.
    """
    module, mel = _graph_source(obj, mel_config, "export_torchscript")
    example = _example(module, 2, 32, seed=0)
    with torch.enable_grad(), use_kernels(False), warnings.catch_warnings():  # grad mode: FastConv1d keeps the
        # plain convolution; the input checks' shape tests are not part of the graph (expected TracerWarnings)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    with torch.no_grad():
        _check_graph(lambda m: traced(m), module, "export_torchscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(traced, str(tmp), _extra_files={"vocoder.json": json.dumps(_graph_meta(module, mel))})
    tmp.replace(path)
    return path


def export_onnx(obj, path: PathLike, mel_config: Optional[MelConfig] = None, opset: Optional[int] = None) -> Path:
    """Write one ONNX file (weights inside): input ``mel`` float32 ``[batch, n_mels, frames]``, output ``audio``
    float32 ``[batch, frames * hop]``, both axes dynamic; the metadata properties hold the sample rate, hop, bands,
    mel settings and generator.

    Exported with torch's ONNX exporter (``dynamo=True``, which needs the ``onnxscript`` package) from
    :class:`GraphGenerator`: folded weights, BigVGAN's reference activation (ONNX has no fused anti-aliased
    activation op: the graph holds its ConvTranspose / Sin / Conv), Vocos's inverse STFT as a ConvTranspose.
    Checked with onnxruntime, when installed, on other batch sizes and lengths than the traced one. Returns
    ``path``.
    """
    if tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) < (2, 5):
        raise ValueError(f"export_onnx needs torch >= 2.5 (torch.onnx.export(dynamo=True, dynamic_shapes=...)); "
                         f"this is torch {torch.__version__}")
    # deferred: onnx / onnxscript are optional (only this exporter needs them)
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) imports it)
    except ImportError as e:
        raise ValueError(f"export_onnx needs the onnx and onnxscript packages (pip install onnxscript): {e}") from None
    module, mel = _graph_source(obj, mel_config, "export_onnx")
    example = _example(module, 2, 32, seed=0)
    dims = ({0: torch.export.Dim("batch"), 2: torch.export.Dim("frames")},)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    kwargs = {} if opset is None else {"opset_version": opset}
    with torch.enable_grad(), use_kernels(False):
        torch.onnx.export(module, (example,), str(tmp), dynamo=True, input_names=["mel"], output_names=["audio"],
                          dynamic_shapes=dims, external_data=False, verbose=False, **kwargs)
    model = onnx.load(str(tmp))
    onnx.helper.set_model_props(model, _graph_meta(module, mel))
    onnx.save(model, str(tmp))
    try:
        import onnxruntime  # deferred: optional, only for the check
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        _check_graph(lambda m: torch.from_numpy(session.run(None, {"mel": m.numpy()})[0]), module, "export_onnx")
    tmp.replace(path)
    return path
