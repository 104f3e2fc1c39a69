"""Energy over time: where the counter updated, energy and power curves, sensor checks and the per-GPU timeline."""
