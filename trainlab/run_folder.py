"""Run folders: layout, the single-writer lock, and the records written into them.

``runs/<name>-<UTC timestamp>/`` (or ``--out DIR``) holds::

    run.json            format version, trainlab version, config hash, status
    config.yaml         the fully resolved config
    metrics.jsonl       one JSON object per epoch (epoch, step, lr, train_loss, val_*, elapsed_s)
    summary.json        written once training ends (see README "Run records")
    model.safetensors   the weights the summary reports
    checkpoint/         step-*/ (keep-last-K) and best/, see trainlab.engine.checkpoint
    .lock               PID of the process writing the folder

Every file is written atomically (trainlab.atomic).
"""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainlab import __version__
from trainlab.atomic import write_json, write_jsonl, write_text
from trainlab.errors import RunDirError

RUN_FORMAT = 1
LOCK = ".lock"


def default_dir(name: str, root: str | Path = "runs") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(root) / f"{name}-{stamp}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``.lock`` created with O_EXCL holding the owner's PID; a lock whose PID is dead is stale."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK
        self.held = False

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = int(self.path.read_text().strip() or "0")
                except (OSError, ValueError):
                    owner = 0
                if owner and owner != os.getpid() and _pid_alive(owner):
                    raise RunDirError(
                        f"run folder {self.path.parent} is in use by process {owner} (lock {self.path}); "
                        "wait for it to finish or choose another --out"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            self.held = True
            return
        raise RunDirError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


class RunDir:
    """A run folder being written by this process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = RunLock(self.path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoint"

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> RunDir:
        """A new run folder; an existing non-empty one is refused unless ``overwrite``."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"output path {path} exists and is not a folder")
        if path.is_dir() and (path / LOCK).exists():
            probe = cls(path)
            probe.lock.acquire()  # refuses when another live process holds it; clears a stale lock
            probe.lock.release()
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise RunDirError(
                    f"output folder {path} already exists; pass --overwrite to replace it, "
                    f"or 'trainlab resume {path}' to continue it"
                )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create output folder {path}: {exc.strerror}") from None
        run = cls(path)
        run.lock.acquire()
        if overwrite:
            for child in path.iterdir():
                if child.name != LOCK:
                    _remove(child)
        return run

    @classmethod
    def open_existing(cls, path: str | Path) -> RunDir:
        path = Path(path)
        info_path = path / "run.json"
        if not path.exists():
            raise RunDirError(f"run folder {path} does not exist")
        if not info_path.is_file():
            raise RunDirError(f"{path} is not a trainlab run folder (no run.json)")
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"cannot read {info_path}: {exc}") from None
        if info.get("format") != RUN_FORMAT:
            raise RunDirError(
                f"run folder {path} has format {info.get('format')!r} (trainlab {info.get('trainlab', '?')}); "
                f"this trainlab {__version__} reads format {RUN_FORMAT}"
            )
        run = cls(path)
        run.lock.acquire()
        return run

    def info(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text())

    def write_info(self, **fields: Any) -> None:
        current = self.info() if (self.path / "run.json").exists() else {}
        current.update({"format": RUN_FORMAT, "trainlab": __version__, **fields})
        write_json(self.path / "run.json", current)

    def write_config(self, text: str) -> None:
        write_text(self.path / "config.yaml", text)

    def write_metrics(self, history: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        records = sorted([*history, *events], key=lambda r: (r.get("step", 0), "event" in r))
        write_jsonl(self.path / "metrics.jsonl", records)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        self.lock.release()


def _remove(path: Path) -> None:
    import shutil

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
