"""A listening page for evaluation reports: ``DIR/index.html`` with its audio and images beside it.

The page (a Jinja2 template, ``templates/report.html.j2``) needs nothing from the network at view time. It holds the
means table (each model, the floors, the reference clips), then one row per clip, worst first by the first model's
DistillMOS (PESQ when DistillMOS was not scored, and the page says so): audio players for the reference, each model
and the floors, their log-mel spectrograms side by side in one image on one colour scale, and the clip's metrics.
Several models evaluated on the same clips share a page (:class:`Entry` per model); the floors and the reference
come from the first, and a later model's floors are shown too when its front end differs. ``sections`` put
several such comparisons on one page (``scripts/training_curve.py``: one per split, with curve plots from
:func:`write_curves`).

    audio = ClipAudio()
    report = evaluate(voc, "clips/", audio_sink=audio)   # keeps each clip's audio for the page
    write_html("report/", [Entry(report, audio)])       # report/index.html, report/audio/*.wav, report/img/*.png

A report without its audio (e.g. a ``--report`` JSON read back) gives the page without players and images.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..audio.io import save_audio
from ..audio.mel import MelConfig, mel_spectrogram
from . import mos as _mos
from .metrics import HIGHER_IS_BETTER
from .report import _JSON_ONLY, _LABELS, REFERENCE, VOCODER

__all__ = ["ClipAudio", "Entry", "Section", "CurvePoint", "write_html", "write_curves", "sort_metric"]

_HIGHER = {**HIGHER_IS_BETTER, **_mos.HIGHER_IS_BETTER}
_TEMPLATE = "report.html.j2"


class ClipAudio:
    """An ``audio_sink`` for :func:`.report.evaluate`: keeps each evaluated clip's audio (the reference and every
    system's output, float32 ``[T]``) by clip file, for :func:`write_html`."""

    def __init__(self) -> None:
        self.clips: Dict[str, Dict[str, np.ndarray]] = {}

    def __call__(self, path, wavs: Mapping[str, torch.Tensor]) -> None:
        self.clips[str(path)] = {k: torch.as_tensor(w).detach().to("cpu", torch.float32).reshape(-1).numpy()
                                 for k, w in wavs.items()}


@dataclass
class Entry:
    """One model's report on the page, with its audio (``None``: metrics only) and a label (default: its model)."""
    report: Dict[str, Any]
    audio: Optional[ClipAudio] = None
    label: Optional[str] = None


@dataclass
class Section:
    """Models compared on the same clips, under a heading, with optional curve images (:func:`write_curves`);
    ``key`` starts its file names (default: from the title)."""
    entries: Sequence[Entry]
    title: str = ""
    curves: Sequence[Dict[str, str]] = ()
    key: str = ""


@dataclass
class CurvePoint:
    """One checkpoint's means for a curve: ``series`` names its line (e.g. a phase setting)."""
    series: str
    steps: int
    cpu_hours: Optional[float]
    metrics: Mapping[str, Optional[float]]


@dataclass
class _Column:
    key: str            # file-name part: "reference", "model1", "griffin_lim", "griffin_lim-model2", ...
    label: str
    entry: int          # index of the entry whose report / audio it reads
    system: str         # the report's system name, or "reference"
    model: bool = False


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")[:limit] or "x"


def sort_metric(report: Mapping[str, Any]) -> str:
    """The metric the clips are sorted by: DistillMOS when the report has it, else PESQ."""
    return "distillmos" if "distillmos" in report["metrics"] else "pesq"


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def _columns(entries: Sequence[Entry]) -> List[_Column]:
    first = entries[0].report
    models = [_Column(f"model{i + 1}", e.label or e.report["model"], i, VOCODER, model=True)
              for i, e in enumerate(entries)]
    floors = [_Column(s, _LABELS.get(s, s), 0, s) for s in first["systems"] if s != VOCODER]
    for i, e in enumerate(entries[1:], start=1):
        if e.report["mel"] != first["mel"] or e.report["sample_rate"] != first["sample_rate"]:
            floors += [_Column(f"{s}-model{i + 1}", f"{_LABELS.get(s, s)} ({models[i].label}'s front end)", i, s)
                       for s in e.report["systems"] if s != VOCODER]
    return [_Column(REFERENCE, "reference", 0, REFERENCE)] + models + floors


