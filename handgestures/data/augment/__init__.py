"""Keras ``ImageDataGenerator`` affine augmentation, batched, in PyTorch.

The study ran Keras' ``ImageDataGenerator(rotation_range=90, width_shift_range=0.2,
height_shift_range=0.2, zoom_range=0.2, horizontal_flip=True, vertical_flip=True)``.
torchvision's ``RandomAffine`` is not equivalent (constant fill instead of edge
replication, one isotropic scale, integer shifts, one parameter set per call), so
this module reproduces Keras' maths exactly (see ``docs/keras-augmentation.md``
§2-§6, checked against the Keras goldens in ``tests/data/keras_golden``).

Conventions
-----------
* Images are ``(B, C, H, W)`` tensors (``(C, H, W)`` for the transform), any scale:
  the warp is linear, so warping 0..255 and rescaling by 1/255 afterwards (Keras'
  order) equals rescaling first, up to float rounding.
* Parameters are per-image 1-D tensors in Keras units: ``theta`` and ``shear`` in
  degrees, ``tx`` and ``ty`` in pixels, ``zx``/``zy`` zoom factors (``z > 1``
  zooms *out*), ``flip_horizontal``/``flip_vertical`` booleans.
* Two Keras implementations exist and give different images for the same
  parameters (§4):

  - ``"keras2"`` (alias ``"kp112"``): keras-preprocessing <= 1.1.2, i.e. Keras
    2.2/2.3 and tf.keras <= 2.8, what a 2019-2020 project ran. The matrix acts on
    (row, col); ``tx``/``zx`` act on rows, positive ``theta`` turns clockwise on
    screen, and the centre is pixel ``H/2 + 0.5`` (one pixel off).
  - ``"keras3"`` (alias ``"k3"``): keras >= 2.9 and Keras 3's legacy generator.
    The matrix acts on (x, y) = (col, row); positive ``theta`` is
    counter-clockwise; the centre is ``(H/2 - 0.5, W/2 - 0.5)`` assigned to
    (x, y), a Keras quirk that only matters for non-square images and is kept.

* Resampling is SciPy ``affine_transform(order=1)``: a pull mapping with bilinear
  interpolation, done here with ``F.grid_sample(align_corners=True)`` on the grid of
  ``F.affine_grid(align_corners=True)`` (built by a faster equivalent, see
  ``_grid``; on CPU the batch is warped in cache-sized chunks).
  ``fill_mode="nearest"`` (Keras' default, edge replication) is
  ``padding_mode="border"``. ``fill_mode="constant"`` follows
  SciPy >= 1.6 ``mode="constant"`` (the goldens' SciPy 1.17): a sample whose
  source coordinate lies outside ``[0, n-1]`` on either axis is ``cval``, every
  other sample is interpolated from in-range pixels only (no blending towards
  ``cval``). Coordinates within about 1e-5 of the edge (normalised units) count
  as inside, so float32 rounding cannot flip exact edge samples to ``cval``.
* Flips come *after* the warp in Keras (``flip_horizontal`` reverses columns,
  ``flip_vertical`` rows). A flip after a pull warp is the same as reversing the
  output coordinates, so the flips are folded exactly into the sampling matrix: no
  extra pass over the pixels.
* A sample whose warp parameters are all trivial is not warped at all (Keras skips
  the warp too): it is copied exactly, flips included.
* Random draws (``sample_keras_params``) follow Keras ``get_random_transform``
  distributions but use a ``torch.Generator``, not numpy's global stream: the
  statistics match, the individual draws do not. For an exact replay of a Keras run,
  draw with numpy and feed the parameters to :func:`apply_keras_transform`.
"""

from __future__ import annotations

from handgestures.data.augment.batch import KerasAugmentation
from handgestures.data.augment.sampling import sample_keras_params
from handgestures.data.augment.transform import KerasRandomAffine, make_augmentation_grid
from handgestures.data.augment.warp import (  # noqa: F401  (private names: tests and benchmarks)
    _CPU_CHUNK_PIXELS,
    PARAM_NAMES,
    _sampling_matrices,
    apply_keras_transform,
)

__all__ = [
    "PARAM_NAMES",
    "KerasAugmentation",
    "KerasRandomAffine",
    "apply_keras_transform",
    "make_augmentation_grid",
    "sample_keras_params",
]
