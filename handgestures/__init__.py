"""handgestures: a PyTorch Lightning reimplementation of the CarlosNet / IvanNet finger-counting study."""

__version__ = "0.1.0"
