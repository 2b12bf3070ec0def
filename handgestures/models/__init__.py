"""The study's two architectures as plain ``nn.Module``s (no training logic here)."""

from handgestures.models.carlosnet import CarlosNet
from handgestures.models.ivannet import IvanNet
from handgestures.models.keras_init import glorot_bound, keras_init_

__all__ = ["CarlosNet", "IvanNet", "glorot_bound", "keras_init_"]
