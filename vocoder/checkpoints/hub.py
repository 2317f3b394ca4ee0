"""Hugging Face Hub repo ids (``"org/name"``, ``"org/name@REVISION"``) -> a local folder or file the loaders read.

    path = resolve_repo("nvidia/bigvgan_v2_22khz_80band_256x")   # .../models--nvidia--bigvgan.../snapshots/<sha>
    generator, mel, meta = load_checkpoint(path)

``huggingface_hub`` does the work: its cache (``HF_HUB_CACHE`` / ``HF_HOME``, or ``cache_dir``), its offline mode
(``HF_HUB_OFFLINE=1``, or ``local_files_only``), its token (``HF_TOKEN`` / ``hf auth login``) for private and gated
repos. The repo's file list decides the layout (:func:`hub_layout`) and only that layout's files are fetched:
ours (``config.json`` + ``model.safetensors``, or one ``.pt``), BigVGAN (``config.json`` +
``bigvgan_generator.pt``, not the discriminator), Vocos (``config.yaml`` + ``pytorch_model.bin``), HiFi-GAN (the
newest ``g_*`` + ``config.json``), ParallelWaveGAN (``config.yml`` + the newest ``checkpoint-<N>steps.pkl`` +
``stats.h5`` / ``stats.npy``). Offline, the list comes from the cache. Every failure is one ``ValueError`` that names
the repo and the revision.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .official import BIGVGAN_WEIGHTS, CONFIG_JSON
from .pwg import PWG_CONFIG
from .safetensors_folder import SAFETENSORS_CONFIG, SAFETENSORS_WEIGHTS
from .state import PathLike
from .vocos import VOCOS_CONFIG, VOCOS_WEIGHTS

__all__ = ["looks_like_repo_id", "split_revision", "hub_layout", "resolve_repo"]

# "org/name" with the Hub's characters, optionally "@revision" (a branch, tag or commit; may hold "/": refs/pr/1).
_REPO_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>\S+))?")
# A missing local file is more likely than a Hub repo named like one.
_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".pkl", ".json", ".yaml", ".yml", ".wav", ".npy")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_HIFIGAN_FILE = re.compile(r"g_\d+(\.pt|\.pth)?")
_PWG_FILE = re.compile(r"checkpoint-(\d+)steps\.pkl")
_NOT_OURS_PT = {BIGVGAN_WEIGHTS, "bigvgan_discriminator_optimizer.pt"}
LAYOUTS = ("ours: config.json + model.safetensors, or one .pt; BigVGAN: config.json + bigvgan_generator.pt; "
           "Vocos: config.yaml + pytorch_model.bin; HiFi-GAN: config.json + g_XXXXXXXX; ParallelWaveGAN: config.yml "
           "+ checkpoint-<N>steps.pkl + stats.h5")


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` reads as ``org/name`` or ``org/name@REVISION`` (not a file name such as ``runs/m.pt``)."""
    m = _REPO_ID.fullmatch(text)
    return bool(m) and not m.group("repo").lower().endswith(_FILE_SUFFIXES)


def split_revision(repo_id: str, revision: Optional[str] = None) -> Tuple[str, str]:
    """``("org/name", revision)`` from ``"org/name@REV"`` and / or ``revision`` (``"main"`` when neither says)."""
    m = _REPO_ID.fullmatch(repo_id)
    if not m:
        raise ValueError(f"expected a Hugging Face repo id 'org/name' or 'org/name@REVISION', got {repo_id!r}")
    inline = m.group("rev")
    if inline and revision and inline != revision:
        raise ValueError(f"{repo_id!r} names revision {inline!r} but revision={revision!r} was given; give one")
    return m.group("repo"), inline or revision or "main"


def hub_layout(files: Sequence[str], where: str = "the repo") -> Tuple[str, List[str], str]:
    """``(layout, files to fetch, entry)`` for a repo holding ``files`` (paths in the repo; only the top level counts).

    ``entry`` is what the loaders get inside the snapshot folder: ``""`` (the folder) or one file name.
    ``ValueError`` listing what the repo holds when no layout fits.
    """
    top = {f for f in files if "/" not in f}
    if {SAFETENSORS_CONFIG, SAFETENSORS_WEIGHTS} <= top:
        return "ours (safetensors)", [SAFETENSORS_CONFIG, SAFETENSORS_WEIGHTS], ""
    if {CONFIG_JSON, BIGVGAN_WEIGHTS} <= top:
        return "BigVGAN", [CONFIG_JSON, BIGVGAN_WEIGHTS], ""
    if {VOCOS_CONFIG, VOCOS_WEIGHTS} <= top:
        return "Vocos", [VOCOS_CONFIG, VOCOS_WEIGHTS], ""
    hifigan = sorted(f for f in top if _HIFIGAN_FILE.fullmatch(f))
    if hifigan and CONFIG_JSON in top:
        return "HiFi-GAN", [CONFIG_JSON, hifigan[-1]], ""
    pwg = sorted((int(m.group(1)), f) for f in top for m in [_PWG_FILE.fullmatch(f)] if m)
    if pwg and PWG_CONFIG in top:
        stats = [f for f in ("stats.h5", "stats.npy") if f in top][:1]
        return "ParallelWaveGAN", [PWG_CONFIG, pwg[-1][1], *stats], ""
    ours = sorted(f for f in top if f.endswith(".pt") and f not in _NOT_OURS_PT)
    if len(ours) == 1:
        return "ours (.pt)", ours, ours[0]
    if len(ours) > 1:
        raise ValueError(f"{where} holds {len(ours)} .pt files ({', '.join(ours[:5])}): which one is the model is "
                         f"not clear; download it with huggingface_hub.hf_hub_download and pass its path")
    shown = sorted(top)[:12]
    raise ValueError(f"{where} holds no model layout this package reads (expected {LAYOUTS}); it holds "
                     f"{shown}{' ...' if len(top) > len(shown) else ''}")


