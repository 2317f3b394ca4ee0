"""The layout of a ``vocoder train`` checkpoint lives in one module, :mod:`vocoder.checkpoints.training_layout`: no
other module of the package spells its keys, and what a 2-step run writes reads back through it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import vocoder
from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: F401
from vocoder.checkpoints import training_layout as layout
from vocoder.training.recipes import load_recipe

PACKAGE = Path(vocoder.__file__).resolve().parent
# Keys no module but the layout's may use as keys. STATE_DICT is also our inference format's key (native.py and
# the importers), so it is checked in vocoder/training only, where it can only mean Lightning's.
EVERYWHERE = {layout.HYPER_PARAMETERS, layout.GAN_STEP, layout.CPU_SECONDS, layout.VOCODER, "recipe_name",
              layout.GENERATOR_PREFIX, layout.DISCRIMINATOR_PREFIX}
IN_TRAINING = EVERYWHERE | {layout.STATE_DICT}
_KEY_METHODS = {"get", "pop", "setdefault", "startswith", "endswith"}


def _keys_used(tree: ast.AST):
    """``(line, string)`` for each string constant used as a key: ``x["k"]``, ``{"k": v}``, ``"k" in x``,
    ``x.get("k")`` (``pop``, ``setdefault``), ``s.startswith("k")`` (``endswith``), ``*prefix = "k"``."""
    def const(node):
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for node in ast.walk(tree):
        found = []
        if isinstance(node, ast.Subscript):
            found.append(const(node.slice))
        elif isinstance(node, ast.Dict):
            found += [const(k) for k in node.keys if k is not None]
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            found.append(const(node.left))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
                and node.func.attr in _KEY_METHODS:
            found.append(const(node.args[0]))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("prefix")
                                                  for t in node.targets):
            found.append(const(node.value))
        yield from ((node.lineno, s) for s in found if s is not None)


def test_only_the_layout_module_spells_the_training_checkpoint_keys():
    owner = Path(layout.__file__).resolve()
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() == owner:
            continue
        keys = IN_TRAINING if "training" in path.relative_to(PACKAGE).parts else EVERYWHERE
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offending += [f"{path.relative_to(PACKAGE.parent)}:{line}: {key!r}" for line, key in _keys_used(tree)
                      if key in keys]
    assert not offending, "use vocoder.checkpoints.training_layout instead:\n" + "\n".join(offending)


def test_the_scan_sees_each_way_of_spelling_a_key():
    src = ('a = ck["gan_step"]\nb = {"vocoder": 1}\nc = "cpu_seconds" in ck\nd = ck.get("hyper_parameters")\n'
           'e = k.startswith("discriminator.")\nprefix = "generator."\nf = ck["other"]\nlog("gan_step")\n')
    assert [key for _, key in sorted(_keys_used(ast.parse(src))) if key in EVERYWHERE] == [
        "gan_step", "vocoder", "cpu_seconds", "hyper_parameters", "discriminator.", "generator."]


# ------------------------------------------------------------------------------------------------ a real file


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def test_a_two_step_run_reads_back_through_the_layout(tmp_path):
    from vocoder.training.callbacks import load_training_checkpoint
    from vocoder.training.lightning_module import GANVocoder
    from vocoder.training.runner import train

    recipe_path = RECIPES_DIR / "hifigan_v2.yaml"
    recipe = load_recipe(recipe_path, tiny_overrides(recipe_path) + ["optim.discriminator_start_step=0"])
    res = train(recipe, str(make_audio_dir(tmp_path / "audio")), run_dir=tmp_path / "run", progress_bar=False)
    ck = load_training_checkpoint(res.last_checkpoint)
    module = GANVocoder(recipe)

    assert layout.is_training_checkpoint(ck) and layout.holds_weights(ck)
    assert layout.read_gan_step(ck) == res.gan_step == 2 and layout.read_cpu_seconds(ck) > 0
    assert layout.generator_weights(ck).keys() == module.generator.state_dict().keys()
    assert layout.discriminator_weights(ck).keys() == module.discriminator.state_dict().keys()
    assert all(k.startswith(layout.DISCRIMINATOR_PREFIX) for k in layout.discriminator_weights(ck, strip=False))
    assert layout.recipe_discriminators(ck) == module.recipe["discriminators"]

    trained = layout.read_generator(ck, res.last_checkpoint)
    assert (trained.name, trained.mel) == (module.generator_name, module.mel_config)
    assert trained.meta == {"recipe": module.plan.name, "gan_step": 2, "source": str(res.last_checkpoint.resolve()),
                            "cpu_hours": layout.cpu_hours(layout.read_cpu_seconds(ck))}

    cut = layout.discriminators_only(ck, res.last_checkpoint)
    assert layout.generator_weights(cut) == {} and layout.read_gan_step(cut) == 2
    assert layout.recipe_discriminators(cut) == module.recipe["discriminators"]
    d = layout.discriminator_weights(ck)
    assert all(torch.equal(v, d[k]) for k, v in layout.discriminator_weights(cut).items()) and \
        layout.discriminator_weights(cut).keys() == d.keys()

    module.on_load_checkpoint(ck)  # the writer's own reader: the counters come back
    assert module.gan_step == 2 and module.cpu_seconds >= layout.read_cpu_seconds(ck)
