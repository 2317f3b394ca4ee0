"""``vocoder stream``: mel frames in, raw audio out on stdout as soon as it is final (streaming decode).

    vocoder stream --model MODEL --input mel.npy [--format pcm16|float32] [--chunk-frames N] > out.raw
    producer | vocoder stream --model MODEL [--format pcm16] | aplay -f S16_LE -r 22050 -c 1

Input: ``--input FILE.npy`` holding a log-mel ``[n_mels, T]`` (or ``[1, n_mels, T]``), or, without
``--input``, stdin as raw float32 little-endian frames, frame-major: ``T x n_mels`` values, each frame's
``n_mels`` values contiguous (numpy: ``mel.T.astype('<f4').tobytes()`` for a ``[n_mels, T]`` mel). Frames are
decoded as soon as ``--chunk-frames`` of them have arrived (the rest at end of input).

Output: mono samples at the model's rate, raw little-endian ``pcm16`` (default) or ``float32``, with no header,
written and flushed as each piece becomes final; the audio of a frame waits for ``lookahead_frames`` later
frames (printed with ``-v``). The whole output equals the offline decode of the full mel.

Bad input ends the run with one line on stderr and exit status 2: a chunk that is not a mel the model takes
(wrong size, NaN, values over the model's mel limit, e.g. a dB mel), or one the model turns into NaN audio
(nothing of that chunk is written). Empty stdin writes nothing and exits 0 (a note on stderr).
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import torch

from ..audio.mel import check_mel
from .model_args import add_model_arguments, load_model

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("stream", help="streaming decode: mel frames (file or stdin) -> raw audio on stdout",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--input", "-i", default=None,
                   help="a .npy log-mel [n_mels, T]; default: raw float32 LE frames [T, n_mels] on stdin")
    p.add_argument("--format", choices=("pcm16", "float32"), default="pcm16",
                   help="raw little-endian output samples (default: pcm16)")
    p.add_argument("--chunk-frames", type=int, default=1, help="frames decoded per step (default: 1)")
    return p


def encode(audio: torch.Tensor, fmt: str) -> bytes:
    """``[samples]`` float audio -> raw little-endian bytes (pcm16 clips to [-1, 1])."""
    a = audio.detach().cpu().numpy().astype(np.float32, copy=False)
    if fmt == "float32":
        return a.astype("<f4", copy=False).tobytes()
    return (np.clip(a, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def _npy_chunks(path: str, n_mels: int, chunk: int):
    try:
        mel = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"cannot read {path} as a .npy array: {e}") from e
    try:  # the layout the chunking needs; each chunk's values are the StreamingVocoder's one check
        mel = check_mel(mel, n_mels, layout="single", finite=False).float()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    for i in range(0, mel.shape[1], chunk):
        yield mel[:, i:i + chunk]


def _stdin_chunks(stream, n_mels: int, chunk: int):
    """Raw float32 LE frame-major bytes -> ``[n_mels, t]`` chunks, as soon as ``chunk`` frames arrived."""
    frame_bytes = 4 * n_mels
    buf = bytearray()
    read = getattr(stream, "read1", stream.read)
    while True:
        data = read(max(frame_bytes * chunk, 65536))
        if not data:
            break
        buf += data
        n_frames = len(buf) // frame_bytes
        while n_frames >= chunk:
            take = chunk * frame_bytes
            frames = np.frombuffer(bytes(buf[:take]), dtype="<f4").reshape(chunk, n_mels)
            del buf[:take]
            n_frames -= chunk
            yield torch.from_numpy(frames.T.copy())
    if len(buf) % frame_bytes:
        raise ValueError(f"stdin ended inside a frame: {len(buf) % frame_bytes} stray bytes "
                         f"(expected float32 frames of {n_mels} values = {frame_bytes} bytes)")
    if buf:
        frames = np.frombuffer(bytes(buf), dtype="<f4").reshape(-1, n_mels)
        yield torch.from_numpy(frames.T.copy())


def run(args) -> int:
    if args.chunk_frames < 1:
        raise ValueError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    vocoder = load_model(args)
    log.info("streaming %s: %d Hz, %d mels, hop %d, lookahead %d frames, output %s", vocoder.generator_name,
             vocoder.sample_rate, vocoder.n_mels, vocoder.hop_length, vocoder.lookahead_frames, args.format)
    if vocoder.offline_phase:
        print(f"vocoder stream: {vocoder.streaming_decode()}", file=sys.stderr)
    if args.input is not None:
        chunks = _npy_chunks(args.input, vocoder.n_mels, args.chunk_frames)
    else:
        chunks = _stdin_chunks(sys.stdin.buffer, vocoder.n_mels, args.chunk_frames)
    out = sys.stdout.buffer
    samples = 0
    try:
        for audio in vocoder.stream(chunks):
            out.write(encode(audio, args.format))
            out.flush()
            samples += audio.shape[-1]
    except BrokenPipeError:  # the consumer went away: stop quietly
        return 0
    if samples == 0 and args.input is None:
        # Decided (#26): no frames in, no samples out, exit 0, as a filter does; said once on stderr.
        print("vocoder stream: stdin held no mel frames: no audio written", file=sys.stderr)
    return 0
