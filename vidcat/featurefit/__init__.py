"""Feature fit: the default model fitted on cached stream features (extraction, heads, fusion, selection)."""
