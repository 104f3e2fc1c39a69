"""Knowing the sensor: the idle baseline, the power-versus-counter cross-check, per-step uncertainty."""

from __future__ import annotations

import numpy as np
import pandas as pd


def idle_power(group: pd.DataFrame, t: np.ndarray, energy: np.ndarray, line: object) -> float:
    power = group["power_w"].to_numpy(dtype=np.float64)
    if np.isfinite(power).any():
        return float(np.nanpercentile(power, 10))
    return 0.0
