"""The wait follows the load: a slow but steady load is waited for, a silent store gets a quick 503 saying so;
the cold-start flag goes to the first request answered; on Lambda a swap finishes in the request that finds it;
directories of loads that died are removed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.registry import ModelRegistry
from reccore.errors import ModelNotReadyError, ModelStoreStalledError
from reccore.loading import remove_abandoned
from reccore.settings import ServiceSettings
from reccore.storage import LocalStore
from reccore.versions import new_version, publish


class SlowStore(LocalStore):
    """A directory store whose every read takes ``delay`` seconds; ``silent`` makes reads hang until released."""

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(root)
        self.delay = delay
        self.silent = threading.Event()
        self.released = threading.Event()

    def _answer(self) -> None:
        if self.silent.is_set():
            self.released.wait(30)
        time.sleep(self.delay)

    def get(self, key: str) -> bytes:
        self._answer()
        return super().get(key)

    def fetch(self, key: str, target: Path) -> Path:
        self._answer()
        return super().fetch(key, target)


def registry_on(store: LocalStore, tmp_path: Path, **settings: Any) -> ModelRegistry:
    config = ServiceSettings(model_uri=str(store.root), cache_dir=str(tmp_path / "cache"), **settings)
    registry = ModelRegistry(settings=lambda: config)
    registry._get_store = lambda: store  # type: ignore[method-assign]
    return registry


@pytest.fixture()
def slow(published_model: Any, tmp_path: Path) -> tuple[SlowStore, str]:
    store = SlowStore(tmp_path / "models", delay=0.0)
    version = publish(store, published_model.manifest.model_copy(update={"version": new_version()}),
                      published_model.files).version  # fmt: skip
    return store, version


def test_a_load_slower_than_the_stall_bound_but_progressing_is_waited_for(
    slow: tuple[SlowStore, str], tmp_path: Path
) -> None:
    store, version = slow
    store.delay = 0.15  # each of ~17 reads: ~2.5 s in all, 4 download threads; never 0.5 s without progress
    registry = registry_on(store, tmp_path, load_wait_seconds=0.5, load_max_wait_seconds=20)
    start = time.monotonic()
    model = registry.acquire()
    assert model.version == version and time.monotonic() - start > 0.5  # longer than the stall bound
    assert registry.claim_first_load() and not registry.claim_first_load()  # once


def test_a_silent_store_gets_a_quick_503_that_says_so_and_the_load_goes_on(
    slow: tuple[SlowStore, str], tmp_path: Path
) -> None:
    store, version = slow
    store.silent.set()
    registry = registry_on(store, tmp_path, load_wait_seconds=0.5, load_max_wait_seconds=20)
    start = time.monotonic()
    with pytest.raises(ModelStoreStalledError, match="has not answered"):
        registry.acquire()
    assert time.monotonic() - start < 1.5
    store.silent.clear()
    store.released.set()  # the store answers again: the load that went on finishes
    deadline = time.monotonic() + 20
    while registry.model is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert registry.acquire().version == version
    # The request that gets the model first is the cold start, though another request started the load.
    assert registry.claim_first_load()


def test_a_progressing_load_past_the_longest_wait_is_still_loading(slow: tuple[SlowStore, str], tmp_path: Path) -> None:
    store, _ = slow
    store.delay = 0.2
    registry = registry_on(store, tmp_path, load_wait_seconds=1.0, load_max_wait_seconds=0.3)
    with pytest.raises(ModelNotReadyError, match="still loading") as raised:
        registry.acquire()
    assert not isinstance(raised.value, ModelStoreStalledError)


def test_on_lambda_the_request_that_finds_a_new_version_waits_for_its_load(
    slow: tuple[SlowStore, str], published_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, first = slow
    options = {"refresh_seconds": 0, "load_wait_seconds": 0.5, "load_max_wait_seconds": 20}
    uvicorn, lambda_ = registry_on(store, tmp_path, **options), registry_on(store, tmp_path, **options)
    assert uvicorn.acquire().version == first and lambda_.acquire().version == first
    second = publish(store, published_model.manifest.model_copy(update={"version": new_version()}),
                     published_model.files).version  # fmt: skip
    store.delay = 0.15  # the new version takes over a second to load, more than the 0.5 s wait
    assert uvicorn.acquire().version == first  # under uvicorn the swap goes on in the background
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    assert lambda_.acquire().version == second  # on Lambda it finishes in the request that found it


def test_directories_of_dead_loads_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    abandoned = tmp_path / f"20260101T000000Z-abc-pid{dead_pid}.deadbeef-x1"
    same_pid_old_process = tmp_path / f"20260101T000000Z-abc-pid{os.getpid()}.00000000-x2"
    live_other = tmp_path / "20260101T000000Z-abc-pid1.cafebabe-x3"  # pid 1 is alive
    unrelated = tmp_path / "not-a-load"
    for path in (abandoned, same_pid_old_process, live_other, unrelated):
        path.mkdir()
        (path / "item_factors.npy").write_bytes(b"x" * 1000)
    removed = remove_abandoned(tmp_path)
    assert set(removed) == {abandoned, same_pid_old_process}
    assert live_other.exists() and unrelated.exists() and not abandoned.exists()
