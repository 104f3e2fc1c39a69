"""GPUs: the backend seam, NVML, replay, backend selection, the sampler, the counter's startup check,
host facts and the samples file."""
