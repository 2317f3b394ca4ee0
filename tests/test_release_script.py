"""scripts/release_default_model.py: the fixed held-out subset and the model card it writes."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO, load_script


@pytest.fixture(scope="module")
def release():
    return load_script(REPO / "scripts" / "release_default_model.py")


def test_test_subset_is_stratified_sorted_and_stable(release, tmp_path):
    lines = [f"wav/a/spk/{i:02d}.wav" for i in range(10)] + [f"wav/b/spk/{i}.wav" for i in range(3)]
    (tmp_path / "test.txt").write_text("\n".join(reversed(lines)) + "\n")
    picked = release.test_subset(tmp_path, 4)
    rel = [str(p.relative_to(tmp_path)) for p in picked]
    assert rel == ["wav/a/spk/01.wav", "wav/a/spk/03.wav", "wav/a/spk/06.wav", "wav/a/spk/08.wav",
                   "wav/b/spk/0.wav", "wav/b/spk/1.wav", "wav/b/spk/2.wav"]
    assert release.test_subset(tmp_path, 4) == picked


def _row(step, model_mos, gl_mos, model_mstft, gl_mstft):
    m = {k: 0.5 for k in ("pesq", "stoi", "mel_l1", "mcd", "periodicity", "vuv_f1", "dnsmos_ovrl")}
    split = {"vocoder": {**m, "distillmos": model_mos, "mstft": model_mstft},
             "griffin_lim": {**m, "distillmos": gl_mos, "mstft": gl_mstft},
             "reference": {"distillmos": 3.9, "dnsmos_ovrl": 3.1}}
    return {"date": "2026-11-25T00:00:00+00:00", "gan_step": step, "phase": "GAN-free",
            "train_hours": 2.5, "test_per_source": 8, "test_clips": 24, "samples_clips": 4,
            "test": split, "samples": split}


def test_model_card_reports_every_release_and_the_gate(release, tmp_path):
    meta = {"name": "default_22khz", "generator": "vocos", "parameters": 9097347}
    progress = [_row(4728, 2.4, 2.7, 1.54, 1.46), _row(12000, 3.1, 2.7, 1.2, 1.46)]
    card = tmp_path / "MODEL_CARD.md"
    release.write_card(card, meta, progress, [Path("x.wav")] * 24, "data/corpus")
    text = card.read_text()
    assert "12,000 steps" in text and "| 4,728 |" in text and "| 12,000 |" in text
    assert "This release **passes**" in text
    assert "reference clips (MOS ceiling) | 3.900 | 3.100 |" in text
    release.write_card(card, meta, progress[:1], [Path("x.wav")] * 24, "data/corpus")
    text = card.read_text()
    assert "This release **fails**" in text
    assert "distillmos >= Griffin-Lim + 0.3: model 2.400, Griffin-Lim 2.700" in text
    assert "mstft <= Griffin-Lim - 0.05: model 1.540, Griffin-Lim 1.460" in text


def test_release_failures_check_both_splits(release):
    row = _row(1, 3.1, 2.7, 1.2, 1.46)
    assert release.release_failures(row) == []
    row["test"] = dict(row["test"], vocoder=dict(row["test"]["vocoder"], vuv_f1=0.4))
    assert release.release_failures(row) == ["test: vuv_f1 >= Griffin-Lim + 0: model 0.400, Griffin-Lim 0.500"]
