"""SpeechBrain as a test client, made safe for the rest of the suite.

SpeechBrain registers lazy modules in ``sys.modules`` (``speechbrain.integrations.k2_fsa``, deprecated redirects,
...) whose attribute lookups import their target and raise ``ImportError`` when it is missing (k2 is). Hypothesis
reads ``__file__`` of every module in ``sys.modules`` (its pytest plugin at collection, its provider for each
example), so after SpeechBrain is imported a missing optional dependency of SpeechBrain would break unrelated
property tests. The tests import SpeechBrain through the ``HIFIGAN`` fixture, never at collection, and after each
test (``speechbrain_lazy_modules``, autouse where imported) the unloaded lazy modules get ``__file__ = None`` (what
Hypothesis reads from a module without a file). Test modules import both fixtures from here.
"""
import sys

import pytest


def hide_unloaded_lazy_modules() -> None:
    lazy = getattr(sys.modules.get("speechbrain.utils.importutils"), "LazyModule", None)
    if lazy is None:
        return
    for module in list(sys.modules.values()):
        if isinstance(module, lazy) and module.lazy_module is None and "__file__" not in vars(module):
            module.__file__ = None


@pytest.fixture(autouse=True)
def speechbrain_lazy_modules():
    yield
    hide_unloaded_lazy_modules()


@pytest.fixture
def HIFIGAN():
    """SpeechBrain's ``speechbrain.inference.vocoders.HIFIGAN`` (the test is skipped where it is not installed)."""
    pytest.importorskip("speechbrain")
    from speechbrain.inference.vocoders import HIFIGAN as interface

    hide_unloaded_lazy_modules()
    return interface
