"""``vocoder eval``: copy-synthesis evaluation of a model on a folder of clips, against the Griffin-Lim floor and the
no-network floors (the mel's pseudo-inverse amplitude with an RTPGHI / PGHI phase).

    vocoder eval --model MODEL [--model MODEL2] --data DIR [--report out.json] [--png worst.png] [--html DIR]
                 [--max-clips N] [--no-griffin-lim] [--no-pinv-floors] [--no-mos]

Prints a table of mean ± std per metric (PESQ, STOI, M-STFT, mel L1, MCD, periodicity, V/UV F1, and the
non-intrusive MOS predictors DistillMOS and DNSMOS P.835 overall) for the model, for Griffin-Lim and for the
pinv floors (``pinv_rtpghi``, ``pinv_pghi``) on the same mels, plus the MOS predictors on the original clips (the reference: their ceiling on this data). A clip that
fails (unreadable, too short, NaN audio) is listed on stderr, one line each, left out of the means, and makes
the exit status 2 (``--fail-fast``: stop at the first). Needs the
``eval`` extra (pesq, pystoi, auraloss, torchcrepe, distillmos, speechmos, onnxruntime).

``--html DIR`` writes a listening page, DIR/index.html with the audio and images beside it: the means, then per clip
(worst first by DistillMOS) players for the reference, the model and the floors, their mel spectrograms side by side
and the clip's metrics. ``--model`` repeated compares models on one page: each is scored and printed in turn, the
floors once with the first (again for a later model whose front end differs); ``--report`` then writes a JSON list
of the reports, one per model, and ``--png`` (one model's worst clip) is refused.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import sys

from .model_args import add_model_arguments, check_output_dir, check_output_file, load_model

log = logging.getLogger(__name__)

_EXTRA = ("pesq", "pystoi", "auraloss", "torchcrepe")
_EXTRA_MOS = ("distillmos", "speechmos", "onnxruntime")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="objective metrics of a model on a folder of clips (vs Griffin-Lim)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, random_init=False, device_help="where the model runs (metrics run on the CPU)",
                        phase_iterations=True, several_models=True)
    p.add_argument("--data", "-d", required=True, nargs="+", help="audio folder(s) or files")
    p.add_argument("--report", default=None, help="write the full report (per clip and means) as JSON here")
    p.add_argument("--png", default=None, help="draw original / model / Griffin-Lim mels of the worst clip here")
    p.add_argument("--html", default=None, metavar="DIR",
                   help="write a listening page here: DIR/index.html with every clip's audio, mel spectrograms and "
                        "metrics (worst first), and the means")
    p.add_argument("--max-clips", type=int, default=None, help="evaluate only the first N clips (sorted)")
    p.add_argument("--no-griffin-lim", action="store_true", help="skip the Griffin-Lim floor")
    p.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (default: 32)")
    p.add_argument("--no-pinv-floors", action="store_true",
                   help="skip the no-network floors (the mel's pinv amplitude with an RTPGHI / PGHI phase)")
    p.add_argument("--no-mos", action="store_true",
                   help="skip the MOS predictors (DistillMOS, DNSMOS) and the reference's scores")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first clip that fails (default: report it, go on, exit 2 at the end)")
    return p


def run(args) -> int:
    needed = _EXTRA + (() if args.no_mos else _EXTRA_MOS)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"vocoder eval needs {', '.join(missing)}: pip install 'vocoder[eval]' "
                         f"(pip install -e '.[eval]' in a checkout)")
    # deferred: optional extras, checked above; and start-up time of the CLI
    from ..evaluation.report import evaluate, format_table, list_clips, write_json

    models = args.model or [None]  # --model repeats: a list; none given: the shipped model
    several = len(models) > 1
    if several and args.png:
        raise ValueError("--png draws one model's worst clip; with several --model use --html DIR (one spectrogram "
                         "image per clip, every model in it)")
    files = []
    for item in args.data:
        files.extend(list_clips(item))
    for flag, path in (("--report", args.report), ("--png", args.png)):
        if path is not None:
            check_output_file(path, flag)
    if args.html is not None:
        check_output_dir(args.html, "--html")
        from ..evaluation.html_report import ClipAudio, Entry, write_html
    entries, reports, front_end = [], [], None
    for i, model in enumerate(models):
        voc = load_model(argparse.Namespace(**{**vars(args), "model": model}))
        # the floors depend on the mel alone: scored with the first model, again only for a different front end
        floors = i == 0 or (voc.mel_config, int(voc.sample_rate)) != front_end
        front_end = front_end or (voc.mel_config, int(voc.sample_rate))
        audio = ClipAudio() if args.html is not None else None
        report = evaluate(voc, files, max_clips=args.max_clips, griffin_lim_floor=not args.no_griffin_lim and floors,
                          png_path=args.png, gl_iters=args.gl_iters, mos=not args.no_mos, fail_fast=args.fail_fast,
                          pinv_floors=not args.no_pinv_floors and floors, audio_sink=audio)
        del voc
        if model is not None:
            report["model"] = f"{report['model']} ({model})"
        print(("\n" if i else "") + format_table(report), flush=True)
        reports.append(report)
        entries.append(None if audio is None else Entry(report, audio))
    if args.report:
        write_json(reports if several else reports[0], args.report)
        log.info("report written to %s", args.report)
    if args.html is not None:
        page = write_html(args.html, entries, title="vocoder eval: " + " vs ".join(r["model"] for r in reports))
        log.info("listening page written to %s", page)
        print(f"listening page: {page}")
    status = 0
    for report in reports:
        skipped = report.get("skipped") or []
        about = f" ({report['model']})" if several else ""
        for s in skipped:
            print(f"vocoder eval: failed: {s['file']}: {s['reason']}{about}", file=sys.stderr)
        if skipped:
            total = report["n_clips"] + len(skipped)
            print(f"vocoder eval: {len(skipped)} of {total} clip(s) failed (not in the means){about}",
                  file=sys.stderr)
            status = 2
    return status
