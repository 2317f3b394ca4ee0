"""The losses a recipe can name, each declared by its own module.

A loss module declares a :class:`LossSpec` with :func:`register_loss`: its name, its terms (the values it returns,
each weighted by a recipe key ``losses.<term>`` with a default weight; 0 = off), its arguments (other
``losses.<key>`` settings, each with a default, a type and a check), its inputs (what the training step hands it)
and how to build it. From these declarations come the recipe's ``losses`` section (:func:`loss_defaults`,
:func:`check_loss_settings`), its typed form (:class:`LossSettings`) and the terms of the training step
(:func:`build_losses`), so adding a loss touches its module and its test only: every module in
``vocoder/losses/`` is imported (and so registered) by the package.

Inputs, and how a built loss is called (every call returns ``{term: scalar}``):

- ``"audio"``: ``loss(fake [B, 1, T], real [B, 1, T])``, float32: a reconstruction term;
- ``"spectrum"``: ``loss(log_amplitude, phase, fake, real)``, the first two ``[B, F, T]`` as a Fourier-head
  generator predicts them (:func:`vocoder.generators.registry.is_fourier`): a reconstruction term that needs one;
- ``"judgement"``: ``loss(real, fake)``, each ``(logits, feature_maps)`` as the discriminators return them for the
  real and the generated audio: the generator's adversarial terms;
- ``"discrimination"``: ``loss(real_logits, fake_logits)``: the discriminators' own loss.

Terms are summed in the order they were registered (the order of the recipe's keys).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch.nn as nn

from ..audio.mel import MelConfig

__all__ = ["Weight", "Argument", "LossSpec", "LossContext", "LossSettings", "INPUTS", "RECONSTRUCTION_INPUTS",
           "TermsOf", "BuiltLoss", "register_loss", "loss_specs", "get_loss", "loss_defaults", "check_loss_settings", "terms",
           "reconstruction_terms", "build_losses", "as_float", "as_int", "optional_float", "as_mapping", "one_of"]

INPUTS = ("audio", "spectrum", "judgement", "discrimination")
#: inputs of the generator's reconstruction terms (what a generator-only warm-up trains on)
RECONSTRUCTION_INPUTS = ("audio", "spectrum")


# ------------------------------------------------------------------ value types (convert, or ValueError)

def as_float(v: Any) -> float:
    """A number (YAML 1.1 reads ``1e-4`` as a string, so strings that parse are numbers too)."""
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)


def as_int(v: Any) -> int:
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(f"expected an integer, got {v!r}")
    return int(v)


def optional_float(v: Any) -> Optional[float]:
    return None if v is None else as_float(v)


def as_mapping(v: Any) -> Dict[str, Any]:
    """A free-form mapping (``None`` = empty): its keys are the built loss's keyword arguments, checked by it."""
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ValueError(f"expected a mapping of keyword arguments, got {v!r}")
    return dict(v)


def one_of(*choices: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"expected one of {list(choices)}, got {v!r}")
        return v
    convert.choices = choices
    return convert


# ------------------------------------------------------------------ declarations

@dataclass(frozen=True)
class Weight:
    """A term of a loss: the recipe key ``losses.<name>`` holds its weight (a number >= 0; 0 = off); ``log``: the
    name of its training curve (``train/<log>``), when not ``name``."""
    name: str
    default: float
    doc: str
    log: Optional[str] = None


@dataclass(frozen=True)
class Argument:
    """A setting of a loss: the recipe key ``losses.<name>``; ``convert`` types a value or raises ``ValueError``
    (the message says what was expected), ``check`` (optional) adds a condition on the typed value."""
    name: str
    default: Any
    doc: str
    convert: Callable[[Any], Any] = as_float
    check: Optional[Callable[[Any], Optional[str]]] = None  # typed value -> None, or what is wrong with it


@dataclass(frozen=True)
class LossContext:
    """What a loss is built from: the mel settings (the generator's input: its ``hop_length`` is the generator's
    hop), the generator (a Fourier head's STFT size and framing), and the typed ``losses`` section."""
    mel: MelConfig
    generator: nn.Module
    settings: "LossSettings"


@dataclass(frozen=True)
class LossSpec:
    """One loss as a module declares it.

    ``keys``: its :class:`Weight` s and :class:`Argument` s in the order the recipe lists them; ``inputs``: one of
    :data:`INPUTS`; ``build(context) -> nn.Module`` (called when one of its terms is weighted, or when validation
    asks for it by name) whose call returns ``{term: scalar}`` for its terms (extra keys are ignored);
    ``doc``: one line for the docs' table, with the paper it follows.
    """
    name: str
    inputs: str
    keys: Tuple[Any, ...]
    build: Callable[[LossContext], nn.Module]
    doc: str

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"loss {self.name!r}: inputs must be one of {INPUTS}, got {self.inputs!r}")
        if not self.terms:
            raise ValueError(f"loss {self.name!r} declares no term (Weight)")

    @property
    def terms(self) -> Tuple[str, ...]:
        return tuple(k.name for k in self.keys if isinstance(k, Weight))

    @property
    def arguments(self) -> Tuple[str, ...]:
        return tuple(k.name for k in self.keys if isinstance(k, Argument))


