"""recipes/data/build_corpus.py: the hedgewars-data source (pure functions; no network, no sox)."""
from pathlib import Path

from helpers import load_script

PATH = Path(__file__).resolve().parents[2] / "recipes" / "data" / "build_corpus.py"


def _bc():
    return load_script(PATH)


def _pkgs():
    return {p.name: p for p in _bc().PACKAGES}


def test_hedgewars_packs_are_speakers_robot_left_out():
    bc = _bc()
    hw = _pkgs()["hedgewars-data"]
    assert hw.licence == "GFDL-1.3" and bc.PACKAGES[-1] is hw  # last: duplicates keep the older sources' copy
    root = Path("/x")
    voice = root / bc.HEDGEWARS_VOICES
    assert bc.describe(hw, root, voice / "Mobster" / "Hello.ogg") == ("en", "hedgewars_mobster", "Hello")
    assert bc.describe(hw, root, voice / "Default_uk" / "Uh-oh.ogg") == ("uk", "hedgewars_default_uk", "Uh-oh")
    assert bc.describe(hw, root, voice / "Russian_pl" / "Ow1.ogg")[:2] == ("pl", "hedgewars_russian_pl")
    assert bc.describe(hw, root, voice / "HillBilly" / "Ow1.ogg")[:2] == ("en", "hedgewars_hillbilly")
    assert bc.describe(hw, root, voice / "Robot" / "Hello.ogg") is None
    assert "Robot" in hw.left_out
    assert [bc.hedgewars_language(p) for p in ("Default", "Default_es", "Russian", "Singer")] == ["en", "es", "en", "en"]


def test_collect_drops_duplicates_across_packs_and_the_processed_pack(tmp_path):
    bc = _bc()
    hw = _pkgs()["hedgewars-data"]
    root = tmp_path / hw.name
    (root / ".unpacked").parent.mkdir(parents=True)
    (root / ".unpacked").touch()  # unpack() then leaves the tree alone
    for rel, data in [("Classic/Ooff1.ogg", b"same"), ("Default/Ooff1.ogg", b"same"), ("Default/Hello.ogg", b"d"),
                      ("Robot/Hello.ogg", b"r"), ("Mobster/Hello.ogg", b"m")]:
        f = root / bc.HEDGEWARS_VOICES / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    clips, dropped = bc.collect([hw], {hw.name: None}, tmp_path)
    assert [c.dest.as_posix() for c in clips] == [
        "wav/hedgewars/hedgewars_classic/Ooff1.wav",  # first copy (sorted paths) kept once
        "wav/hedgewars/hedgewars_default/Hello.wav",
        "wav/hedgewars/hedgewars_mobster/Hello.wav",
    ]
    assert dropped == {"duplicate content": 1, hw.left_out: 1}


def test_adding_hedgewars_leaves_the_other_splits_unchanged():
    bc = _bc()
    pkgs = _pkgs()
    old = [(pkgs["fillets-ng-data-cs"], "fillets_cs_m"), (pkgs["fillets-ng-data-cs"], "fillets_cs_x"),
           (pkgs["klettres-data"], "klettres_fr"), (pkgs["klettres-data"], "klettres_nl"),
           (pkgs["ktuberling-data"], "ktuberling_en"), (pkgs["fillets-ng-data-nl"], "fillets_nl_p")]
    hw = pkgs["hedgewars-data"]
    new = [(hw, f"hedgewars_{p}") for p in ("mobster", "british", "default", "pirate", "singer")]

    def clips(sources, n=30):
        return [bc.Clip(Path(f"/s/{spk}/{i}.ogg"), p, "xx", spk, Path(f"wav/{spk}/{i:02d}.wav"), 22050,
                        0.6 if i % 3 == 0 else 1.5)
                for p, spk in sources for i in range(n)]

    alone = clips(old)
    bc.split(alone, set(bc.TEST_SPEAKERS), val_clips=40, seed=1234)
    both = clips(old) + clips(new)
    bc.split(both, set(bc.TEST_SPEAKERS), val_clips=40, seed=1234)
    assert [(c.dest, c.split) for c in both[:len(alone)]] == [(c.dest, c.split) for c in alone]

    added = both[len(alone):]
    assert {c.speaker for c in added if c.split == "test"} == {"hedgewars_mobster", "hedgewars_british"}
    val = [c for c in added if c.split == "val"]
    assert len(val) == hw.val_clips == 10
    assert all(c.seconds >= 1.0 and c.speaker not in bc.TEST_SPEAKERS for c in val)
    again = clips(new)
    bc.split(again, set(bc.TEST_SPEAKERS), val_clips=40, seed=1234)  # its own draw: same without the others
    assert [c.split for c in again] == [c.split for c in added]