def resolve_repo(repo_id: str, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None,
                 local_files_only: bool = False) -> Path:
    """The local path (snapshot folder, or one file in it) holding the model of Hub repo ``repo_id``.

    Args:
        repo_id: ``"org/name"`` or ``"org/name@REVISION"``.
        revision: a branch, tag or commit (default: ``main``).
        cache_dir: the Hub cache to use (default: huggingface_hub's, ``HF_HUB_CACHE``).
        local_files_only: read the cache only (as ``HF_HUB_OFFLINE=1`` does).
    Raises:
        ValueError: the repo or revision does not exist (or needs a token), holds no layout we read, or its files
            are not cached while downloads are off: one line naming the repo, the revision and how to get the files.
    """
    repo_id, revision = split_revision(repo_id, revision)
    where = f"Hugging Face repo {repo_id} (revision {revision})"
    offline_why = _offline_reason(local_files_only)
    files = None
    if offline_why is None:
        files, offline_why = _list_online(repo_id, revision, where)
    if files is None:  # offline, or the Hub did not answer: the cache is all there is
        files = _list_cached(repo_id, revision, cache_dir)
        try:
            _, needed, entry = hub_layout(files, where)
        except ValueError:  # nothing or part of a model cached: say how to get it, not what the repo lacks
            cached = f" (cached: {', '.join(files[:6])})" if files else ""
            raise ValueError(_not_cached(where, repo_id, revision, None, cache_dir, offline_why) + cached) from None
    else:
        _, needed, entry = hub_layout(files, where)
    paths = [_download(repo_id, name, revision, cache_dir, offline_why, where, needed) for name in needed]
    snapshot = Path(paths[0]).parent
    return snapshot / entry if entry else snapshot


# ---------------------------------------------------------------------------------------------- helpers
def _offline_reason(local_files_only: bool) -> Optional[str]:
    """Why downloads are off (``None``: they are on): ``local_files_only`` or ``HF_HUB_OFFLINE``."""
    from huggingface_hub import constants

    if local_files_only:
        return "local_files_only=True"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") or constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1"
    return None


def _list_online(repo_id: str, revision: str, where: str) -> Tuple[Optional[List[str]], Optional[str]]:
    """``(files, None)`` from the Hub, or ``(None, why)`` when it cannot be reached (then the cache answers)."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                       RevisionNotFoundError)

    try:
        return list(HfApi().list_repo_files(repo_id, revision=revision)), None
    except GatedRepoError:
        raise ValueError(f"{where} is gated: accept its terms on huggingface.co, then log in (`hf auth login`) or "
                         f"set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ValueError(f"{where}: not found on the Hub, and not a local path either (a private repo needs a token: "
                         f"`hf auth login` or HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ValueError(f"{where}: the repo has no revision {revision!r} (a branch, tag or commit)") from None
    except (HfHubHTTPError, OfflineModeIsEnabled) + _connection_errors() as e:
        return None, f"the Hub could not be reached ({type(e).__name__})"


def _connection_errors() -> tuple:
    """The exceptions a failed connection raises: ``OSError`` (requests' included) and the HTTP clients' own."""
    errors = [OSError]
    for module in ("httpx2", "httpx"):  # huggingface_hub's HTTP client, by release
        try:
            errors.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _list_cached(repo_id: str, revision: str, cache_dir: Optional[PathLike]) -> List[str]:
    """The repo's files as the cache knows them: the tree listing a download stored, else the snapshot's files."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    try:
        from huggingface_hub import get_cached_repo_tree  # huggingface_hub >= 1.x

        return [f.path for f in get_cached_repo_tree(repo_id, revision=revision, cache_dir=cache_dir)]
    except Exception:  # older huggingface_hub, or no listing stored: look at the snapshot itself
        pass
    storage = Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = revision
    if not _COMMIT.fullmatch(revision):
        ref = storage / "refs" / revision
        if not ref.is_file():
            return []
        commit = ref.read_text().strip()
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        return []
    return sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())


def _download(repo_id: str, filename: str, revision: str, cache_dir, offline_why: Optional[str], where: str,
              needed: Sequence[str]) -> str:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                               local_files_only=offline_why is not None)
    except LocalEntryNotFoundError:  # before EntryNotFoundError: it is one
        raise ValueError(_not_cached(where, repo_id, revision, needed, cache_dir,
                                     offline_why or "the Hub could not be reached")) from None
    except EntryNotFoundError:
        raise ValueError(f"{where}: file {filename} is listed but could not be fetched") from None
    except (HfHubHTTPError,) + _connection_errors() as e:
        raise ValueError(f"{where}: fetching {filename} failed: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _not_cached(where: str, repo_id: str, revision: str, needed: Optional[Sequence[str]], cache_dir,
                why: str) -> str:
    from huggingface_hub import constants

    cache = cache_dir or constants.HF_HUB_CACHE
    rev = "" if revision == "main" else f" --revision {revision}"
    what = f"the files {', '.join(needed)} are" if needed else "the model is"
    fetch = (f"`hf download {repo_id} {' '.join(needed)}{rev}`" if needed
             else f"`vocoder info --model {repo_id}{rev}` (it fetches only the files the model needs)")
    return (f"{where}: {what} not in the Hugging Face cache ({cache}) and cannot be downloaded now ({why}); fetch them "
            f"once with network access: {fetch}{f' --cache-dir {cache_dir}' if cache_dir else ''}, or run again "
            f"without HF_HUB_OFFLINE / local_files_only")
