"""handgestures.runtime: process settings applied once, old import paths kept."""

from helpers import TINY, compose_train

import handgestures.runtime as runtime
import handgestures.training.train as train_module


def test_moved_names_stay_importable_from_their_old_modules():
    from handgestures.data import cache

    for name in ("keep_freed_memory", "native_bf16", "resolve_precision", "resolve_config_precision"):
        assert getattr(train_module, name) is getattr(runtime, name)
    assert cache.back_with_huge_pages is runtime.back_with_huge_pages and cache.HUGE_PAGE == runtime.HUGE_PAGE


def test_build_run_resolves_precision_once_and_writes_it_into_the_config(monkeypatch, tmp_path):
    calls = []
    real = runtime.resolve_precision
    monkeypatch.setattr(runtime, "resolve_precision", lambda *a: calls.append(a) or real(*a))
    cfg = compose_train([*TINY, "logger=none", "trainer.precision=auto"], tmp_path)
    _, _, trainer = train_module.build_run(cfg)
    assert len(calls) == 1 and calls[0][0] == "auto"
    assert cfg.trainer.precision == real("auto") != "auto"
    assert trainer.precision == cfg.trainer.precision  # Lightning uses the recorded precision
