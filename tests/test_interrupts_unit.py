"""Removal of temporary outputs on a signal while their writers are still running."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sciSR import interrupts
from sciSR.io.safety import remove_path


def _store_writer(root: Path, stop: threading.Event, done: threading.Event, errors: list) -> None:
    """Writes chunk files into ``root`` the way a Zarr store grows (parents made on demand)."""
    try:
        i = 0
        while not stop.is_set():
            chunk = root / "var" / "c" / str(i % 50) / "0"
            chunk.parent.mkdir(parents=True, exist_ok=True)
            chunk.write_bytes(b"x" * 64)
            i += 1
            time.sleep(0.0005)
    except OSError as exc:  # what a real writer does when its store vanishes: it fails
        errors.append(exc)
    finally:
        done.set()


def test_a_store_still_being_written_is_removed_and_its_writer_stopped(tmp_path: Path) -> None:
    root = tmp_path / ".scisr-tmp-x-1-y-out.zarr"
    stop, done, errors = threading.Event(), threading.Event(), []
    th = threading.Thread(target=_store_writer, args=(root, stop, done, errors), daemon=True)
    th.start()
    time.sleep(0.1)
    token = interrupts.track(root, remove_path, done)
    try:
        # the writer must run to notice the placeholder: on a loaded CI machine that can take
        # longer than the 2 s the CLI grants, and remove_tracked returns as soon as it has stopped
        removed = interrupts.remove_tracked(wait=15.0)
    finally:
        interrupts.untrack(token)
        stop.set()
        th.join(5)
    assert removed == [root]
    assert done.is_set() and errors, "the writer kept going instead of failing"
    assert list(tmp_path.iterdir()) == []  # neither the store, the renamed tree nor a placeholder


def test_no_new_temporary_output_starts_while_terminating(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(interrupts, "_terminating", True)
    started = threading.Event()

    def writer() -> None:
        started.set()
        interrupts.track(tmp_path / "new", remove_path)  # blocks: the process is exiting
        (tmp_path / "new").write_text("x")

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    started.wait(2)
    th.join(0.5)
    assert th.is_alive() and not (tmp_path / "new").exists()
    assert tmp_path / "new" not in interrupts.tracked_paths()
