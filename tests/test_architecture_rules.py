"""Rules of docs/architecture.md that a lint of imports cannot see: the mel settings define a generator's input in
one place, and a generator's capabilities come from its family's registered spec, not from probing attributes."""
from __future__ import annotations

import ast
from pathlib import Path

import vocoder

PACKAGE = Path(vocoder.__file__).resolve().parent


def _calls(name: str):
    """``file:function`` of every call to a function called ``name`` in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                    if called == name:
                        out.append(f"{path.relative_to(PACKAGE)}:{fn.name}")
    return sorted(set(out))


def test_generator_and_mel_are_reconciled_in_one_place():
    """``config_for_mel`` derives hop_length / n_mels from the mel settings; the after-the-fact check is left only
    where a ready-made generator comes in from outside (a user's module given to Vocoder, or saved)."""
    assert _calls("check_generator_fits_mel") == ["checkpoints/native.py:native_checkpoint",
                                                  "generators/registry.py:config_for_mel",
                                                  "inference.py:__init__"]


def test_capabilities_are_not_probed_with_hasattr():
    """A Fourier head is known from its family's spec (``is_fourier`` / ``spec_of``), not ``hasattr(g, "spectrum")``
    (the phase-oracle helper, which takes wrapped test generators, checks its inputs duck-typed by a loop)."""
    probes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr",
                                                                                                  "getattr"):
                args = node.args
                if len(args) >= 2 and isinstance(args[1], ast.Constant) and args[1].value in (
                        "spectrum", "synthesize", "refined"):
                    probes.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert probes == [], probes


def test_every_generator_module_registers_a_family():
    """A family is its module: the package imports every module of ``vocoder/generators/`` (so a new one needs no
    import line elsewhere), and each module but the registry and the shared helpers registers a family."""
    import importlib
    import pkgutil

    import vocoder.generators as generators
    from vocoder.generators import generator_names

    registered = {}
    for m in pkgutil.iter_modules(generators.__path__):
        if m.name in ("registry", "common"):
            continue
        module = importlib.import_module(f"vocoder.generators.{m.name}")
        registered[m.name] = sorted(obj.registry_name for obj in vars(module).values()
                                    if isinstance(obj, type) and obj.__module__ == module.__name__
                                    and getattr(obj, "registry_name", None) in generator_names())
    assert all(registered.values()), registered
    assert sorted(n for names in registered.values() for n in names) == generator_names()
