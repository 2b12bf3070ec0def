"""The Keras side of the IvanNet collapse question: the study's recipe in Keras, epoch by epoch.

Evidence, not part of the project (Keras is no dependency of it): run it in a venv of its own
with Keras and TensorFlow, pointing at a Keras reconstruction of the study that defines
``load``, ``split`` and ``ivannet``/``carlosnet`` (the peer script the project is measured
against). It trains as that script does (``ImageDataGenerator`` flow, batch 32, Keras 'sgd',
categorical cross-entropy) and writes, after every epoch, one row of ``OUT/epochs.csv``: train
and validation loss and accuracy, the dead fraction of every ReLU layer on the first 64
validation images (the same definition as ``handgestures.training.health``), the largest
absolute logit there, and the epoch's seconds. Rows are flushed as they come, so a stopped run
keeps every finished epoch.

After each epoch's row the model and its optimizer are saved to ``OUT/last.keras`` (its epoch in
``last.json``); the same command run again resumes after that epoch, dropping a row written after
it (``--restart`` starts over). The weights and the optimizer resume exactly; the augmentation
stream does not: the legacy iterator reseeds NumPy from ``seed + total_batches_seen`` before
every batch, and Keras reads one batch and reshuffles when ``fit`` starts, so a resumed run sets
that count (new draws, not epoch 1's again) and is not bit-identical to an uninterrupted one.
``--limit N`` trains on the first N training images (a quick check of the script).

    python scripts/keras_health.py --peer PEER.py --data DATA/fingers/train --out OUT \
        --model ivannet --aug --epochs 30 [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import time
from pathlib import Path


def load_peer(path: str):
    spec = importlib.util.spec_from_file_location("keras_peer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", required=True, help="the Keras reconstruction of the study (a .py file)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="ivannet", choices=["ivannet", "carlosnet"])
    parser.add_argument("--aug", action="store_true")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training images")
    parser.add_argument("--restart", action="store_true", help="start over even if OUT holds a stopped run")
    args = parser.parse_args()

    peer = load_peer(args.peer)
    import keras
    import numpy as np
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    keras.utils.set_random_seed(args.seed)
    x, y = peer.load(args.data)
    (xtr, ytr), (xva, yva), _ = peer.split(x, y)
    xtr, ytr = xtr[: args.limit], ytr[: args.limit]
    out = Path(args.out)
    saved, rows_file = out / "last.keras", out / "epochs.csv"
    done, state = 0, out / "last.json"  # last.json: the epoch last.keras ends, written after it
    if state.is_file() and saved.is_file() and rows_file.is_file() and not args.restart:
        done = int(json.loads(state.read_text())["epoch"])
        with rows_file.open(newline="") as fh:
            reader = csv.DictReader(fh)
            kept, header = [r for r in reader if int(r["epoch"]) <= done], reader.fieldnames
        with rows_file.open("w", newline="") as fh:  # a row whose model was not saved: that epoch runs again
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
    if done:
        model = keras.models.load_model(saved)  # weights and optimizer state after epoch `done`
        print(f"resuming {out} after epoch {done}", flush=True)
    else:
        model = {"carlosnet": peer.carlosnet, "ivannet": peer.ivannet}[args.model]()
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    aug = dict(horizontal_flip=True, vertical_flip=True, rotation_range=90, width_shift_range=0.2,
               height_shift_range=0.2, zoom_range=0.2) if args.aug else {}  # fmt: skip
    flow = ImageDataGenerator(rescale=1 / 255, **aug).flow(
        xtr, keras.utils.to_categorical(ytr, 6), batch_size=32, shuffle=True, seed=args.seed
    )
    flow.total_batches_seen = done * len(flow)  # new draws, not epoch 1's again (see the module's docstring)
    val = (xva / 255, keras.utils.to_categorical(yva, 6))
    probe = xva[: args.probe] / 255
    relus = [layer for layer in model.layers if getattr(layer, "activation", None) is keras.activations.relu]
    names, counts = [], {"conv": 0, "fc": 0}
    for layer in relus:
        kind = "conv" if "conv" in layer.name else "fc"
        counts[kind] += 1
        names.append(f"{kind}{counts[kind]}")
    last = model.layers[-1]
    taps = keras.Model(model.inputs, [layer.output for layer in relus] + [last.input])

    out.mkdir(parents=True, exist_ok=True)
    info = {**vars(args), "keras": keras.__version__, "backend": keras.backend.backend()}
    if done:
        info = {**json.loads((out / "run.json").read_text()), "resumed_after": done}
    (out / "run.json").write_text(json.dumps(info, indent=2))
    fields = ["epoch", "train/loss", "train/acc", "val/loss", "val/acc", *[f"dead/{n}" for n in names],
              "max_abs_logit", "seconds"]  # fmt: skip
    fh = rows_file.open("a" if done else "w", newline="")
    writer = csv.DictWriter(fh, fieldnames=fields)
    if not done:
        writer.writeheader()
        fh.flush()

    class Rows(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            *acts, penultimate = taps.predict(probe, batch_size=args.probe, verbose=0)
            weights, bias = last.get_weights()
            logits = penultimate @ weights + bias  # the output layer before its softmax
            row = {
                "epoch": epoch + 1,
                "train/loss": logs["loss"],
                "train/acc": logs["accuracy"],
                "val/loss": logs["val_loss"],
                "val/acc": logs["val_accuracy"],
                "max_abs_logit": float(np.abs(logits).max()),
                "seconds": round(time.perf_counter() - self.start, 1),
            }
            for name, a in zip(names, acts):
                alive = (a > 0).reshape(-1, a.shape[-1]).any(axis=0)  # channels last: units are the last axis
                row[f"dead/{name}"] = float(1.0 - alive.mean())
            writer.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())
            model.save(out / "next.keras")
            os.replace(out / "next.keras", saved)
            (out / "next.json").write_text(json.dumps({"epoch": epoch + 1}))
            os.replace(out / "next.json", state)

    model.fit(flow, epochs=args.epochs, initial_epoch=done, validation_data=val, callbacks=[Rows()], verbose=0)
    fh.close()


if __name__ == "__main__":
    main()
