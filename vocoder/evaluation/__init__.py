"""Objective evaluation of vocoders: metrics (PESQ, STOI, M-STFT, mel L1, MCD, periodicity, V/UV F1),
non-intrusive MOS predictors (DistillMOS, DNSMOS P.835), the Griffin-Lim floor, and copy-synthesis reports over
a set of clips.

Needs the ``eval`` extra (``pip install vocoder[eval]``: pesq, pystoi, auraloss, torchcrepe, distillmos,
speechmos, onnxruntime), imported lazily by the functions that use them.
"""
from .griffin_lim import GriffinLimVocoder, griffin_lim, magnitude_griffin_lim, mel_to_magnitude
from .metrics import (HIGHER_IS_BETTER, METRICS, evaluate_pair, mel_cepstral_distortion, mel_l1,
                      multi_resolution_stft, periodicity_metrics, pesq_wb, stoi)
from .mos import MOS_METRICS, distillmos_score, dnsmos_scores, mos_scores
from .report import evaluate, format_table, list_clips, plot_spectrograms, summarize, write_json

__all__ = ["evaluate_pair", "pesq_wb", "stoi", "multi_resolution_stft", "mel_l1", "mel_cepstral_distortion",
           "periodicity_metrics", "METRICS", "HIGHER_IS_BETTER", "griffin_lim", "magnitude_griffin_lim",
           "mel_to_magnitude", "GriffinLimVocoder", "evaluate", "summarize", "format_table", "write_json",
           "plot_spectrograms", "list_clips", "MOS_METRICS", "distillmos_score", "dnsmos_scores", "mos_scores"]
