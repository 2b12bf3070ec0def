"""A demo page (gradio): a hand image, the model's count, and the same under Keras augmentation.

Upload an image, take one with the browser's camera, or pick an example (built-in hands; real
images when ``examples=FOLDER`` is given). The page shows the predicted number of fingers
with the six probabilities as bars, and beside it the same image under a random Keras
augmentation of the run's configuration (:func:`handgestures.data.augment.sample_keras_params`,
:func:`apply_keras_transform`) with the model's answer there: the study's gap between upright
and rotated/flipped hands, one image at a time. The server listens on 127.0.0.1 unless told
otherwise.

The page reads only what it was sent: images uploaded to it (gradio's upload folder) and its
examples. A request naming any other path on the server is refused with one message, the same
whether the file exists or not (gradio's Image passes a client's ``{"path": ...}`` through as it
is, so the check runs before gradio opens the file).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from handgestures.data.augment import apply_keras_transform, sample_keras_params
from handgestures.data.augment.params import KerasParams, study_params
from handgestures.data.hands import generate_hands
from handgestures.inference.predictor import Predictor, load_predictor
from handgestures.inference.preprocess import IMAGE_SIZE, SUMMARY, decode, list_inputs, to_tensor

MAX_EXAMPLES = 12
REFUSED = "refused: the demo reads only images uploaded to it and its examples"


def servable(path: str, folders: list[Path]) -> bool:
    """Whether ``path``, links and ``..`` resolved, lies in one of ``folders`` (already resolved)."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(folder) for folder in folders)


def count_label(name: str) -> str:
    return f"{name} finger" if name == "1" else f"{name} fingers"


