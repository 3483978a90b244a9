"""Feature fit: the default model fitted on cached stream features (extraction, heads, fusion, selection), and
what it knows about what it does not know (calibration, "none of these", which clips to label, clusters)."""
