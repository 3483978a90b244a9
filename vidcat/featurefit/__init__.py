"""Fitted on out-of-fold scores and cached features: calibration, unknowns, clips to label, clusters."""
