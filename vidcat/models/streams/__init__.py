"""Stream feature modules of the ``streams`` model: one file per stream (appearance, motion, pose, audio,
text), each a :class:`~vidcat.models.streams.base.StreamFeatures`."""
