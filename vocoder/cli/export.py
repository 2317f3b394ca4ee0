"""``vocoder export``: a training checkpoint -> our inference checkpoint, or a model -> another toolkit's format.

    vocoder export RUN_DIR/checkpoints/last.ckpt model.pt [--keep-weight-norm]     # --format pt (the default)
    vocoder export --format safetensors MODEL DIR           # config.json + model.safetensors (a Hub repo of ours)
    vocoder export --format parallel-wavegan MODEL DIR      # config.yml + checkpoint-<N>steps.pkl + stats.npy
    vocoder export --format speechbrain MODEL DIR           # hyperparams.yaml + generator.ckpt
    vocoder export --format torchscript MODEL model.ts      # torch.jit.load(...)(mel [B, n_mels, T]) -> [B, T * hop]
    vocoder export --format onnx MODEL model.onnx           # input "mel", output "audio"; dynamic batch and time

``--format pt``: the result loads with ``Vocoder.from_pretrained("model.pt")``; weight norm is folded into plain
weights unless ``--keep-weight-norm`` is given: then the generator keeps ``weight_g``/``weight_v`` (bit-exact
training weights), a warm start for ``vocoder train --init-generator model.pt`` (folded files load exactly too).

The other formats take MODEL as anything ``Vocoder.from_pretrained`` reads (our ``.pt``, official folders, a Hub
repo id org/name[@REVISION] with --revision / --cache-dir / --local-files-only, ...): ``safetensors`` writes what
``Vocoder.save_pretrained`` writes, ``config.json`` (generator, mel, meta) + ``model.safetensors`` (tensors only,
nothing to unpickle), the folder to upload as a Hub repo (``hf upload org/name DIR``); ``parallel-wavegan`` writes
what ``parallel_wavegan.utils.load_model`` (and ESPnet with it) loads, for HiFi-GAN and MelGAN generators;
``speechbrain`` what SpeechBrain's ``HIFIGAN.from_hparams(source=DIR)`` loads (any family; the folder names a class
of this package); ``torchscript`` and ``onnx`` one file that runs without this package, for
every generator family (weight norm folded, BigVGAN's reference activation), checked against the model on other
batch sizes and lengths than the traced one (ONNX with onnxruntime, when installed; the export needs onnxscript).
"""
from __future__ import annotations

import argparse

from .model_args import add_hub_arguments, hub_options

FORMATS = ("pt", "safetensors", "parallel-wavegan", "speechbrain", "torchscript", "onnx")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="training checkpoint -> inference checkpoint (.pt), or a model -> "
                                             "another toolkit's format", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="MODEL",
                   help="--format pt: Lightning checkpoint written by `vocoder train` (.ckpt); other formats: "
                        "anything Vocoder.from_pretrained reads")
    p.add_argument("output", metavar="OUT", help="file (pt, torchscript, onnx) or folder (safetensors, "
                                                 "parallel-wavegan, speechbrain) to write")
    p.add_argument("--format", choices=FORMATS, default="pt", help="what to write (default: pt)")
    p.add_argument("--keep-weight-norm", action="store_true", help="pt: write weight_g/weight_v as trained instead of "
                   "folded weights (a warm start for --init-generator)")
    p.add_argument("--steps", type=int, default=0, help="parallel-wavegan: the N of checkpoint-<N>steps.pkl")
    add_hub_arguments(p)
    return p


def run(args) -> int:
    if args.format == "pt":
        # deferred: start-up time of the CLI (model code, Lightning, matplotlib load only when run)
        from ..training.callbacks import export_inference_checkpoint

        out = export_inference_checkpoint(args.checkpoint, args.output, fold_weight_norm=not args.keep_weight_norm)
        print(out)
        return 0
    from ..inference import Vocoder  # deferred, as above

    voc = Vocoder.from_pretrained(args.checkpoint, **hub_options(args))
    if args.format == "safetensors":
        out = voc.save_pretrained(args.output)
    elif args.format == "parallel-wavegan":
        from ..checkpoints import export_parallel_wavegan

        out = export_parallel_wavegan(voc, args.output, steps=args.steps)
    elif args.format == "speechbrain":
        from ..plugins.speechbrain import export_speechbrain

        out = export_speechbrain(voc, args.output)
    elif args.format == "torchscript":
        from ..checkpoints import export_torchscript

        out = export_torchscript(voc, args.output)
    else:
        from ..checkpoints import export_onnx

        out = export_onnx(voc, args.output)
    print(out)
    return 0
