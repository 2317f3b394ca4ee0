"""Evaluate a vocoder on a set of clips: copy-synthesis, metrics, the Griffin-Lim floor, a table, JSON, a PNG.

For each clip: load at the model's rate -> ``mel = voc.mel(wav)`` -> ``voc(mel)`` -> metrics against the clip;
the same mel through Griffin-Lim gives the floor. With ``mos=True`` (the default) every output is also scored
by the non-intrusive MOS predictors of :mod:`.mos` (DistillMOS, DNSMOS P.835), and so is the original clip
itself: the "reference" entry, the ceiling those predictors give this data (the intrusive metrics are trivially
perfect on it, so the reference has the MOS metrics only). Clips are taken in sorted path order and nothing is
random (Griffin-Lim's initial phase has a fixed seed), so two runs give the same report.

Report layout (a JSON-ready dict; undefined metrics are ``None``)::

    {"format": "vocoder-eval", "version": 1, "model": str, "sample_rate": int, "mel": MelConfig dict,
     "systems": ["vocoder", "griffin_lim"], "metrics": [...], "n_clips": int,
     "clips": [{"file": str, "duration_s": float, "metrics": {system: {metric: float | None}}}, ...],
     "skipped": [{"file": str, "reason": str}, ...],   # unreadable, too short, or NaN audio out
     "mean": {system: {metric: float | None}}, "std": {system: {metric: float | None}},
     "worst_clip": {"file": str, "pesq": float | None} | None}

With ``mos=True``, "metrics" goes on with the MOS metrics (``distillmos``, ``dnsmos_ovrl``, ``dnsmos_sig``,
``dnsmos_bak``), which every system has, and the report adds ``"reference_metrics": [those names]``, a
``"reference"`` entry in each clip's "metrics" and in "mean" / "std" holding just those, scored on the original
clip. With ``mos=False`` the report is exactly the layout above. The table prints ``distillmos`` and
``dnsmos_ovrl`` of the MOS metrics (sig / bak are in the JSON only) and a "reference" row.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

from ..audio.io import AUDIO_EXTENSIONS, load_audio
from ..audio.mel import MelConfig, mel_spectrogram
from ..utils import atomic_write_bytes
from .griffin_lim import griffin_lim
from .signal_floors import PINV_FLOORS, pinv_floor, supports_pinv_floor
from . import mos as _mos
from .metrics import HIGHER_IS_BETTER, METRICS, align, evaluate_pair

__all__ = ["list_clips", "evaluate", "summarize", "format_table", "write_json", "plot_spectrograms"]

log = logging.getLogger(__name__)

VOCODER, GRIFFIN_LIM, REFERENCE = "vocoder", "griffin_lim", "reference"
_LABELS = {VOCODER: "vocoder", GRIFFIN_LIM: "Griffin-Lim",  # panel titles of the PNG
           **{name: f"pinv + {method.upper()}" for name, method in PINV_FLOORS.items()}}
_HIGHER = {**HIGHER_IS_BETTER, **_mos.HIGHER_IS_BETTER}
_JSON_ONLY = ("dnsmos_sig", "dnsmos_bak")  # in the JSON, left out of the printed table


def list_clips(data: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]]) -> List[Path]:
    """Audio files of a folder (recursive, sorted), one file, or a list of files (kept in order)."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {path}")
            return files
        if path.is_file():
            return [path]
        raise ValueError(f"expected an audio folder, an audio file or a list of files, got missing path {path}")
    files = [Path(p) for p in data]
    if not files:
        raise ValueError("expected at least one audio file, got an empty list")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ValueError(f"audio files not found: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return files


def _clean(x: float) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else float(x)


def summarize(clips: Sequence[Dict[str, Any]], systems: Sequence[str],
              metrics: Sequence[str] = METRICS) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Per system and metric, mean and (population) std over the clips where the metric is defined."""
    mean: Dict[str, Dict[str, Any]] = {}
    std: Dict[str, Dict[str, Any]] = {}
    for s in systems:
        mean[s], std[s] = {}, {}
        for m in metrics:
            vals = np.array([c["metrics"][s][m] for c in clips if c["metrics"][s][m] is not None], dtype=np.float64)
            mean[s][m] = float(vals.mean()) if vals.size else None
            std[s][m] = float(vals.std()) if vals.size else None
    return {"mean": mean, "std": std}


def _model_name(vocoder) -> str:
    name = type(vocoder).__name__
    for attr in ("name", "model_name", "generator_name"):
        v = getattr(vocoder, attr, None)
        if isinstance(v, str) and v:
            name = v
            break
    method = getattr(vocoder, "phase", "model")
    if isinstance(method, str) and method != "model":
        name = f"{name} with {method.upper()} phase"
    iterations = getattr(vocoder, "phase_iterations", 0)
    if iterations:
        name = f"{name} + {iterations} phase iterations"
    dtype = getattr(vocoder, "dtype", None)
    if isinstance(dtype, torch.dtype) and dtype != torch.float32:
        name = f"{name} in {str(dtype).replace('torch.', '')}"
    return name


def _synthesize(vocoder, mel: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        wav = vocoder(mel)
    if not torch.is_tensor(wav):
        wav = torch.as_tensor(np.asarray(wav))
    return wav.detach().to("cpu", torch.float32).reshape(-1)


def evaluate(vocoder, data, max_clips: Optional[int] = None, griffin_lim_floor: bool = True,
             png_path: Union[str, os.PathLike, None] = None, gl_iters: int = 32,
             crepe_model: str = "tiny", mos: bool = True, fail_fast: bool = False,
             pinv_floors: bool = False,
             audio_sink: Optional[Callable[[Path, Dict[str, torch.Tensor]], None]] = None) -> Dict[str, Any]:
    """Copy-synthesis evaluation of ``vocoder`` on ``data``.

    Args:
        vocoder: callable like :class:`vocoder.Vocoder`: ``voc(mel [n_mels, T]) -> wav [T*hop]``, with
            ``sample_rate``, ``mel_config`` and ``mel(wav [T]) -> [n_mels, T//hop]``.
        data: a folder (searched recursively), an audio file, or a list of audio files.
        max_clips: evaluate only the first N clips (sorted order).
        griffin_lim_floor: also score Griffin-Lim on the same mels.
        pinv_floors: also score the no-network floors on the same mels (:mod:`.signal_floors`: the mel's
            pseudo-inverse amplitude with an RTPGHI / PGHI phase), systems ``"pinv_rtpghi"`` and ``"pinv_pghi"``
            (left out for front ends they cannot invert, with a warning).
        png_path: where to draw original / vocoder / Griffin-Lim mels of the worst clip (lowest vocoder PESQ).
        mos: also score every output and the original clip (the "reference") with DistillMOS and DNSMOS.
        fail_fast: raise at the first clip that fails instead of listing it under "skipped" (a clip fails when
            it is unreadable, too short, or the model makes NaN / inf audio of it).
        audio_sink: called once per evaluated clip (not for skipped ones), in report order, with the clip's path and
            its audio, ``{"reference": the clip at the model's rate, system: output}`` (CPU float32 ``[T]``), e.g. a
            :class:`.html_report.ClipAudio` for the listening page; the report is the same with or without it.
    Returns:
        the report dict described in the module docstring.
    """
    for attr in ("sample_rate", "mel_config", "mel"):
        if not hasattr(vocoder, attr):
            raise ValueError(f"expected a Vocoder-like object with .{attr}, got {type(vocoder).__name__}")
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be >= 1 or None, got {max_clips}")
    files = list_clips(data)
    if mos:
        _mos.require()  # fail before any work when the predictors are not installed
    if max_clips is not None:
        files = files[:max_clips]
    sr = int(vocoder.sample_rate)
    mel_config: MelConfig = vocoder.mel_config
    if pinv_floors and not supports_pinv_floor(mel_config):
        log.warning("no pinv floors: the front end's window (%d) is not n_fft (%d)", mel_config.win_length,
                    mel_config.n_fft)
        pinv_floors = False
    floors = dict(PINV_FLOORS) if pinv_floors else {}
    systems = [VOCODER] + ([GRIFFIN_LIM] if griffin_lim_floor else []) + list(floors)

    clips: List[Dict[str, Any]] = []
    worst = None  # (key, file, {name: wav}) of the lowest-PESQ clip so far
    skipped: List[Dict[str, str]] = []
    for i, path in enumerate(files):
        try:
            ref = load_audio(path, sr)
            with torch.inference_mode():
                mel = vocoder.mel(ref)
            if mel.dim() == 3 and mel.shape[0] == 1:
                mel = mel[0]
            outputs = {VOCODER: _synthesize(vocoder, mel)}
        except ValueError as e:  # unreadable, too short for one STFT frame, NaN audio: note it, go on
            if fail_fast:
                raise ValueError(f"{path}: {e}") from e
            log.warning("skipping %s: %s", path, e)
            skipped.append({"file": str(path), "reason": str(e)})
            continue
        if griffin_lim_floor:
            outputs[GRIFFIN_LIM] = griffin_lim(mel.detach().cpu(), mel_config, n_iter=gl_iters)
        for name, method in floors.items():
            outputs[name] = pinv_floor(mel.detach().cpu(), mel_config, method)
        metrics, cache = {}, {}  # cache: the reference's CREPE pass, shared by the systems
        for name, wav in outputs.items():
            r, h = align(ref, wav)
            scores = evaluate_pair(r, h, sr, mel_config, crepe_model, cache=cache)
            if mos:
                scores.update(_mos.mos_scores(wav, sr))  # the output as it is, like a listener would hear it
            metrics[name] = {k: _clean(v) for k, v in scores.items()}
        if mos:
            metrics[REFERENCE] = {k: _clean(v) for k, v in _mos.mos_scores(ref, sr).items()}
        clips.append({"file": str(path), "duration_s": round(ref.numel() / sr, 4), "metrics": metrics})
        if audio_sink is not None:
            audio_sink(path, {REFERENCE: ref, **outputs})
        log.info("[%d/%d] %s: %s", i + 1, len(files), path.name,
                 ", ".join(f"{s} pesq={metrics[s]['pesq']}" for s in systems)
                 + (f", distillmos reference={metrics[REFERENCE]['distillmos']} "
                    f"vocoder={metrics[VOCODER]['distillmos']}" if mos else ""))
        pesq = metrics[VOCODER]["pesq"]
        key = math.inf if pesq is None else pesq
        if worst is None or key < worst[0]:
            worst = (key, path, {"original": ref, **{_LABELS[s]: w for s, w in outputs.items()}})

    if not clips:
        raise ValueError(f"none of the {len(files)} clip(s) could be evaluated: {skipped[:3]}")
    metric_names = list(METRICS) + (list(_mos.MOS_METRICS) if mos else [])
    report: Dict[str, Any] = {
        "format": "vocoder-eval", "version": 1, "model": _model_name(vocoder), "sample_rate": sr,
        "mel": mel_config.to_dict(), "systems": systems, "metrics": metric_names, "n_clips": len(clips),
        "clips": clips, "skipped": skipped,
    }
    report.update(summarize(clips, systems, metric_names))
    if mos:
        report["reference_metrics"] = list(_mos.MOS_METRICS)
        ref_summary = summarize(clips, [REFERENCE], _mos.MOS_METRICS)
        for k in ("mean", "std"):
            report[k][REFERENCE] = ref_summary[k][REFERENCE]
    report["worst_clip"] = None if worst is None else {
        "file": str(worst[1]), "pesq": None if math.isinf(worst[0]) else worst[0]}
    if png_path is not None and worst is not None:
        plot_spectrograms(worst[2], mel_config, png_path, title=f"worst clip (vocoder PESQ): {worst[1].name}")
    return report


def format_table(report: Dict[str, Any]) -> str:
    """A fixed-width table: one row per system, mean ± std per metric, arrows for the better direction.

    With MOS metrics, a last "reference" row has them for the original clips ("-" under the other metrics);
    ``dnsmos_sig`` / ``dnsmos_bak`` are left to the JSON.
    """
    systems = list(report["systems"])
    ref_metrics = report.get("reference_metrics") or []
    if ref_metrics:
        systems.append(REFERENCE)
    columns = [m for m in report["metrics"] if m not in _JSON_ONLY]
    head = ["system"] + [f"{m} {'↑' if _HIGHER[m] else '↓'}" for m in columns]
    rows = []
    for s in systems:
        row = [s]
        for m in columns:
            if m not in report["mean"][s]:
                row.append("-")
                continue
            mu, sd = report["mean"][s][m], report["std"][s][m]
            row.append("n/a" if mu is None else f"{mu:.3f}±{sd:.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines = [f"{report['model']} @ {report['sample_rate']} Hz, {report['n_clips']} clip(s)", fmt(head),
             "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    if ref_metrics:
        lines.append("reference: the original clips scored by the MOS predictors (their ceiling on this data)")
    if report.get("skipped"):
        lines.append(f"skipped {len(report['skipped'])} clip(s) that could not be read, analysed or decoded")
    if report.get("worst_clip"):
        lines.append(f"worst clip by vocoder PESQ: {report['worst_clip']['file']} ({report['worst_clip']['pesq']})")
    return "\n".join(lines)


def write_json(report: Dict[str, Any], path: Union[str, os.PathLike]) -> None:
    """Write the report as indented JSON (atomically; NaN is not allowed: undefined metrics are null)."""
    data = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(data, path)


def plot_spectrograms(wavs: Dict[str, torch.Tensor], mel_config: MelConfig, path: Union[str, os.PathLike],
                      title: str = "") -> None:
    """One log-mel panel per waveform (``{label: [T]}``), shared colour scale, saved as PNG (Agg backend)."""
    # The object API with an explicit Agg canvas: headless, and pyplot's global backend is left alone. Deferred:
    # only the PNG needs matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mels = {k: mel_spectrogram(w.reshape(-1).float(), mel_config).numpy() for k, w in wavs.items()}
    vmin = min(float(m.min()) for m in mels.values())
    vmax = max(float(m.max()) for m in mels.values())
    fig = Figure(figsize=(10, 2.6 * len(mels)), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(mels), 1, squeeze=False)[:, 0]
    hop_s = mel_config.hop_length / mel_config.sample_rate
    for ax, (label, m) in zip(axes, mels.items()):
        im = ax.imshow(m, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
                       extent=(0, m.shape[1] * hop_s, 0, m.shape[0]))
        ax.set_title(label)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(im, ax=list(axes), label="log magnitude")
    if title:
        fig.suptitle(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=100, format="png")
