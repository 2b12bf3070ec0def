"""``KerasRandomAffine``, the torchvision v2 transform, and the original-vs-augmented grid."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch

from handgestures import require_torchvision
from handgestures.data.augment.params import KerasParams
from handgestures.data.augment.sampling import _check_range, _parse_shift, _parse_zoom, sample_keras_params
from handgestures.data.augment.warp import _canonical_semantics, _check_fill, apply_keras_transform

require_torchvision()  # the package's first torchvision import: a pair of builds that fails says what to reinstall
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2.functional import is_pure_tensor  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


class KerasRandomAffine(v2.Transform):
    """``ImageDataGenerator``'s random affine + flips as a torchvision v2 transform.

    Unlike ``v2.RandomAffine``, every image of a batch gets its own parameters,
    edges are replicated (``fill_mode='nearest'``), zoom is anisotropic and shifts
    are sub-pixel, exactly as Keras (see the module docstring).

    Inputs: a plain tensor or ``tv_tensors.Image`` of shape ``(C, H, W)`` (one
    image) or ``(B, C, H, W)`` (a batch, one parameter set per image), on any
    device. Floating inputs keep their dtype; ``uint8`` inputs are converted to
    float32 *on the same 0..255 scale* (no rescaling) and returned as float32, as
    Keras does. Other tv_tensors (boxes, masks, videos) are rejected. If several
    images are passed in one call they must have the same shape and share the
    parameters.

    Randomness: ``seed`` (an int) or ``generator`` (a CPU ``torch.Generator``) make
    the draws reproducible; with neither, the global torch RNG is used (this is what
    you want inside DataLoader workers, which reseed it per worker: a seeded
    generator would be copied into every worker and repeat the same draws). For
    training, the recommended use is on the batch after the device transfer, e.g.
    in ``LightningModule.on_after_batch_transfer``: ``x = aug(x)``.
    """

    _transformed_types = (is_pure_tensor, tv_tensors.Image)

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: Any = 0.0,
        height_shift_range: Any = 0.0,
        shear_range: float = 0.0,
        zoom_range: Any = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        semantics: str = "keras2",
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.semantics = _canonical_semantics(semantics)
        self.cval = _check_fill(fill_mode, cval)
        self.fill_mode = fill_mode
        _parse_shift("width_shift_range", width_shift_range)
        _parse_shift("height_shift_range", height_shift_range)
        _parse_zoom(zoom_range)
        self.keras_params = KerasParams(
            rotation_range=_check_range("rotation_range", rotation_range),
            width_shift_range=width_shift_range,
            height_shift_range=height_shift_range,
            shear_range=_check_range("shear_range", shear_range),
            zoom_range=zoom_range,
            horizontal_flip=bool(horizontal_flip),
            vertical_flip=bool(vertical_flip),
        )
        if generator is not None and seed is not None:
            raise ValueError(f"pass either generator or seed, not both (seed={seed!r})")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise ValueError(f"seed={seed!r} must be an int")
            generator = torch.Generator().manual_seed(int(seed))
        if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
            raise ValueError(f"generator={generator!r} must be a CPU torch.Generator")
        self._generator = generator
        self._seed = seed

    @property
    def generator(self) -> torch.Generator | None:
        return self._generator

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        for inpt in flat_inputs:
            if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, tv_tensors.Image):
                raise ValueError(
                    f"{type(self).__name__} only transforms images; got {type(inpt).__name__}, "
                    "which it cannot transform consistently"
                )

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        shapes = {tuple(x.shape) for x in flat_inputs}
        if not shapes:  # nothing to transform: everything passes through
            return {"params": None}
        if len(shapes) != 1:
            raise ValueError(f"all images in one call must have the same shape, got {sorted(shapes)}")
        shape = shapes.pop()
        if len(shape) not in (3, 4):
            raise ValueError(f"image has shape {shape}; expected (C, H, W) or (B, C, H, W)")
        batch = 1 if len(shape) == 3 else shape[0]
        params = sample_keras_params(
            batch,
            (shape[-2], shape[-1]),
            **self.keras_params.as_kwargs(),
            generator=self._generator,
        )
        return {"params": params}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        x = inpt.as_subclass(torch.Tensor)
        if x.dtype == torch.uint8:
            x = x.float()
        elif not x.is_floating_point():
            raise ValueError(f"image dtype {x.dtype} is not supported; expected uint8 or a floating dtype")
        single = x.ndim == 3
        out = apply_keras_transform(
            x.unsqueeze(0) if single else x,
            params["params"],
            semantics=self.semantics,
            fill_mode=self.fill_mode,
            cval=self.cval,
        )
        if single:
            out = out.squeeze(0)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    # torchvision < 0.21 calls the private names.
    _get_params = make_params
    _transform = transform

    def extra_repr(self) -> str:
        parts = [
            *(f"{name}={value}" for name, value in self.keras_params.as_kwargs().items()),
            f"fill_mode={self.fill_mode!r}",
        ]
        if self.fill_mode == "constant":
            parts.append(f"cval={self.cval}")
        parts.append(f"semantics={self.semantics!r}")
        if self._seed is not None:
            parts.append(f"seed={self._seed}")
        elif self._generator is not None:
            parts.append("generator=<torch.Generator>")
        return ", ".join(parts)


# --------------------------------------------------------------------- inspection


@torch.no_grad()
def make_augmentation_grid(
    images: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    n_augmented: int = 7,
) -> torch.Tensor:
    """One row per image: the original, then ``n_augmented`` augmented copies.

    ``images`` is ``(N, 1, H, W)`` (or 3 channels) float in [0, 1]; ``transform`` is
    called once on the ``N * n_augmented`` copies as a batch (a
    :class:`KerasRandomAffine` gives each copy its own parameters). Returns a
    ``(3, H', W')`` float grid in [0, 1] on the images' device, ready for
    ``torchvision.utils.save_image`` or TensorBoard ``add_image``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images has shape {shape}; expected (N, 1, H, W) or (N, 3, H, W)")
    if not images.is_floating_point():
        raise ValueError(f"images has dtype {images.dtype}; expected float in [0, 1]")
    if isinstance(n_augmented, bool) or not isinstance(n_augmented, numbers.Integral) or n_augmented < 0:
        raise ValueError(f"n_augmented={n_augmented!r} must be an int >= 0")
    n = images.shape[0]
    rows = [images.unsqueeze(1)]
    if n_augmented:
        augmented = transform(images.repeat_interleave(int(n_augmented), dim=0))
        rows.append(augmented.reshape(n, int(n_augmented), *images.shape[1:]).to(images.dtype))
    tiles = torch.cat(rows, dim=1).flatten(0, 1).clamp(0.0, 1.0)
    return make_grid(tiles, nrow=int(n_augmented) + 1, padding=2, pad_value=1.0)
