"""Weight normalisation that writes the state-dict keys official HiFi-GAN / BigVGAN / MelGAN checkpoints use.

A weight-normed layer holds ``weight_g`` (``[C_out, 1, ...]`` for ``dim=0``) and ``weight_v`` (the shape of the
weight) and computes ``weight = g * v / ||v||`` before every forward, exactly like the (deprecated)
``torch.nn.utils.weight_norm`` the official repositories were trained with.

Why not ``torch.nn.utils.weight_norm`` itself: it leaves a non-leaf ``weight`` tensor on the module after a
forward with grad, so ``copy.deepcopy(generator)`` (EMA copies, "copy then fold for export") fails. Here the
hook keeps a detached copy between forwards. Why not ``torch.nn.utils.parametrizations.weight_norm``: its keys
are ``parametrizations.weight.original0/1``, not the official ``weight_g/weight_v``.

Every layer this module touches also accepts, in ``load_state_dict``, any of the three spellings of its weight:
``weight_g``/``weight_v``, ``parametrizations.weight.original0``/``original1`` (newer checkpoints), or a folded
``weight`` -- converted to whatever the layer currently holds (normed or folded).

All of the package's weight-norm handling lives here: applying and removing it, the weight a layer applies
now (:func:`effective_weight`), folding every flavour in a model (:func:`fold_weight_norm`), and reading the
three spellings of a state-dict key (:func:`weight_key_kind`, :func:`norm_dim`), which the checkpoint readers use.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm

__all__ = ["weight_norm", "remove_weight_norm", "has_weight_norm", "effective_weight", "fold_weight_norm",
           "detach_weight", "weight_key_kind", "norm_dim", "WEIGHT_G_NAMES", "WEIGHT_V_NAMES"]

# The spellings of the two halves of one weight-normed weight; with a folded ``weight`` that makes three spellings.
WEIGHT_G_NAMES = ("weight_g", "parametrizations.weight.original0")
WEIGHT_V_NAMES = ("weight_v", "parametrizations.weight.original1")
_PARAM_KEYS = (WEIGHT_G_NAMES[1], WEIGHT_V_NAMES[1])


def weight_key_kind(key: str) -> Tuple[str, str]:
    """``"a.b.weight_v" -> ("a.b.weight", "v")``: the logical key and the kind, ``"g"``, ``"v"``, ``"w"`` (a plain
    weight) or ``"other"``, whichever of the three spellings ``key`` uses."""
    for suffix in WEIGHT_G_NAMES:
        if key.endswith("." + suffix) or key == suffix:
            return key[: len(key) - len(suffix)] + "weight", "g"
    for suffix in WEIGHT_V_NAMES:
        if key.endswith("." + suffix) or key == suffix:
            return key[: len(key) - len(suffix)] + "weight", "v"
    if key.endswith(".weight") or key == "weight":
        return key, "w"
    return key, "other"


def norm_dim(g_shape, v_shape) -> int:
    """The ``dim`` weight norm was applied with, read from the shapes of ``g`` and ``v`` (-1: over everything)."""
    if len(g_shape) == 0:
        return -1
    for d, (a, b) in enumerate(zip(g_shape, v_shape)):
        if a != 1 and a == b:
            return d
    return 0


class _WeightNormHook:
    """Forward pre-hook: ``module.weight = g * v / ||v||`` (norm over every dim except ``dim``)."""

    def __init__(self, dim: int):
        self.dim = dim

    def compute(self, module: nn.Module) -> torch.Tensor:
        return torch._weight_norm(module.weight_v, module.weight_g, self.dim)

    def __call__(self, module: nn.Module, inputs) -> None:
        module.__dict__["weight"] = self.compute(module)


def detach_weight(module: nn.Module, inputs, output) -> None:
    """Forward hook: drop the autograd history of a ``weight`` attribute that a pre-hook recomputes (weight norm,
    ``torch.nn.utils.spectral_norm``) once the forward has used it, so ``copy.deepcopy`` and pickling work."""
    w = module.__dict__.get("weight")
    if isinstance(w, torch.Tensor) and w.grad_fn is not None:
        module.__dict__["weight"] = w.detach()


class _LoadHook:
    """``load_state_dict`` pre-hook translating the three weight spellings into the module's current one."""

    def __init__(self, dim: int):
        self.dim = dim

    def __call__(self, module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
        g_key, v_key, w_key = prefix + "weight_g", prefix + "weight_v", prefix + "weight"
        p0, p1 = prefix + _PARAM_KEYS[0], prefix + _PARAM_KEYS[1]
        if p0 in state_dict and p1 in state_dict and g_key not in state_dict:
            state_dict[g_key] = state_dict.pop(p0)
            state_dict[v_key] = state_dict.pop(p1)
        if has_weight_norm(module):
            if g_key not in state_dict and w_key in state_dict:
                w = state_dict.pop(w_key)
                state_dict[g_key] = torch.norm_except_dim(w, 2, self.dim)
                state_dict[v_key] = w
        elif w_key not in state_dict and g_key in state_dict and v_key in state_dict:
            g, v = state_dict.pop(g_key), state_dict.pop(v_key)
            state_dict[w_key] = torch._weight_norm(v, g, self.dim)


def _register_load_pre_hook(module: nn.Module, hook) -> None:
    """``module.register_load_state_dict_pre_hook(hook)``; torch 2.4 has it only as the private
    ``_register_load_state_dict_pre_hook(hook, with_module=True)``, which the public one (2.5+) calls."""
    public = getattr(module, "register_load_state_dict_pre_hook", None)
    if public is not None:
        public(hook)
    else:
        module._register_load_state_dict_pre_hook(hook, with_module=True)


def _find_hook(module: nn.Module):
    for hid, hook in module._forward_pre_hooks.items():
        if isinstance(hook, _WeightNormHook):
            return hid, hook
    return None, None


def has_weight_norm(module: nn.Module) -> bool:
    """True when ``module`` currently computes its weight from ``weight_g`` / ``weight_v``."""
    return _find_hook(module)[1] is not None


def weight_norm(module: nn.Module, dim: int = 0) -> nn.Module:
    """Weight-normalise ``module.weight`` in place (keys ``weight_g``, ``weight_v``); returns the module."""
    if has_weight_norm(module):
        raise ValueError(f"weight norm is already applied to {module}")
    weight = module._parameters.get("weight")
    if not isinstance(weight, nn.Parameter):
        raise ValueError(f"expected a module with a 'weight' parameter, got {type(module).__name__}")
    del module._parameters["weight"]
    module.register_parameter("weight_g", nn.Parameter(torch.norm_except_dim(weight, 2, dim).data))
    module.register_parameter("weight_v", nn.Parameter(weight.data))
    hook = _WeightNormHook(dim)
    module.__dict__["weight"] = hook.compute(module).detach()
    module.register_forward_pre_hook(hook)
    module.register_forward_hook(detach_weight)
    if not getattr(module, "_vocoder_wn_load_hook", False):
        _register_load_pre_hook(module, _LoadHook(dim))
        module._vocoder_wn_load_hook = True
    return module


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold ``g * v / ||v||`` into a plain ``weight`` parameter; a no-op on a layer without weight norm."""
    hid, hook = _find_hook(module)
    if hook is None:
        return module
    weight = hook.compute(module).detach()
    del module._forward_pre_hooks[hid]
    for pid, post in list(module._forward_hooks.items()):
        if post is detach_weight:
            del module._forward_hooks[pid]
    del module._parameters["weight_g"]
    del module._parameters["weight_v"]
    module.__dict__.pop("weight", None)
    module.register_parameter("weight", nn.Parameter(weight))
    return module


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the next forward will use: ``g * v / ||v||`` when normed (our hook, ``torch.nn.utils.weight_norm``
    or parametrizations), else ``module.weight``.

    Read this instead of ``module.weight`` outside a forward: the attribute of a weight-normed layer is only
    refreshed by a forward, so it can be stale after ``load_state_dict``, an optimiser step or ``.to()``.
    """
    params = module._parameters
    if params.get("weight_g") is not None and params.get("weight_v") is not None:
        dim = 0
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, (_WeightNormHook, WeightNorm)):
                dim = hook.dim
        return torch._weight_norm(params["weight_v"], params["weight_g"], dim)
    return module.weight


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Fold weight norm (ours, ``torch.nn.utils.weight_norm`` or parametrizations) into plain weights, in place.

    Idempotent: layers without weight norm are left alone. Returns ``module``.
    """
    for m in module.modules():
        if has_weight_norm(m):
            remove_weight_norm(m)
        elif any(isinstance(h, WeightNorm) for h in m._forward_pre_hooks.values()):
            torch.nn.utils.remove_weight_norm(m)
        elif parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module