class DemoModel:
    """The page's logic without the page: predictions on a file, plain and augmented."""

    def __init__(self, predictor: Predictor, seed: int = 0) -> None:
        self.predictor = predictor
        # the model's recorded augmentation, else the study's (conf/data/augmented.yaml)
        augmentation = dict((predictor.description.get("data") or {}).get("augmentation") or {})
        params = KerasParams.from_mapping(augmentation) if augmentation else study_params()
        self.keras_params = params.as_kwargs()
        self.warp = {"semantics": augmentation.get("semantics", "keras2"), "fill_mode": augmentation.get("fill_mode", "nearest"),
                     "cval": float(augmentation.get("cval", 0.0)) / 255.0}  # fmt: skip
        self.generator = torch.Generator().manual_seed(int(seed or 0))

    def labels(self, probs: torch.Tensor) -> dict[str, float]:
        return {count_label(name): float(p) for name, p in zip(self.predictor.class_names, probs.tolist())}

    def answer(self, path: str | None) -> tuple[dict[str, float], np.ndarray, dict[str, float], str]:
        """(probabilities, augmented image, its probabilities, a one-paragraph summary) for ``path``."""
        if not path:
            raise ValueError("no image: upload one or pick an example")
        decoded = decode(path)
        if decoded.error is not None:
            raise ValueError(f"{Path(path).name}: {decoded.error}")
        x = to_tensor([decoded.pixels])
        params = sample_keras_params(
            1, image_size=(IMAGE_SIZE, IMAGE_SIZE), generator=self.generator, **self.keras_params
        )
        augmented = apply_keras_transform(x, params, **self.warp)
        probs = self.predictor.probabilities(torch.cat([x, augmented]))
        if not bool(probs.isfinite().all()):
            raise ValueError(f"{Path(path).name}: the model gave non-finite probabilities (NaN or infinity)")
        picture = (augmented[0, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        plain, aug = int(probs[0].argmax()), int(probs[1].argmax())
        p = {k: float(v[0]) for k, v in params.items()}
        how = (f"rotated {p.get('theta', 0):+.0f} deg, shifted ({p.get('tx', 0):+.0f}, {p.get('ty', 0):+.0f}) px, "
               f"zoom ({p.get('zx', 1):.2f}, {p.get('zy', 1):.2f})"
               + (", flipped left-right" if p.get("flip_horizontal") else "") + (", flipped upside down" if p.get("flip_vertical") else ""))  # fmt: skip
        notices = f" ({'; '.join(decoded.notices)})" if decoded.notices else ""
        text = (f"**{count_label(str(plain))}** (p = {float(probs[0, plain]):.3f}) on the image{notices}; "
                f"**{count_label(str(aug))}** (p = {float(probs[1, aug]):.3f}) on it {how}.")  # fmt: skip
        return self.labels(probs[0]), picture, self.labels(probs[1]), text


def example_files(folder: str | None, out_dir: Path) -> list[str]:
    """Built-in hands written as PNGs in ``out_dir`` (one per count), then images of ``folder``."""
    images, labels, hands = generate_hands(12, seed=7)
    files = []
    for i in torch.argsort(labels * 2 + hands).tolist()[::2]:
        path = out_dir / f"builtin-{int(labels[i])}fingers-{'LR'[int(hands[i])]}.png"
        Image.fromarray(images[i, 0].numpy()).save(path)
        files.append(str(path))
    if folder:
        real, _ = list_inputs(folder)
        if not real:
            raise FileNotFoundError(f"examples={folder!r} holds no image files")
        step = max(1, len(real) // MAX_EXAMPLES)
        files += real[::step][:MAX_EXAMPLES]
    return files


def build_demo(ckpt: str, examples: str | None = None, seed: int | None = 0) -> tuple[Any, list[str]]:
    """The gradio Blocks page for ``ckpt``, and the folders it needs to serve files from."""
    try:
        import gradio as gr  # the demo extra, seconds to import: only for the demo
    except ImportError as err:
        raise ImportError("the demo needs the demo extra: pip install 'handgestures[demo]'") from err
    model = DemoModel(load_predictor(ckpt), seed=seed or 0)
    d = model.predictor.description
    example_dir = Path(tempfile.mkdtemp(prefix="handgestures-demo-"))
    files = example_files(examples, example_dir)
    net = str((model.predictor.description.get("net_spec") or {}).get("_target_", "")).rsplit(".", 1)[-1]
    variant = d.get("data_choice") or ("augmented" if (d.get("data") or {}).get("augment_train") else "base")
    name = f"{d.get('model_choice') or net or 'model'} ({variant} training, seed {d.get('seed')})"
    with gr.Blocks(title="handgestures: how many fingers?") as page:
        gr.Markdown(f"## How many fingers? {name}\nModel `{model.predictor.source.name}` ({model.predictor.kind}, "
                    f"{model.predictor.precision}), trained on {d.get('source')}. Right: the same image under a random "
                    f"Keras augmentation of the study (rotation, shifts, zoom, flips).\n\n<small>{SUMMARY}</small>")  # fmt: skip
        with gr.Row():
            # the camera's frame arrives as an upload (a PNG), read like any other image
            image = gr.Image(type="filepath", label="hand image (upload, webcam, or pick an example below)",
                             image_mode=None, sources=["upload", "webcam", "clipboard"], height=256,
                             elem_id="hand-image")  # fmt: skip
            plain = gr.Label(num_top_classes=6, label="prediction", elem_id="prediction")
            augmented_image = gr.Image(label="randomly augmented", interactive=False, height=256)
            augmented = gr.Label(num_top_classes=6, label="prediction on the augmented image",
                                 elem_id="augmented-prediction")  # fmt: skip
        summary = gr.Markdown()
        again = gr.Button("another random augmentation")
        gr.Examples(examples=[[f] for f in files], inputs=[image], label="examples")
        outputs = [plain, augmented_image, augmented, summary]

        def respond(path):
            try:
                return model.answer(path)
            except ValueError as err:
                raise gr.Error(str(err)) from None

        # uploads (gradio's cache, where it also copies the examples) and the example folders only
        folders = [Path(os.path.realpath(d))
                   for d in (image.GRADIO_CACHE, example_dir, examples and Path(examples).expanduser()) if d]  # fmt: skip
        preprocess = image.preprocess

        def uploads_only(payload):
            if payload is not None and payload.path is not None and not servable(payload.path, folders):
                raise gr.Error(REFUSED)
            return preprocess(payload)

        image.preprocess = uploads_only
        image.change(respond, inputs=[image], outputs=outputs, api_name="predict")
        again.click(respond, inputs=[image], outputs=outputs, api_name="augment_again")
    allowed = [str(example_dir)] + ([str(Path(examples).expanduser().resolve())] if examples else [])
    return page, allowed


def launch(ckpt: str, examples: str | None = None, host: str = "127.0.0.1", port: int | None = None,
           seed: int | None = 0, **kwargs: Any):  # fmt: skip
    """Builds and serves the page; returns gradio's launch result (with ``prevent_thread_lock=True``)."""
    page, allowed = build_demo(ckpt, examples, seed)
    return page.launch(server_name=host, server_port=port, allowed_paths=allowed, **kwargs), page
