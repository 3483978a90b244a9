"""Transfer learning on few labels: cached frozen-backbone features, light heads, fine-tuning, a recipe."""

# The frame encoder and the feature heads moved to vidcat.models (models may not import transfer, and the
# frame_head model needs both). Their old names stay importable: they *are* those modules.
import sys as _sys

from vidcat.models import feature_heads as _feature_heads, frame_backbone as _frame_backbone

_sys.modules[__name__ + ".heads"] = heads = _feature_heads
_sys.modules[__name__ + ".backbone"] = backbone = _frame_backbone
