"""``vocoder export``: a training checkpoint (Lightning ``.ckpt``) -> our inference checkpoint (``.pt``).

    vocoder export RUN_DIR/checkpoints/last.ckpt model.pt [--keep-weight-norm]

The result loads with ``Vocoder.from_pretrained("model.pt")``; weight norm is folded into plain weights unless
``--keep-weight-norm`` is given: then the generator keeps ``weight_g``/``weight_v`` (bit-exact training weights),
a warm start for ``vocoder train --init-generator model.pt`` (folded files load exactly too).
"""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="training checkpoint -> inference checkpoint (.pt)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="Lightning checkpoint written by `vocoder train` (.ckpt)")
    p.add_argument("output", help="inference checkpoint to write (.pt)")
    p.add_argument("--keep-weight-norm", action="store_true", help="write weight_g/weight_v as trained instead of folded weights (a warm start for "
                        "--init-generator)")
    return p


def run(args) -> int:
    # deferred: start-up time of the CLI (model code, Lightning, matplotlib load only when run)
    from ..training.callbacks import export_inference_checkpoint

    out = export_inference_checkpoint(args.checkpoint, args.output, fold_weight_norm=not args.keep_weight_norm)
    print(out)
    return 0
