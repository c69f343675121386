"""Running games: the compiled step, the loop, checkpoints, sampling, devices and sweeps."""
