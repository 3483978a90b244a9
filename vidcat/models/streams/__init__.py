"""Stream feature modules of the ``streams`` model: one file per stream, each a
:class:`~vidcat.models.streams.base.StreamFeatures`. ``STREAMS`` maps a stream's name to its class."""
from vidcat.models.streams.appearance import AppearanceFeatures
from vidcat.models.streams.audio import AudioFeatures
from vidcat.models.streams.motion import MotionFeatures
from vidcat.models.streams.pose import PoseFeatures
from vidcat.models.streams.text import TextFeatures

STREAMS = {cls.name: cls for cls in (AppearanceFeatures, MotionFeatures, PoseFeatures, AudioFeatures, TextFeatures)}