def _spectrogram_png(path: Path, panels: Sequence[tuple]) -> None:
    """``panels``: (label, wav [T], MelConfig); log-mels side by side on one colour scale (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mels = [(label, mel_spectrogram(torch.from_numpy(w), cfg).numpy(), cfg) for label, w, cfg in panels]
    vmin = min(float(m.min()) for _, m, _ in mels)
    vmax = max(float(m.max()) for _, m, _ in mels)
    fig = Figure(figsize=(0.6 + 2.7 * len(mels), 2.4), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(mels), squeeze=False)[0]
    for ax, (label, m, cfg) in zip(axes, mels):
        im = ax.imshow(m, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
                       extent=(0, m.shape[1] * cfg.hop_length / cfg.sample_rate, 0, m.shape[0]))
        ax.set_title(label if len(label) <= 32 else label[:31] + "…", fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("mel bin", fontsize=8)
    fig.colorbar(im, ax=list(axes), label="log magnitude", pad=0.01)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=80, format="png")


def _section(out: Path, section: Section, prefix: str) -> Dict[str, Any]:
    entries = list(section.entries)
    if not entries:
        raise ValueError("expected at least one report in each section, got none")
    first = entries[0].report
    columns = _columns(entries)
    ref_metrics = list(first.get("reference_metrics") or [])
    metrics = [m for m in first["metrics"] if m not in _JSON_ONLY]
    metrics += [m for e in entries[1:] for m in e.report["metrics"] if m not in metrics and m not in _JSON_ONLY]
    heads = [{"name": m, "arrow": "↑" if _HIGHER.get(m, True) else "↓"} for m in metrics]

    def values(col: _Column, table: Mapping[str, Any], std: Optional[Mapping[str, Any]] = None) -> List[str]:
        rep = entries[col.entry].report
        if col.system == REFERENCE:
            allowed = set(rep.get("reference_metrics") or [])
        else:
            allowed = set(rep["metrics"])
        cells = []
        for m in metrics:
            if m not in allowed or m not in table:
                cells.append("-")
            elif std is None or table[m] is None:
                cells.append(_fmt(table[m]))
            else:
                cells.append(f"{_fmt(table[m])} ± {_fmt(std[m])}")
        return cells

    # players: reference, models, floors; tables: models, floors, then the reference (as `vocoder eval` prints)
    shown = columns[1:] + (columns[:1] if ref_metrics else [])
    means = [{"label": c.label, "model": c.model,
              "cells": values(c, entries[c.entry].report["mean"].get(c.system, {}),
                              entries[c.entry].report["std"].get(c.system, {}))} for c in shown]

    by_file = [{c["file"]: c for c in e.report["clips"]} for e in entries]
    key_metric = sort_metric(first)
    higher = _HIGHER.get(key_metric, True)

    def sort_key(item):
        i, clip = item
        v = clip["metrics"][VOCODER].get(key_metric)
        if v is None or not math.isfinite(v):
            return (0, 0.0, i)  # undefined first: those need a look
        return (1, v if higher else -v, i)

    rows = []
    for i, clip in sorted(enumerate(first["clips"]), key=sort_key):
        name = Path(clip["file"])
        stem = f"{prefix}{i + 1:03d}-{_slug(name.stem)}"
        players, panels, tables = [], [], {}
        for col in columns:
            rep = entries[col.entry].report
            this = by_file[col.entry].get(clip["file"])
            audio = entries[col.entry].audio
            wav = None if this is None or audio is None else audio.clips.get(clip["file"], {}).get(col.system)
            src = None
            if wav is not None:
                src = f"audio/{stem}-{col.key}.wav"
                save_audio(out / src, wav, int(rep["sample_rate"]))
                panels.append((col.label, wav, MelConfig.from_dict(rep["mel"])))
            players.append({"label": col.label, "src": src})
            if col.system == REFERENCE and not ref_metrics:
                continue
            cells = ["-"] * len(metrics) if this is None else values(col, this["metrics"].get(col.system, {}))
            tables[col.key] = {"label": col.label, "model": col.model, "cells": cells, "missing": this is None}
        image = None
        if panels:
            image = f"img/{stem}.png"
            _spectrogram_png(out / image, panels)
        rows.append({"file": str(clip["file"]), "name": name.name, "duration_s": clip["duration_s"],
                     "key": _fmt(clip["metrics"][VOCODER].get(key_metric)), "players": players,
                     "image": image, "metrics": [tables[c.key] for c in shown]})
    skipped = [dict(s, model=e.label or e.report["model"]) for e in entries for s in e.report.get("skipped") or []]
    if key_metric == "distillmos":
        order = f"worst first by {columns[1].label}'s DistillMOS"
    else:
        order = (f"worst first by {columns[1].label}'s PESQ (DistillMOS was not scored: the evaluation ran without "
                 f"the MOS predictors)")
    return {"title": section.title, "models": [c.label for c in columns if c.model],
            "sample_rate": first["sample_rate"], "n_clips": first["n_clips"], "heads": heads, "means": means,
            "reference_note": bool(ref_metrics), "order": order, "key_metric": key_metric, "rows": rows,
            "skipped": skipped, "curves": list(section.curves)}


def write_html(out_dir: Union[str, Path], sections: Sequence[Union[Section, Entry]],
               title: str = "vocoder evaluation") -> Path:
    """Write ``out_dir/index.html`` with ``out_dir/audio/*.wav`` and ``out_dir/img/*.png`` beside it.

    ``sections``: :class:`Section` objects, or :class:`Entry` objects (one section of them: several models on the same
    clips, the first one's floors and reference). Clip rows follow the first entry's clips, worst first by its
    DistillMOS (PESQ without the MOS predictors; clips where it is undefined first). Returns the page's path.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined  # deferred: only the page needs it

    items = list(sections)
    if not items:
        raise ValueError("expected at least one report to render, got none")
    if all(isinstance(s, Entry) for s in items):
        items = [Section(items)]
    elif not all(isinstance(s, Section) for s in items):
        raise ValueError("expected a list of Entry or a list of Section objects, not a mix")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rendered = [_section(out, s, f"{_slug(s.key or s.title)}-" if len(items) > 1 or s.key or s.title else "")
                for s in items]
    env = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    html = env.get_template(_TEMPLATE).render(title=title, sections=rendered)
    page = out / "index.html"
    page.write_text(html, encoding="utf-8")  # the umask's permissions: a page to serve as it is
    return page


def write_curves(out_dir: Union[str, Path], points: Sequence[CurvePoint], metrics: Sequence[str],
                 levels: Optional[Mapping[str, Mapping[str, Optional[float]]]] = None,
                 prefix: str = "") -> List[Dict[str, str]]:
    """One PNG per metric, ``out_dir/img/{prefix}curve-{metric}.png``: the metric against training steps (left) and
    CPU-hours (right), one line per series, ``levels`` (e.g. ``{"Griffin-Lim": means, "reference": means}``)
    dashed across. Returns ``[{"metric", "image"}]`` for :class:`Section` ``curves`` (paths relative to out_dir)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    levels = levels or {}
    series = list(dict.fromkeys(p.series for p in points))
    images = []
    for m in metrics:
        fig = Figure(figsize=(7.5, 2.6), constrained_layout=True)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)
        for ax, x_name, x_label in ((axes[0], "steps", "training steps"), (axes[1], "cpu_hours", "CPU-hours")):
            drawn = False
            for s in series:
                pts = sorted((getattr(p, x_name), p.metrics.get(m)) for p in points if p.series == s
                             and getattr(p, x_name) is not None and p.metrics.get(m) is not None)
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=s)
                    drawn = True
            for j, (name, means) in enumerate(levels.items()):
                v = (means or {}).get(m)
                if v is not None:
                    ax.axhline(v, linestyle="--", linewidth=1, color=f"C{len(series) + j}", label=name)
                    drawn = True
            if not drawn:
                ax.text(0.5, 0.5, f"no {x_label} recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"{m} {'↑' if _HIGHER.get(m, True) else '↓'}")
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(fontsize=7)
        image = f"img/{prefix}curve-{_slug(m)}.png"
        (out / image).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(out / image), dpi=80, format="png")
        images.append({"metric": m, "image": image})
    return images
