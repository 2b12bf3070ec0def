"""The study's two architectures as plain ``nn.Module``s (no training logic here), and building one from its spec.

May import: only the shared leaves (errors); nothing else of the package.
"""

from handgestures.models.build import build_net
from handgestures.models.carlosnet import CarlosNet
from handgestures.models.ivannet import IvanNet
from handgestures.models.keras_init import glorot_bound, keras_init_

__all__ = ["CarlosNet", "IvanNet", "build_net", "glorot_bound", "keras_init_"]
