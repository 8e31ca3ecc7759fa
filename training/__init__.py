"""Training side of DFIMat: data, synthetic scenes, metrics, baselines."""
