"""The package version (``vidcat --version``, checkpoints, exported models, the server's /health)."""

__version__ = "0.2.0"
