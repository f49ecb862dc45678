"""Look-ups in the GPU and model catalogue (the shipped profiles plus ``catalog`` folders)."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from greensim.hardware.catalog import load_catalog

__all__ = ["model_shape"]


def model_shape(model: str, field: str = "model") -> Tuple[str, Dict[str, Any]]:
    """The catalogue name and shape dict (layers, heads, dims, ...) of ``model``.

    Raises
    ------
    ConfigError
        ``model`` is not in the catalogue (the message names the closest matches).
    """
    spec = load_catalog().model(model, field)
    return spec.name, spec.shape()
