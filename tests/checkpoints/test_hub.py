"""Hugging Face Hub repo ids: a real Hub cache on disk (``models--org--name/{blobs, snapshots/COMMIT, refs}``, as
huggingface_hub writes it) holding official BigVGAN / Vocos folders built with the ``bigvgan`` and ``vocos``
packages (random weights) and our own layouts, read with ``HF_HUB_OFFLINE=1``: each equals loading the same folder
directly. Nothing here touches the network: online listing and downloads are replaced where a test needs them."""
import hashlib
import os
import re
from pathlib import Path

import pytest
import torch

from vocoder.checkpoints.hub import hub_layout, looks_like_repo_id, split_revision
from vocoder.cli.main import build_parser, main
from vocoder.cli.model_args import load_model
from vocoder.inference import Vocoder

from test_formats import _bigvgan_h, _official_bigvgan, _write_bigvgan_folder  # noqa: E402
from test_safetensors import MEL_IN, same_weights, tiny_hifigan, tiny_vocos  # noqa: E402

huggingface_hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import constants as hf_constants  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread_per_module"),
              pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning")]


def hub_cache(cache: Path, repo: str, folder: Path, revision: str = "main", commit: str = None) -> str:
    """Store ``folder``'s files in ``cache`` as a huggingface_hub download leaves them; returns the commit."""
    commit = commit or hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
    storage = cache / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (storage / "blobs").mkdir(exist_ok=True)
    for p in sorted(folder.iterdir()):
        data = p.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / p.name).symlink_to(os.path.relpath(blob, snapshot))
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        (storage / "refs").mkdir(exist_ok=True)
        (storage / "refs" / revision).write_text(commit)
    return commit


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """``HF_HUB_OFFLINE=1`` (the environment and huggingface_hub's own flag, read at its import) and an empty cache
    at ``tmp_path / "hub"``, also the default cache (for callers that pass no cache_dir)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return cache


def official_bigvgan_folder(folder: Path) -> Path:
    h = _bigvgan_h("v2")
    official = _official_bigvgan(h)
    official.remove_weight_norm()  # the published v2 files hold folded weights
    return _write_bigvgan_folder(folder, h, official.state_dict())


def test_bigvgan_repo_equals_its_folder(tmp_path, offline):
    folder = official_bigvgan_folder(tmp_path / "bigvgan")
    commit = hub_cache(offline, "nvidia/bigvgan-tiny", folder)
    direct = Vocoder.from_pretrained(folder)
    voc = Vocoder.from_pretrained("nvidia/bigvgan-tiny", cache_dir=offline)
    same_weights(direct, voc)
    assert voc.mel_config == direct.mel_config and voc.meta["source"] == "bigvgan"
    assert voc.meta["hub"] == f"nvidia/bigvgan-tiny@{commit}"
    assert torch.equal(voc(MEL_IN), direct(MEL_IN))


def test_vocos_repo_equals_its_folder(tmp_path, offline, capsys):
    from test_vocos import clip, official_hparams, write_official

    model = write_official(tmp_path / "vocos", official_hparams("center"))
    hub_cache(offline, "charactr/vocos-tiny", tmp_path / "vocos")
    direct = Vocoder.from_pretrained(tmp_path / "vocos")
    voc = Vocoder.from_pretrained("charactr/vocos-tiny")  # the default cache, HF_HUB_OFFLINE from the environment
    same_weights(direct, voc)
    feats = model.feature_extractor(clip(16000)[None])
    assert torch.equal(voc(feats), direct(feats))
    assert main(["info", "--model", "charactr/vocos-tiny", "--cache-dir", str(offline), "--json"]) == 0
    assert '"hub": "charactr/vocos-tiny@' in capsys.readouterr().out


def test_our_layouts_and_revisions(tmp_path, offline):
    voc = tiny_vocos(meta={"step": 7}, phase="rtpghi", phase_iterations=2)
    voc.save_pretrained(tmp_path / "st")
    tag_commit = hub_cache(offline, "us/tiny", tmp_path / "st", revision="v1")
    (tmp_path / "pt").mkdir()
    tiny_hifigan(True).save(tmp_path / "pt" / "model.pt")
    hub_cache(offline, "us/tiny", tmp_path / "pt", revision="main")
    for kwargs in ({"path": "us/tiny@v1"}, {"path": "us/tiny", "revision": "v1"},
                   {"path": "us/tiny", "revision": tag_commit}, {"path": f"us/tiny@{tag_commit}"}):
        back = Vocoder.from_pretrained(cache_dir=offline, **kwargs)
        same_weights(voc, back)
        assert back.phase == "rtpghi" and back.phase_iterations == 2 and back.meta["step"] == 7
        assert torch.equal(back(MEL_IN), voc(MEL_IN))
    pt = Vocoder.from_pretrained("us/tiny", cache_dir=offline)  # main holds one .pt
    same_weights(Vocoder.from_pretrained(tmp_path / "pt" / "model.pt"), pt)
    with pytest.raises(ValueError, match="names revision 'v1' but revision='v2'"):
        Vocoder.from_pretrained("us/tiny@v1", revision="v2", cache_dir=offline)


def test_a_local_path_wins_over_a_repo_id(tmp_path, offline, monkeypatch):
    tiny_vocos().save_pretrained(tmp_path / "hub_copy")
    hub_cache(offline, "us/tiny", tmp_path / "hub_copy")
    monkeypatch.chdir(tmp_path)
    local = tiny_hifigan(True)
    local.save_pretrained(tmp_path / "us" / "tiny")
    voc = Vocoder.from_pretrained("us/tiny", cache_dir=offline)
    assert voc.generator_name == "hifigan" and "hub" not in voc.meta
    same_weights(local, voc)



def test_init_generator_takes_a_repo_id(tmp_path, offline):
    """``vocoder train --init-generator org/name`` (``generator.init``): the repo's generator, as from_pretrained
    reads it, fills the recipe; a repo whose files are not cached is the same one clear error, named."""
    from vocoder.training.generator_init import resolve_generator_init

    voc = tiny_hifigan(True)
    voc.save_pretrained(tmp_path / "st")
    hub_cache(offline, "us/tiny-hifigan", tmp_path / "st", revision="v1")
    recipe = {"generator": {"name": "hifigan", "config": {}, "init": "us/tiny-hifigan@v1"}}
    filled, init = resolve_generator_init(recipe)
    assert filled["generator"]["config"] and filled["mel"] == voc.mel_config.to_dict()
    assert init.path.startswith(str(offline)) and init.name == "hifigan"
    assert init.state_dict.keys() == voc.generator.state_dict().keys()
    assert all(torch.equal(init.state_dict[k], v) for k, v in voc.generator.state_dict().items())
    with pytest.raises(ValueError, match=r"generator.init: .*us/missing.*HF_HUB_OFFLINE"):
        resolve_generator_init({"generator": {"name": "hifigan", "config": {}, "init": "us/missing"}})

def test_offline_without_the_files_is_one_clear_error(tmp_path, offline, monkeypatch, capsys):
    with pytest.raises(ValueError) as e:
        Vocoder.from_pretrained("nvidia/bigvgan-tiny", revision="v2.1", cache_dir=offline)
    msg = str(e.value)
    assert "nvidia/bigvgan-tiny" in msg and "revision v2.1" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "vocoder info --model nvidia/bigvgan-tiny --revision v2.1" in msg and "\n" not in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no traceback from the hub client
    # part of a model cached: the same error, listing what is there
    folder = official_bigvgan_folder(tmp_path / "bigvgan")
    (folder / "bigvgan_generator.pt").unlink()
    hub_cache(offline, "nvidia/bigvgan-tiny", folder)
    with pytest.raises(ValueError, match=r"revision main\): the model is not in the Hugging Face cache .*"
                                         r"\(cached: config.json\)"):
        Vocoder.from_pretrained("nvidia/bigvgan-tiny", cache_dir=offline)
    # local_files_only without HF_HUB_OFFLINE says so
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ValueError, match=r"cannot be downloaded now \(local_files_only=True\)"):
        Vocoder.from_pretrained("org/missing", local_files_only=True, cache_dir=offline)
    # the CLI: one line, exit 2
    assert main(["info", "--model", "org/missing", "--local-files-only", "--cache-dir", str(offline)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "org/missing (revision main)" in err and "Traceback" not in err


def test_names_that_are_not_repo_ids():
    assert looks_like_repo_id("nvidia/bigvgan_v2_22khz_80band_256x") and looks_like_repo_id("a/b@refs/pr/1")
    assert not looks_like_repo_id("runs/model.pt") and not looks_like_repo_id("/abs/path")
    assert not looks_like_repo_id("a/b/c") and not looks_like_repo_id("hifigan_v1")
    assert split_revision("a/b@refs/pr/1") == ("a/b", "refs/pr/1") and split_revision("a/b") == ("a/b", "main")
    with pytest.raises(ValueError, match="neither a file, a folder nor a preset name .*, nor a Hugging Face repo id"):
        Vocoder.from_pretrained("runs/missing.pt")


BIGVGAN_REPO = ["README.md", ".gitattributes", "config.json", "bigvgan_generator.pt",
                "bigvgan_discriminator_optimizer.pt", "activations.py", "alias_free_activation/cuda/load.py"]


@pytest.mark.parametrize("files, needed, entry", [
    (BIGVGAN_REPO, ["config.json", "bigvgan_generator.pt"], ""),
    (["config.yaml", "pytorch_model.bin", "README.md"], ["config.yaml", "pytorch_model.bin"], ""),
    (["config.json", "model.safetensors", "model.pt"], ["config.json", "model.safetensors"], ""),
    (["README.md", "default.pt"], ["default.pt"], "default.pt"),
    (["config.json", "g_00100000", "g_02500000", "do_02500000"], ["config.json", "g_02500000"], ""),
    (["config.yml", "checkpoint-100steps.pkl", "checkpoint-2000steps.pkl", "checkpoint-300steps.pkl", "stats.h5",
      "stats.npy"], ["config.yml", "checkpoint-2000steps.pkl", "stats.h5"], ""),
])
def test_only_the_layouts_files_are_fetched(files, needed, entry):
    assert hub_layout(files)[1:] == (needed, entry)


def test_unknown_or_ambiguous_repos_are_named():
    with pytest.raises(ValueError, match=r"no model layout .* it holds \['README.md', 'tokenizer.json'\]"):
        hub_layout(["README.md", "tokenizer.json"], "repo x")
    with pytest.raises(ValueError, match="holds 2 .pt files"):
        hub_layout(["a.pt", "b.pt"])


def test_online_fetches_only_the_generator(tmp_path, offline, monkeypatch):
    """The online path with the Hub replaced: the listing has the discriminator, only the generator is fetched."""
    folder = official_bigvgan_folder(tmp_path / "bigvgan")
    hub_cache(offline, "nvidia/bigvgan-tiny", folder)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # online as far as our code knows; the client itself stays offline
    fetched = []
    real = huggingface_hub.hf_hub_download

    def listing(self, repo_id, revision=None, **kw):
        assert (repo_id, revision) == ("nvidia/bigvgan-tiny", "main")
        return BIGVGAN_REPO

    def download(repo_id, filename, **kw):
        assert kw["local_files_only"] is False
        fetched.append(filename)
        return real(repo_id, filename, **{**kw, "local_files_only": True})

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", listing)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    voc = Vocoder.from_pretrained("nvidia/bigvgan-tiny", cache_dir=offline)
    assert fetched == ["config.json", "bigvgan_generator.pt"]
    same_weights(Vocoder.from_pretrained(folder), voc)


def test_cli_serve_and_plugins_take_repo_ids(tmp_path, offline):
    voc = tiny_vocos(phase_iterations=1)
    voc.save_pretrained(tmp_path / "st")
    hub_cache(offline, "us/tiny", tmp_path / "st", revision="v1")
    args = build_parser().parse_args(["serve", "--model", "us/tiny", "--revision", "v1", "--cache-dir", str(offline)])
    same_weights(voc, load_model(args))
    from vocoder.cli.serve import config_from_args

    assert config_from_args(args).model_name == "us/tiny@v1"  # what /v1/info calls the model
    args = build_parser().parse_args(["export", "--format", "safetensors", "us/tiny@v1", str(tmp_path / "out")])
    assert args._run(args) == 0
    same_weights(voc, Vocoder.from_pretrained(tmp_path / "out"))
    from vocoder.plugins.adapters import ESPnetVocoder
    from vocoder.plugins.tts import VocoderPlugin

    same_weights(voc, VocoderPlugin.from_pretrained("us/tiny@v1").vocoder)  # the default cache
    same_weights(voc, ESPnetVocoder(model="us/tiny@v1").vocoder)


def test_parallel_wavegan_repo_equals_its_run(tmp_path, offline):
    from test_pwg import CASES, _write_run

    kind, params = CASES["hifigan"]
    _write_run(tmp_path / "run", kind, params)
    hub_cache(offline, "espnet/pwg-tiny", tmp_path / "run")
    direct = Vocoder.from_pretrained(tmp_path / "run")
    voc = Vocoder.from_pretrained("espnet/pwg-tiny", cache_dir=offline)
    same_weights(direct, voc)
    mel = torch.randn(direct.n_mels, 10, generator=torch.Generator().manual_seed(2)) - 4
    assert torch.equal(voc(mel), direct(mel))
