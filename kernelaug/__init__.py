"""kernelaug: learn a camera's blur from sharp/blurry pairs and re-apply it as data augmentation.

Implements Tran et al., "Explore Image Deblurring via Encoded Blur Kernel Space" (CVPR 2021).
"""

__version__ = "0.1.0"

from .models.checkpoint import load_model, model_sha256, save_model  # noqa: E402
from .models import PRESETS, BlurModel, build_model  # noqa: E402
from .bank import KernelBank  # noqa: E402
from .transforms import LearnedBlur, LearnedBlurBatch  # noqa: E402
from .allocator import keep_freed_memory  # noqa: E402
from .models import pretrained  # noqa: E402

__all__ = ["__version__", "load_model", "save_model", "model_sha256", "build_model", "BlurModel", "PRESETS",
           "KernelBank", "LearnedBlur", "LearnedBlurBatch", "keep_freed_memory"]
