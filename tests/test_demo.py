"""The demo page, in process, through gradio's client on loopback (in a browser: tests/test_demo_browser.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from handgestures.inference.demo import count_label, launch  # noqa: E402
from handgestures.inference.predictor import load_predictor  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    examples = tmp_path_factory.mktemp("examples")
    from handgestures.data.hands import generate_hands

    images, labels, _ = generate_hands(12, seed=9)
    for i in range(3):
        Image.fromarray(images[i, 0].numpy()).save(examples / f"real{i}_{int(labels[i])}L.png")
    (app, url, _), page = launch(str(tiny_run), examples=str(examples), prevent_thread_lock=True, quiet=True)
    yield url, examples
    page.close()


def test_demo_answers_like_the_model_and_shows_an_augmented_view(tiny_run, server):
    url, examples = server
    assert url.startswith("http://127.0.0.1:")  # loopback by default
    client = gradio_client.Client(url, verbose=False)
    file = sorted(examples.glob("*.png"))[0]
    plain, augmented_file, augmented, text = client.predict(gradio_client.handle_file(str(file)), api_name="/predict")
    pixels = np.asarray(Image.open(file), dtype=np.float32) / 255
    expected = load_predictor(tiny_run).probabilities(torch.from_numpy(pixels)[None, None])[0]
    shown = {c["label"]: c["confidence"] for c in plain["confidences"]}
    assert [shown[count_label(str(i))] for i in range(6)] == pytest.approx(expected.tolist(), abs=1e-6)
    assert plain["label"] == count_label(str(int(expected.argmax())))
    view = np.asarray(Image.open(augmented_file).convert("L"), dtype=np.float32) / 255
    assert view.shape == (128, 128) and np.abs(view - pixels).mean() > 0.01  # a different image
    assert sum(c["confidence"] for c in augmented["confidences"]) == pytest.approx(1.0, abs=1e-5)
    assert f"**{plain['label']}**" in text and "rotated" in text


def _refusal(client, payload) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as err:
        client.predict(payload, api_name="/predict")
    return str(err.value)


def test_demo_reads_only_uploads_and_its_examples(server, tmp_path):
    """A client naming a path on the server gets nothing, and cannot tell whether the file exists."""
    url, examples = server
    client = gradio_client.Client(url, verbose=False)
    upload = sorted(examples.glob("*.png"))[0]
    plain, *_ = client.predict(gradio_client.handle_file(str(upload)), api_name="/predict")  # an upload works
    assert plain["label"].endswith(("finger", "fingers"))
    plain, *_ = client.predict({"path": str(upload)}, api_name="/predict")  # an example, named: served
    assert plain["label"].endswith(("finger", "fingers"))
    foreign = tmp_path / "elsewhere.png"
    foreign.write_bytes(upload.read_bytes())
    # a dict without gradio's "meta" is sent as it is (the client uploads only FileData with meta)
    existing = _refusal(client, {"path": str(foreign)})
    missing = _refusal(client, {"path": str(tmp_path / "missing.png")})
    dotted = _refusal(client, {"path": f"{examples}/../{tmp_path.name}/elsewhere.png"})
    assert "only images uploaded to it and its examples" in existing
    assert existing == missing == dotted  # the same words: whether the file exists does not show
    assert "elsewhere" not in existing and "missing" not in existing
    # gradio's own file route: the same refusal for a file that exists and one that does not
    import urllib.error
    import urllib.request

    answers = []
    for path in (foreign, tmp_path / "missing.png"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30)
        answers.append((err.value.code, err.value.read().decode().replace(str(path), "PATH")))
    assert answers[0] == answers[1] and answers[0][0] == 403, answers


def _demo_cfg(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from handgestures import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("demo", overrides=list(overrides))


def test_demo_binds_beyond_loopback_only_when_told(tiny_run, monkeypatch, capsys):
    from handgestures.inference import demo
    from handgestures.inference.cli import run_demo

    calls = []
    monkeypatch.setattr(demo, "launch", lambda ckpt, **kw: calls.append(kw))
    with pytest.raises(SystemExit) as exit_:
        run_demo(_demo_cfg(f"ckpt={tiny_run}", "host=0.0.0.0"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and not calls
    assert "host=0.0.0.0" in err and "allow_remote=true" in err and err.count("\n") == 1
    assert run_demo(_demo_cfg(f"ckpt={tiny_run}", "host=0.0.0.0", "allow_remote=true")) == 0
    assert calls[-1]["host"] == "0.0.0.0" and "warning" in capsys.readouterr().err
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert run_demo(_demo_cfg(f"ckpt={tiny_run}", f"host={host}")) == 0
        assert calls[-1]["host"] == host and "warning" not in capsys.readouterr().err


def test_the_demo_says_what_it_loads_before_loading_it(tiny_run, monkeypatch, capsys):
    """The model and gradio take seconds to load (in launch): a line says so first."""
    from handgestures.inference import demo
    from handgestures.inference.cli import run_demo

    said_before = []
    monkeypatch.setattr(demo, "launch", lambda ckpt, **kw: said_before.append(capsys.readouterr().err))
    assert run_demo(_demo_cfg(f"ckpt={tiny_run}")) == 0
    assert said_before == [f"starting the demo of {tiny_run}: loading the model and gradio (several seconds) ...\n"]