_LOSSES: Dict[str, LossSpec] = {}
_KEYS: Dict[str, Tuple[str, Any]] = {}  # recipe key -> (loss name, Weight | Argument)


def register_loss(spec: LossSpec) -> LossSpec:
    """Add ``spec`` to the registry; a recipe key declared twice is an error naming both losses."""
    if spec.name in _LOSSES:
        raise ValueError(f"loss {spec.name!r} is registered twice")
    names = [k.name for k in spec.keys]
    if len(set(names)) != len(names):
        raise ValueError(f"loss {spec.name!r} declares a key twice: {names}")
    for k in spec.keys:
        if k.name in _KEYS:
            raise ValueError(f"loss {spec.name!r} declares losses.{k.name}, which loss {_KEYS[k.name][0]!r} "
                             f"already declares")
    _LOSSES[spec.name] = spec
    for k in spec.keys:
        _KEYS[k.name] = (spec.name, k)
    return spec


def loss_specs() -> List[LossSpec]:
    """Every registered loss, in registration order."""
    return list(_LOSSES.values())


def get_loss(name: str) -> LossSpec:
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(_LOSSES)}")
    return _LOSSES[name]


def loss_defaults() -> Dict[str, Any]:
    """The recipe's ``losses`` section with every default: each loss's keys in its declared order."""
    return {k.name: (dict(k.default) if isinstance(k.default, Mapping) else k.default)
            for spec in _LOSSES.values() for k in spec.keys}


def _typed_value(key: str, value: Any) -> Any:
    loss, decl = _KEYS[key]
    try:
        if isinstance(decl, Weight):
            typed = as_float(value)
            problem = None if math.isfinite(typed) and typed >= 0 else "must be a finite number >= 0"
        else:
            typed = decl.convert(value)
            problem = decl.check(typed) if decl.check is not None else None
    except (TypeError, ValueError) as e:
        raise ValueError(f"losses.{key} ({loss} loss): {e}") from None
    if problem:
        raise ValueError(f"losses.{key} ({loss} loss) {problem}, got {value!r}")
    return typed


def check_loss_settings(section: Mapping[str, Any]) -> None:
    """``ValueError`` naming the key for an unknown key or a value its declaration refuses."""
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown recipe key losses.{unknown[0]!r}; expected one of {sorted(_KEYS)}")
    for key, value in section.items():
        _typed_value(key, value)


def terms(inputs: Optional[Tuple[str, ...]] = None) -> Tuple[str, ...]:
    """Every term (weight key), in registration order; only those of losses with these ``inputs`` when given."""
    return tuple(t for s in _LOSSES.values() if inputs is None or s.inputs in inputs for t in s.terms)


def reconstruction_terms() -> Tuple[str, ...]:
    return terms(RECONSTRUCTION_INPUTS)


class LossSettings(Mapping):
    """The recipe's ``losses`` section typed by the declarations: ``settings["mel_fmax"]`` or
    ``settings.mel_fmax``; keys the section lacks (a checkpoint from before a loss existed) take their default."""

    def __init__(self, section: Mapping[str, Any]):
        check_loss_settings(section)
        merged = {**loss_defaults(), **section}
        self._values = {k: _typed_value(k, v) for k, v in merged.items()}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("_values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"losses has no setting {key!r}; known: {sorted(values)}")

    def weights(self) -> Dict[str, float]:
        """Every term's weight by name, in registration order."""
        return {t: self._values[t] for t in terms()}

    def active(self, spec: LossSpec) -> Tuple[str, ...]:
        """The terms of ``spec`` with a weight > 0."""
        return tuple(t for t in spec.terms if self._values[t] > 0)

    def __repr__(self) -> str:
        return f"LossSettings({self._values!r})"


class TermsOf(nn.Module):
    """``module``'s result as ``{term: value}``: a loss that returns one scalar (or a tuple of them, in ``names``'
    order) called the way the registry calls losses. The loss classes stay plain; their modules declare the names."""

    def __init__(self, module: nn.Module, *names: str):
        super().__init__()
        self.module, self.names = module, names

    def forward(self, *args) -> Dict[str, Any]:
        out = self.module(*args)
        values = out if isinstance(out, tuple) else (out,)
        if len(values) != len(self.names):
            raise ValueError(f"{type(self.module).__name__} returned {len(values)} values for terms {self.names}")
        return dict(zip(self.names, values))


@dataclass
class BuiltLoss:
    """A loss built for training: its spec, its module and the terms it adds (weight > 0)."""
    spec: LossSpec
    module: nn.Module
    active: Tuple[str, ...] = field(default_factory=tuple)


def build_losses(context: LossContext, also: Tuple[str, ...] = ()) -> Dict[str, BuiltLoss]:
    """The losses with a weighted term, and the ones named in ``also`` (e.g. what validation reports), built for
    ``context``, by name in registration order."""
    unknown = sorted(set(also) - set(_LOSSES))
    if unknown:
        raise ValueError(f"unknown losses {unknown}; known: {sorted(_LOSSES)}")
    out = {}
    for spec in _LOSSES.values():
        active = context.settings.active(spec)
        if active or spec.name in also:
            out[spec.name] = BuiltLoss(spec, spec.build(context), active)
    return out
