"""The study's two architectures as plain ``nn.Module``s (no training logic here), building one from its spec,
and a hub-ready model folder (config.json + model.safetensors) read and written without pickle.

May import: only the shared leaves (errors); nothing else of the package.
"""

from handgestures.models.build import build_net
from handgestures.models.carlosnet import CarlosNet
from handgestures.models.ivannet import IvanNet
from handgestures.models.keras_init import glorot_bound, keras_init_
from handgestures.models.pretrained import load_pretrained, save_pretrained

__all__ = ["CarlosNet", "IvanNet", "build_net", "glorot_bound", "keras_init_", "load_pretrained", "save_pretrained"]
