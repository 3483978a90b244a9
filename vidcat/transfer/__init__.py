"""The default recipe on few labels: cached frozen features (extract), head selection by grouped
cross-validation with an honest estimate (select), and the training entry point (recipe)."""
