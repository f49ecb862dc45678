"""Look-ups in the GPU and model catalogue (the shipped profiles plus ``catalog`` folders)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from greensim.experiment.acceptance import acceptance_entries
from greensim.hardware.catalog import load_catalog

__all__ = ["model_shape", "acceptance_table"]


def model_shape(model: str, field: str = "model") -> Tuple[str, Dict[str, Any]]:
    """The catalogue name and shape dict (layers, heads, dims, ...) of ``model``.

    Raises
    ------
    ConfigError
        ``model`` is not in the catalogue (the message names the closest matches).
    """
    spec = load_catalog().model(model, field)
    return spec.name, spec.shape()


def acceptance_table(draft: Optional[str] = None, target: Optional[str] = None) -> List[Dict[str, Any]]:
    """The cited acceptance entries of ``profiles/acceptance.yaml`` (those fitting ``draft`` ->
    ``target`` when given): name, draft, target, task, alpha, derived, assumed, source, note.
    A name goes in ``speculative.acceptance`` / ``search.draft.acceptance``."""
    rows = []
    for e in acceptance_entries().values():
        if draft is not None and not e.fits(draft, target):
            continue
        rows.append(
            {
                "name": e.name,
                "draft": e.draft,
                "target": e.target,
                "task": e.task,
                "alpha": e.alpha,
                "derived": e.derived,
                "assumed": e.assumed,
                "reported": e.reported,
                "source": e.source,
                "note": e.note,
            }
        )
    return rows
