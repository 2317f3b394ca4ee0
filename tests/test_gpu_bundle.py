"""scripts/gpu_bundle.py: a balanced, lossless FLAC subset within its size budget, listed for `vocoder train`."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import REPO, load_script


@pytest.fixture(scope="module")
def bundle():
    return load_script(REPO / "scripts" / "gpu_bundle.py")


def test_balanced_order_keeps_each_sources_share_in_every_prefix(bundle):
    lines = [f"wav/a/s/{i}.wav" for i in range(60)] + [f"wav/b/s/{i}.wav" for i in range(30)] \
        + [f"wav/c/s/{i}.wav" for i in range(10)]
    order = bundle.balanced_order(list(lines), seed=0)
    assert sorted(order) == sorted(lines)
    assert bundle.balanced_order(list(lines), seed=0) == order
    counts = Counter(Path(r).parts[1] for r in order[:20])
    assert abs(counts["a"] - 12) <= 2 and abs(counts["b"] - 6) <= 2 and abs(counts["c"] - 2) <= 1


def test_flac_subset_is_lossless_and_within_budget(bundle, tmp_path):
    corpus = tmp_path / "corpus"
    rng = np.random.default_rng(0)
    rels = []
    for i in range(6):
        rel = f"wav/src/spk/{i}.wav"
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(corpus / rel, (rng.standard_normal(22050) * 3000).astype(np.int16), 22050, subtype="PCM_16")
        rels.append(rel)
    out = tmp_path / "bundle"
    one = (corpus / rels[0]).stat().st_size  # noise hardly compresses: a FLAC is about a WAV's size
    written = bundle.to_flac(corpus, rels, out, budget_bytes=int(2.5 * one))
    assert 1 <= len(written) <= 3 and written == [r.replace(".wav", ".flac") for r in rels[:len(written)]]
    assert sum((out / w).stat().st_size for w in written) <= 2.5 * one
    assert not (out / rels[len(written)].replace(".wav", ".flac")).exists()  # the one over budget is removed
    for rel, w in zip(rels, written):
        a, _ = sf.read(corpus / rel, dtype="int16")
        b, sr = sf.read(out / w, dtype="int16")
        assert sr == 22050 and np.array_equal(a, b)


def test_corpus_lists_are_read_as_vocoder_train_reads_them(bundle, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "wav" / "a").mkdir(parents=True)
    (corpus / "train.txt").write_text("# the training split\nwav/a/1.wav\n\nwav/a/2.wav  # second\n")
    assert bundle.corpus_list(corpus, "train.txt") == ["wav/a/1.wav", "wav/a/2.wav"]
    (corpus / "val.txt").write_text(f"{tmp_path / 'elsewhere.wav'}\n")
    with pytest.raises(ValueError, match="outside"):
        bundle.corpus_list(corpus, "val.txt")
