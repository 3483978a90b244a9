"""Typed settings: the one source of every option's default, help text and validity.

One module per topic: :mod:`~vidcat.config.fields` (``opt`` and the checks its metadata drives),
:mod:`~vidcat.config.runtime` (the shared option groups ``Runtime`` and ``Views``),
:mod:`~vidcat.config.data` (``DataConfig``: how a video becomes model input), then the options of each
command: :mod:`~vidcat.config.train`, :mod:`~vidcat.config.evaluate`, :mod:`~vidcat.config.predict`,
:mod:`~vidcat.config.serve`, :mod:`~vidcat.config.prepare`, :mod:`~vidcat.config.tools`,
:mod:`~vidcat.config.bench`; and :mod:`~vidcat.config.extras` (which optional packages are installed),
:mod:`~vidcat.config.version`.

The CLI builds its flags from these fields (``vidcat.cli.options``), the Python API and
cross-validation take the same classes, and checkpoints store a resolved ``DataConfig``. Each class
validates its fields in ``__post_init__``: a bad value is one :class:`VidcatError` line naming the
option. This package imports only the standard library and :mod:`vidcat.errors`, so reading options
(``vidcat --help``) loads no torch, OpenCV or PyAV.
"""
from __future__ import annotations

from vidcat.config.bench import (BENCH_FLOW_METHODS, BenchDecodeConfig, BenchFlowConfig, BenchLoaderConfig,
                                 BenchModelConfig, BenchRecipeConfig, BenchTrainConfig)
from vidcat.config.data import (FLOW_METHODS, HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN,
                                KINETICS_STD, MODALITIES, MULTI_STREAM, PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD, SAMPLERS,
                                TEXT_SOURCES, DataConfig, SamplerConfig)
from vidcat.config.evaluate import EvalConfig, FeaturesConfig, FuseConfig
from vidcat.config.fields import (check, check_fields, csv_tuple, flag_name, int_tuple, opt, parse_kv, part_of,
                                  require, shared_last)
from vidcat.config.predict import PredictConfig, TimelineConfig
from vidcat.config.prepare import FlowConfig, PrepareConfig, SynthCommand, SynthConfig
from vidcat.config.runtime import AMP_MODES, CROPS, Runtime, Views, check_crops
from vidcat.config.serve import (MAX_UPLOAD_BYTES, OUT_FORMATS, TOKEN_ENV, UPLOAD_TIMEOUT, BatchConfig, ExportConfig,
                                 ServeConfig)
from vidcat.config.tools import (OVERLAY_SUFFIXES, TRANSCRIPT_FORMATS, ModelsConfig, PoseConfig, ReportConfig,
                                 TranscribeConfig, WeightsConfig)
from vidcat.config.train import STREAMS, CVConfig, TrainConfig
from vidcat.config.version import __version__
