"""``vocoder train``: train a vocoder from a recipe.

    vocoder train --config recipes/hifigan_v1.yaml --data DIR_OR_LIST [--val DIR_OR_LIST] [--out RUN_DIR]
                  [--max-steps N] [--devices N] [--accelerator cpu|gpu|auto] [--resume CKPT|auto]
                  [--init-generator PATH] [--init-discriminator CKPT] [section.key=value ...]

Overrides are dotted recipe keys with YAML values: ``optim.lr=1e-4``, ``data.batch_size=4``,
``generator.config.upsample_initial_channel=128``, ``discriminators.0.args.channel_mult=0.5``.
Checkpoints go to RUN_DIR/checkpoints (atomic writes; ``last.ckpt`` always the latest); SIGTERM saves
``last.ckpt`` and exits 0; ``--resume auto`` continues from it with the same step, optimiser and data position
(with overrides such as ``optim.lr=1e-4``, the LR moves to the new schedule at that step).
A run that ends without an optimisation step, or short of ``--max-steps`` for any other reason, exits 1 with a
message. A training set smaller than a batch is sampled with replacement (random segments; a warning says so).

Fine-tuning: ``--init-generator PATH`` (recipe key ``generator.init``) starts the generator from an existing
checkpoint: our ``.pt`` (weight norm folded or not), an official BigVGAN folder (``config.json`` +
``bigvgan_generator.pt``) or a HiFi-GAN ``g_*`` file with its ``config.json``. A recipe without
``generator.config`` / ``mel`` takes them from the checkpoint; given ones must match it. Optimisers start fresh;
so do the discriminators unless ``--init-discriminator CKPT`` loads them from a training checkpoint of the same
recipe (to continue an adversarial phase). ``--resume`` wins over both. Example::

    vocoder train --config recipes/bigvgan_v2_24khz.yaml --init-generator bigvgan_v2_24khz_100band_256x/ \
                  --data mydata/ optim.lr=2e-5
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a vocoder from a YAML recipe", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None,
                   help="recipe YAML (default when resuming: the recipe stored in the run folder)")
    p.add_argument("--data", required=True, help="training audio: a folder or a text file listing files")
    p.add_argument("--val", default=None, help="validation audio (default: data.val_clips files held out of --data)")
    p.add_argument("--out", "-o", default=None, help="run folder (default: runs/<recipe name>)")
    p.add_argument("--max-steps", type=int, default=None, help="GAN steps to train to (overrides trainer.max_steps)")
    p.add_argument("--devices", type=int, default=None, help="devices (processes); >1 trains with DDP")
    p.add_argument("--accelerator", choices=("cpu", "gpu", "auto"), default=None, help="default: the recipe's")
    p.add_argument("--resume", default=None, metavar="CKPT|auto",
                   help="Lightning checkpoint to continue from, or 'auto' for RUN_DIR/checkpoints/last.ckpt")
    p.add_argument("--init-generator", default=None, metavar="PATH",
                   help="fine-tune: start the generator from this checkpoint (our .pt, an official BigVGAN folder, a "
                        "HiFi-GAN g_* file + config.json); sets generator.init")
    p.add_argument("--init-discriminator", default=None, metavar="CKPT",
                   help="start the discriminators from a training checkpoint (RUN_DIR/checkpoints/*.ckpt, or one cut "
                        "down with vocoder.training.callbacks.discriminator_checkpoint) instead of from scratch")
    p.add_argument("--progress-bar", action=argparse.BooleanOptionalAction, default=None,
                   help="show Lightning's progress bar (default: when stderr is a terminal)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. optim.lr=1e-4")
    return p


def run(args) -> int:
    # deferred: start-up time of the CLI (model code, Lightning, matplotlib load only when run)
    from ..training.recipes import load_recipe
    from ..training.runner import TrainingIncomplete, train

    logging.getLogger("vocoder").setLevel(min(logging.getLogger("vocoder").getEffectiveLevel(), logging.INFO))
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"trainer.max_steps={args.max_steps}")
    if args.devices is not None:
        overrides.append(f"trainer.devices={args.devices}")
    if args.accelerator is not None:
        overrides.append(f"trainer.accelerator={args.accelerator}")
    config = args.config
    if config is None:
        if not args.resume or not args.out or not (Path(args.out) / "recipe.yaml").is_file():
            raise ValueError("--config is required (it may be left out only with --resume and an --out folder that "
                             "holds recipe.yaml)")
        config = str(Path(args.out) / "recipe.yaml")
    recipe = load_recipe(config, overrides)
    if args.init_generator is not None:  # set directly: a path is not a YAML value (``--init-generator 2024``)
        recipe["generator"]["init"] = args.init_generator
    out = args.out or str(Path("runs") / (recipe.get("name") or Path(config).stem))
    try:
        result = train(recipe, args.data, args.val, run_dir=out, resume=args.resume, progress_bar=args.progress_bar,
                       init_discriminator=args.init_discriminator)
    except TrainingIncomplete as e:
        print(f"vocoder train: error: {e} (checkpoint: {e.result.last_checkpoint})", file=sys.stderr)
        return 1
    if result.terminated:
        log.warning("terminated at GAN step %d; checkpoint: %s", result.gan_step, result.last_checkpoint)
    else:
        log.info("done: GAN step %d; checkpoint: %s", result.gan_step, result.last_checkpoint)
    return 0
