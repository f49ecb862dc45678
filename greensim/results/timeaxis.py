"""One time unit for every timeline plot of a run (timeline.png, carbon_timeline.png, plan.png)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["time_unit", "stairs"]

#: (largest duration [s] shown in the unit, seconds per unit, unit): a display choice so that the
#: axis reads 0..600 s, 10..300 min or hours, not a model number
_UNITS = ((600.0, 1.0, "s"), (5 * 3600.0, 60.0, "min"), (float("inf"), 3600.0, "h"))


def time_unit(duration_s: float) -> Tuple[float, str]:
    """``(seconds per unit, unit)`` for a time axis spanning ``duration_s``: s up to 10 minutes,
    min up to 5 hours, h beyond. Plots of one run call it with the run's duration, so all agree."""
    for limit, scale, unit in _UNITS:
        if duration_s <= limit:
            return scale, unit
    return _UNITS[-1][1], _UNITS[-1][2]  # NaN duration


def stairs(ax, t, y, t_end: float, **kw) -> None:
    """A per-bin step line over bin starts ``t``, the last bin drawn to ``t_end``
    (``ax.step(where="post")`` alone stops at the last bin's start)."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    if t.size:
        t, y = np.append(t, max(t_end, t[-1])), np.append(y, y[-1])
    ax.step(t, y, where="post", **kw)
