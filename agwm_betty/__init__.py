"""agwm-betty: attention-guided weight mixup learned by bi-level optimization, on Betty."""
from agwm_betty._betty import check_betty

BETTY_VERSION = check_betty()

__version__ = "0.1.0"
