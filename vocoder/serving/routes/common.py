"""What several routes answer or check alike: the JSON error and the last check of decoded audio."""
from __future__ import annotations

from typing import Optional

import numpy as np
from fastapi.responses import JSONResponse

from ...audio.mel import NonFiniteAudio

__all__ = ["error", "check_audio"]


def error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    """An error answer: JSON ``{"detail": message}`` with ``status``."""
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def check_audio(audio: np.ndarray, what: str) -> np.ndarray:
    """Decoded samples unchanged if finite, else :class:`NonFiniteAudio` (422 / close 1007) naming ``what``."""
    if not np.isfinite(audio).all():
        raise NonFiniteAudio(f"the model produced {int((~np.isfinite(audio)).sum())} NaN / inf samples of "
                             f"{audio.size} for {what}; refused")
    return audio
