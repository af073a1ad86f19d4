"""kernelaug: learn a camera's blur from sharp/blurry pairs and re-apply it as data augmentation.

Implements Tran et al., "Explore Image Deblurring via Encoded Blur Kernel Space" (CVPR 2021).
"""

__version__ = "0.1.0"

from .models import PRESETS, BlurModel, build_model, load_model, model_sha256, pretrained, resolve_model, save_model  # noqa: E402
from .bank import KernelBank, resolve_bank  # noqa: E402
from .transforms import LearnedBlur, LearnedBlurBatch  # noqa: E402
from .allocator import keep_freed_memory  # noqa: E402

__all__ = ["__version__", "load_model", "save_model", "model_sha256", "build_model", "BlurModel", "PRESETS",
           "KernelBank", "resolve_model", "resolve_bank", "LearnedBlur", "LearnedBlurBatch", "keep_freed_memory",
           "pretrained"]
