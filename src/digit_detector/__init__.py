"""digit-detector: find digits, other drawings and obscene doodles on a drawing canvas."""

from .classes import CLASS_NAMES, Detection
from .inference import Detector, WeightsError

__all__ = ["CLASS_NAMES", "Detection", "Detector", "WeightsError"]
__version__ = "0.1.0"
