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


def _row(step, model_mos, gl_mos, model_mstft, gl_mstft, reference_mos=3.9):
    m = {k: 0.5 for k in ("pesq", "stoi", "mel_l1", "mcd", "periodicity", "vuv_f1", "dnsmos_ovrl")}
    split = {"vocoder": {**m, "distillmos": model_mos, "mstft": model_mstft},
             "griffin_lim": {**m, "distillmos": gl_mos, "mstft": gl_mstft},
             "reference": {"distillmos": reference_mos, "dnsmos_ovrl": 3.1}}
    k_table = {"model+0": {s: {**m, "distillmos": gl_mos, "mstft": model_mstft} for s in ("test", "samples")},
               "rtpghi+0": {s: split["vocoder"] for s in ("test", "samples")}}
    return {"date": "2026-11-25T00:00:00+00:00", "gan_step": step, "phase": "GAN-free",
            "train_hours": 2.5, "test_per_source": 8, "test_clips": 24, "samples_clips": 4,
            "phase_method": "rtpghi", "phase_iterations": 0, "k_table": k_table, "candidates": ["rtpghi+0"],
            "speed_x_realtime": {"model+0": 120.0, "rtpghi+0": 30.5},
            "clip_wins": {s: {k: [3, 1, 0] for k in ("distillmos", "dnsmos_ovrl", "mstft", "periodicity", "vuv_f1")}
                          for s in ("test", "samples")},
            "isa": "AVX-512 (test CPU)", "test": split, "samples": split}


def test_model_card_reports_every_release_the_gate_and_the_k_table(release, tmp_path):
    meta = {"name": "default_22khz", "generator": "vocos", "parameters": 9097347}
    progress = [_row(4728, 2.4, 2.7, 1.54, 1.46), _row(12000, 3.1, 2.7, 1.2, 1.46)]
    card = tmp_path / "MODEL_CARD.md"
    release.write_card(card, meta, progress, [Path("x.wav")] * 24, "data/corpus")
    text = card.read_text()
    assert "12,000 steps" in text and "| 4,728 |" in text and "| 12,000 |" in text
    assert "This release **passes**" in text
    assert "reference clips (MOS ceiling) | 3.900 | 3.100 |" in text
    assert "RTPGHI (frame by frame" in text and "K = 0 fast Griffin-Lim iterations" in text
    assert "default model (rtpghi+0)" in text
    k_rows = [line for line in text.splitlines()
              if line.startswith("| model+0 |") or line.startswith("| rtpghi+0 (shipped) |")]
    assert len(k_rows) == 2
    assert k_rows[0].endswith("| fails 2 | 120.0 |")   # DistillMOS below Griffin-Lim + 0.3 on both splits
    assert k_rows[1].endswith("| passes | 30.5 |")
    assert "| test | 3 / 1 / 0 |" in text and "AVX-512 (test CPU)" in text
    release.write_card(card, meta, progress[:1], [Path("x.wav")] * 24, "data/corpus")
    text = card.read_text()
    assert "This release **fails**" in text
    assert "distillmos >= min(Griffin-Lim + 0.3, reference) = 3.000: model 2.400, Griffin-Lim 2.700" in text
    assert "mstft <= Griffin-Lim - 0.05 = 1.410: model 1.540, Griffin-Lim 1.460" in text


def test_release_failures_check_both_splits_with_the_revised_gate(release):
    row = _row(1, 3.1, 2.7, 1.2, 1.46)
    assert release.release_failures(row) == []
    row["test"] = dict(row["test"], vocoder=dict(row["test"]["vocoder"], vuv_f1=0.4))
    assert release.release_failures(row) == [
        "test: vuv_f1 >= Griffin-Lim - 0.02 = 0.480: model 0.400, Griffin-Lim 0.500"]
    # the reference cap: Griffin-Lim + 0.3 = 3.0 is above the reference clips' 2.9, which is all a model must reach
    assert release.release_failures(_row(1, 2.9, 2.7, 1.2, 1.46, reference_mos=2.9)) == []
    assert release.release_failures(_row(1, 2.85, 2.7, 1.2, 1.46, reference_mos=2.9))[0].startswith(
        "samples: distillmos")


def test_parse_table(release):
    assert release.parse_table(["model:0,16", "rtpghi:4"]) == [("model", 0), ("model", 16), ("rtpghi", 4)]
    for bad in ("gl:0", "model", "model:", "model:-1", "model:x"):
        with pytest.raises(ValueError, match="METHOD"):
            release.parse_table([bad])


