"""The ``vocoder`` command: one module per subcommand, each with ``add_parser(subparsers)`` and ``run(args)``."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Subcommand modules under vocoder.cli, in the order `vocoder --help` lists them.
SUBCOMMANDS = ["synthesize", "info", "eval", "train", "export", "stream", "serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vocoder", description="Neural vocoders: mel spectrogram -> waveform.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"vocoder.cli.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except ValueError as e:  # bad input: one clear line, no traceback
        print(f"vocoder {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