def test_speed_restores_the_shipped_setting(release):
    import torch

    from vocoder import Vocoder
    from vocoder.generators import build_generator
    from vocoder.generators.vocos import VocosConfig
    from vocoder.audio.mel import MelConfig

    mel = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000)
    torch.manual_seed(0)
    voc = Vocoder(build_generator("vocos", VocosConfig(n_mels=80, dim=16, intermediate_dim=32, num_layers=1)), mel,
                  phase_iterations=4, phase="rtpghi")
    clip = REPO / "samples" / sorted(p.name for p in (REPO / "samples").glob("*.wav"))[0]
    speeds = release.speed(voc, [clip], [("model", 0), ("rtpghi", 4)], seconds=1.0, repeat=1)
    assert set(speeds) == {"model+0", "rtpghi+4"} and all(v > 0 for v in speeds.values())
    assert (voc.phase, voc.phase_iterations) == ("rtpghi", 4)


def test_the_first_candidate_that_passes_ships(release):
    good, bad = _row(1, 3.1, 2.7, 1.2, 1.46), _row(1, 2.4, 2.7, 1.2, 1.46)

    def reports(row):
        return {split: {"mean": row[split]} for split in ("samples", "test")}

    scored = {"rtpghi+0": reports(bad), "rtpghi+4": reports(good), "model+16": reports(good)}
    assert release.first_passing(scored, [("rtpghi", 0), ("rtpghi", 4), ("model", 16)]) == ("rtpghi", 4)
    assert release.first_passing(scored, [("model", 16), ("rtpghi", 4)]) == ("model", 16)
    assert release.first_passing(scored, [("rtpghi", 0)]) is None


def test_release_failures_include_the_better_pinv_floor(release):
    row = _row(1, 3.1, 2.7, 1.2, 1.46)
    row["test"] = dict(row["test"])  # _row shares one dict between the splits
    for split in ("samples", "test"):
        row[split]["pinv_rtpghi"] = {"distillmos": 3.0, "pesq": 0.4, "mstft": 1.5}
        row[split]["pinv_pghi"] = {"distillmos": 2.9, "pesq": 0.45, "mstft": 1.3}
    assert release.release_failures(row) == []     # the model: DistillMOS 3.1, PESQ 0.5, M-STFT 1.2
    row["test"]["pinv_pghi"] = dict(row["test"]["pinv_pghi"], mstft=1.1)
    assert release.release_failures(row) == [
        "test: mstft <= the better pinv + PGHI / RTPGHI floor: model 1.200, floor 1.100"]


def test_a_release_records_the_phase_setting_and_the_step_offset(release, tmp_path, monkeypatch):
    """main() end to end with the scoring replaced: the file it writes holds the first passing candidate's phase
    setting and the warm start's step added to the run's own."""
    import torch

    from vocoder import Vocoder
    from vocoder.audio.mel import MelConfig
    from vocoder.generators import build_generator
    from vocoder.generators.vocos import VocosConfig

    torch.manual_seed(0)
    mel = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000)
    voc = Vocoder(build_generator("vocos", VocosConfig(n_mels=80, dim=16, intermediate_dim=32, num_layers=1)), mel)
    voc.save(tmp_path / "run.pt", meta={"gan_step": 500})
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "test.txt").write_text("wav/src/spk/a.wav\n")
    good, bad = _row(1, 3.1, 2.7, 1.2, 1.46), _row(1, 2.4, 2.7, 1.2, 1.46)

    def fake_scores(voc, splits, settings):
        def report(row, split):
            return {"mean": row[split], "systems": ["vocoder", "griffin_lim"], "n_clips": 1, "clips": []}
        return {release.setting_key(*s): {split: report(good if s == ("rtpghi", 4) else bad, split)
                                         for split in splits} for s in settings}

    monkeypatch.setattr(release, "score_table", fake_scores)
    monkeypatch.setattr(release, "speed", lambda voc, clips, settings: {release.setting_key(*s): 1.0 for s in settings})
    out = tmp_path / "out"
    assert release.main([str(tmp_path / "run.pt"), "--ship", "rtpghi:0", "rtpghi:4", "--table", "model:0",
                         "--train-hours", "1.5", "--step-offset", "24000", "--corpus", str(tmp_path / "corpus"),
                         "--out", str(out), "--threads", "1"]) == 0
    shipped = Vocoder.from_pretrained(str(out / "default.pt"))
    assert (shipped.phase, shipped.phase_iterations) == ("rtpghi", 4)
    assert shipped.meta["gan_step"] == 24500
    assert "24,500 steps" in (out / "MODEL_CARD.md").read_text()
