"""Run folders: the folder a run writes, created, overwritten (staged: trainlab.run_staging) or resumed, and the
records written into it.

``runs/<name>-<UTC timestamp>/`` (``-2``, ``-3``, ... appended when runs started in the same second: see
:meth:`RunDir.create_at_free_name`; or ``--out DIR``) holds::

    run.json            format version, trainlab version, config hash, status, model_sha256
    config.yaml         the fully resolved config
    metrics.jsonl       one JSON object per epoch (epoch, step, lr, train_loss, val_*, elapsed_s)
    summary.json        written once training ends (see README "Run records")
    model.safetensors   the weights the summary reports
    loss.safetensors    the loss's learned state the summary used (a loss that learns any)
    checkpoint/         step-*/ (keep-last-K) and best/, see trainlab.engine.checkpoint
    .lock               PID of the process writing the folder, flock()ed while it runs

Every file is written atomically (trainlab.atomic).

Overwriting (``--overwrite``, ``output.dir`` of an old run) deletes nothing that trainlab cannot
prove is its own: see :meth:`RunDir.create`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainlab import __version__
from trainlab.atomic import append_bytes, appended_size, write_json, write_text
from trainlab.bounded_read import read_regular_file
from trainlab.code_policy import resume_command_words
from trainlab.creation_leftovers import (
    creation_leftovers,
    killed_while_created,
    left_by_this_run,
    leftovers_message,
    stopped_before_run_json,
    written_by_trainlab,
)
from trainlab.errors import DataError, RunDirError, folder_error
from trainlab.lost_record import cannot_resume, damaged_run_json_advice, lost_run_json
from trainlab.records import WrittenMetrics, appended_metrics, metrics_file_records, record_json_text
from trainlab.run_layout import (
    MAX_RUN_JSON_BYTES,
    RUN_FILES,
    RUN_FORMAT,
    holds_something_to_keep,
    is_run_folder,
    refuse_linked_records,
)
from trainlab.run_leftovers import clean_stale_temporaries, is_stale_temporary, remove_path, swap_place
from trainlab.run_lock import LOCK, RunLock
from trainlab.run_staging import (
    clean_stale_staging,
    put_back_cut_swap,
    staging_name,
    staging_place,
    stranded_overwrites,
    swap_into_place,
)
from trainlab.shell_command import quoted_command


def default_dir(name: str, root: str | Path = "runs") -> Path:
    """``root/<name>-<UTC time to the second>``: the run folder of a run not told where to go. Runs started
    in the same second share it; each claims its own with :meth:`RunDir.create_at_free_name`."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(root) / f"{name}-{stamp}"


# --------------------------------------------------------------------------- overwrite safety

def _check_deletable(path: Path, protect: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse (RunDirError) unless ``path`` is provably a run folder that holds nothing protected."""
    _check_location(path, protect)
    refuse = f"refusing to overwrite {path}"
    if not is_run_folder(path) and not lost_run_json(path, RUN_FILES):
        raise RunDirError(f"{refuse}: it is not a trainlab run folder (no run.json of run format {RUN_FORMAT}); "
                          "choose another --out, or empty it yourself")
    foreign = sorted(p.name for p in path.iterdir() if p.name not in RUN_FILES and not p.name.startswith("."))
    if foreign:
        raise RunDirError(f"{refuse}: it holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
                          "which trainlab did not write; move it out or choose another --out")


def _check_location(path: Path, protect: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse (RunDirError) to overwrite the working directory, the home folder, a parent of either, a
    filesystem root, or a folder holding one of ``protect`` (what this run reads)."""
    real = path.resolve()
    refuse = f"refusing to overwrite {path}"
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise RunDirError(f"{refuse}: it is the working directory or one of its parents; choose another --out")
    home = Path.home().resolve()
    if real == home or real in home.parents or real == Path(real.anchor):
        raise RunDirError(f"{refuse}: it is your home folder, one of its parents or a filesystem root")
    for item in protect:
        other = Path(item).resolve()
        if real == other or real in other.parents:
            raise RunDirError(f"{refuse}: it holds {item}, which this run reads; choose another --out")


def _in_use_message(path: Path, cli: bool) -> str:
    """Why a new run does not go into the existing folder ``path`` without ``overwrite``, and what will work:
    a run folder may be replaced or continued, one that lost its run.json only replaced, anything else not
    touched."""
    replace, out = ("--overwrite", "--out") if cli else ("overwrite=True", "out")
    if lost_run_json(path, RUN_FILES):
        return (f"output folder {path} already exists and holds a run whose run.json is missing, which cannot be "
                f"resumed; pass {replace} to replace it, or choose another {out}")
    if not os.path.lexists(path / "run.json"):
        names = sorted(entry.name for entry in path.iterdir() if not is_stale_temporary(entry))
        listed = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        return (f"output folder {path} already exists and is not a trainlab run folder (it holds {listed}); "
                f"choose another {out}, or empty it yourself")
    resume = quoted_command(*resume_command_words(path))
    how = (f"pass --overwrite to replace it, or {resume} to continue it" if cli else
           "pass overwrite=True to replace it, or resume_if_exists=True to continue it")
    return f"output folder {path} already exists; {how}"


# --------------------------------------------------------------------------- the run folder

class RunDir:
    """A run folder being written by this process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = RunLock(self.path)
        self.final: Path | None = None  # set while this run is staged beside the run it overwrites
        self._swap_at: Path | None = None  # the folder the commit swaps: final, or what its link resolves to
        self._old_lock: RunLock | None = None
        self.adopted_from: Path | None = None  # the stranded overwrite this run was taken from (resume)
        # what the folder held from the run's start (restore_records): file name -> text (config.yaml) or JSON
        self.records: dict[str, Any] = {}
        self.restored: list[str] = []  # the records restore_records wrote again, in order
        self._info: dict[str, Any] = {}  # run.json as last read or written: what write_info restores it from

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoint"

    @property
    def final_path(self) -> Path:
        """Where the run lives once committed: the folder to name in messages and to return to callers."""
        return self.final if self.final is not None else self.path

    @property
    def staged(self) -> bool:
        """True until :meth:`commit_overwrite` has swapped this run into place."""
        return self.final is not None

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False,
               protect: Sequence[str | os.PathLike[str]] = (), records: Mapping[str, Any] | None = None) -> RunDir:
        """A new run folder at ``path``.

        A missing or empty folder is used as is, and so is one left by a run killed before it wrote
        run.json (its free lock, :data:`CREATION_FILES` and temporaries only), and one left by an earlier
        attempt of this same run that an error (a full disk) stopped before run.json: no lock, and only
        :data:`CREATION_FILES` that hold exactly ``records`` (file name -> the text or JSON object this
        run writes there, :func:`left_by_this_run`), which rewriting loses nothing of. A folder
        with any other file, or another config's records, is not reused.

        A folder that holds only :data:`CREATION_FILES` (no run.json: :func:`creation_leftovers`)
        of another config (a train stopped by a full disk, its config edited since) is refused in one
        line that says so and names them. With ``overwrite`` it is reused, those files deleted first (not
        staged), when each is byte for byte what trainlab writes (:func:`written_by_trainlab`) and the
        folder passes the location checks below: they are records of a run that never started training,
        which no command reads without run.json, and trainlab writes them again, so replacing them loses
        nothing a user wrote. A hand-written ``config.yaml`` (the user's own file, alone in its folder)
        is not in that form and is never deleted: :func:`is_run_folder` cannot vouch for such a folder.

        Any other non-empty folder is refused unless ``overwrite``, and
        even then only if :func:`is_run_folder` proves it is a run folder, it is not the working
        directory, the home folder or a parent of either, it contains none of ``protect`` (the config
        file and data files this run reads), and it holds only files trainlab writes. Otherwise one
        line (RunDirError, exit 2) and every file stays.

        Overwriting never deletes first: the new run is written into a sibling staging folder
        ``.<name>.new-<pid>`` (``run.path``: :func:`staging_name`, beside the folder a ``path`` that is a
        symbolic link resolves to, whose target is then replaced and the link kept), while the old run
        stays at ``path`` and stays locked.
        The engine calls :meth:`commit_overwrite` when the new run ends (finished, diverged or
        interrupted) with something to keep (:meth:`has_something_to_keep`: its results, or a step
        checkpoint to resume from; ``best/`` alone is none); that atomically swaps the folders and deletes
        the old run, after which ``run.path`` is ``path``. :meth:`close` commits too if the staging folder
        holds something to keep, and otherwise discards it, so a run that fails or is stopped before then
        (bad data, divergence at step 2, a full disk) leaves the old run intact. A run
        killed (SIGKILL) after its first step checkpoint is left in its staging folder; ``trainlab resume
        path`` adopts it (:func:`stranded_overwrites`), and another ``--overwrite`` replaces it; one killed
        between the two renames of a swap (where renameat2 cannot exchange) is first put back to that state
        (:func:`put_back_cut_swap`).
        """
        path = Path(path)
        put_back_cut_swap(path)  # the old run back in place: an overwrite of it stages beside it, as always
        if path.exists() and not path.is_dir():
            raise RunDirError(f"output path {path} exists and is not a folder")
        reused = cls._left_by_a_killed_run(path) or (cls._left_by_this_run(path, records) if records else None)
        if reused is not None:
            return reused
        if path.is_dir() and any(not is_stale_temporary(p) for p in path.iterdir()):
            return cls._over_a_folder_in_use(path, overwrite, protect)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise folder_error(f"cannot create output folder {path}", exc) from None
        run = cls(path)
        run.lock.acquire()
        clean_stale_temporaries(path)  # under the lock
        return run

    @classmethod
    def create_at_free_name(cls, path: str | Path) -> RunDir:
        """A new, empty run folder at ``path`` or, when that name is taken, at the first free one of
        ``path-2``, ``path-3``, ...: for a name trainlab chose (:func:`default_dir`), which runs started in
        the same second share. Each name is claimed by ``mkdir``, which of processes racing for one name
        exactly one wins (the others go on to the next), then locked. Nothing that exists is reused,
        replaced or continued: a taken name is another run's, whatever it holds (its config may differ)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise folder_error(f"cannot create output folder {path}", exc) from None
        candidate, number = path, 1
        while True:
            try:
                candidate.mkdir()  # the claim: fails with EEXIST for every process but one
                break
            except FileExistsError:
                number += 1
                candidate = path.with_name(f"{path.name}-{number}")
            except OSError as exc:
                raise folder_error(f"cannot create output folder {candidate}", exc) from None
        run = cls(candidate)
        try:
            run.lock.acquire()
        except BaseException:
            with contextlib.suppress(OSError):
                candidate.rmdir()  # our own claim, still empty: a rerun chooses a name again
            raise
        return run

    @classmethod
    def _left_by_a_killed_run(cls, path: Path) -> RunDir | None:
        """``path`` emptied and locked when a run killed before run.json left it (:func:`killed_while_created`:
        its free lock, creation files and temporaries only); None otherwise."""
        if not (path.is_dir() and (path / LOCK).exists()):
            return None
        probe = RunLock(path)
        probe.acquire()  # refuses when another live process holds it
        try:
            if killed_while_created(path):  # under the lock: nobody else writes here
                for entry in path.iterdir():
                    if entry.name != LOCK:
                        remove_path(entry)
                run = cls(path)
                run.lock = probe
                return run
        except BaseException:
            probe.release()
            raise
        probe.release()
        return None

    @classmethod
    def _left_by_this_run(cls, path: Path, records: Mapping[str, Any]) -> RunDir | None:
        """``path`` locked as it is when an earlier attempt of this same run left exactly ``records`` there
        (:func:`left_by_this_run`, checked again under the lock); None otherwise."""
        if not (path.is_dir() and left_by_this_run(path, records)):
            return None
        run = cls(path)
        run.lock.acquire()  # refuses while another process writes here
        if left_by_this_run(path, records):  # still, under the lock: the files are rewritten, the same
            clean_stale_temporaries(path)
            return run
        run.lock.release()
        return None

    @classmethod
    def _over_a_folder_in_use(cls, path: Path, overwrite: bool, protect: Sequence[str | os.PathLike[str]]) -> RunDir:
        """A run folder for ``path``, which holds files: another config's creation leftovers replaced (or
        refused), or an old run staged over (or refused): :meth:`create`'s rules."""
        from trainlab.code_policy import current_policy  # the command line's words, or Python's

        cli = current_policy().cli
        if leftovers := creation_leftovers(path):  # not this run's (left_by_this_run said so before)
            if overwrite:  # the working directory, say: refused as any overwrite of it is, first
                _check_location(path, protect)
            ours = written_by_trainlab(path, leftovers)
            if overwrite and ours:
                run = cls._replacing_leftovers(path, leftovers)
                if run is None:
                    raise RunDirError(f"output folder {path} changed while it was checked; run the command again")
                return run
            raise RunDirError(leftovers_message(path, leftovers, ours, cli, overwrite))
        if not overwrite:
            raise RunDirError(_in_use_message(path, cli))
        _check_deletable(path, protect)
        return cls._staged_beside(path)

    @classmethod
    def _replacing_leftovers(cls, path: Path, leftovers: list[str]) -> RunDir | None:
        """``path``, locked, its ``leftovers`` removed (checked again under the lock: still all it holds, as
        trainlab writes them); None, unlocked and untouched, when they changed meanwhile."""
        run = cls(path)
        run.lock.acquire()  # refuses while another process writes here
        try:
            if creation_leftovers(path) != leftovers or not written_by_trainlab(path, leftovers):
                run.lock.release()
                return None
            for name in leftovers:
                remove_path(path / name)
            clean_stale_temporaries(path)
        except BaseException:
            run.lock.release()
            raise
        return run

    @classmethod
    def _staged_beside(cls, final: Path) -> RunDir:
        old_lock = RunLock(final)
        old_lock.acquire()  # nobody resumes the old run while it is being replaced
        try:
            clean_stale_staging(final)
            for stranded in stranded_overwrites(final):  # earlier overwrites of it, killed: this one replaces them
                remove_path(stranded)
            staging = staging_name(final)
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            run = cls(staging)
            run.lock.acquire()
        except OSError as exc:
            old_lock.release()
            raise folder_error(f"cannot create a staging folder {staging_place(final)}", exc) from None
        except BaseException:
            old_lock.release()
            raise
        run.final, run._swap_at, run._old_lock = final, swap_place(final), old_lock
        return run

    def has_something_to_keep(self) -> bool:
        """:func:`~trainlab.run_layout.holds_something_to_keep` of this folder: finished, or a step checkpoint."""
        return holds_something_to_keep(self.path)

    def commit_overwrite(self) -> Path:
        """Swap the staged run into place and delete the run it replaces; a no-op when not staged.

        Afterwards ``self.path`` (and ``self.checkpoints``) point at the final folder: callers that
        cached the staging path must re-read them. Returns the final path. A final path that is a
        symbolic link stays one: the swap is at the folder it resolved to when the run was staged
        (whose lock this run holds), beside which the staging folder lies.
        """
        if self.final is None:
            return self.path
        final, staging = self.final, self.path
        target = self._swap_at if self._swap_at is not None else swap_place(final)
        aside = swap_into_place(staging, target)
        self.path, self.final, self._swap_at = final, None, None
        self.lock.moved_to(final)
        if self._old_lock is not None:
            self._old_lock.moved_to(aside)
            self._old_lock.release()
            self._old_lock = None
        shutil.rmtree(aside, ignore_errors=True)
        return final

    def discard_staging(self) -> None:
        """Remove the staged run (nothing worth keeping); the old run at ``final`` is untouched."""
        if self.final is None:
            return
        self.lock.release()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path, self.final, self._swap_at = self.final, None, None
        self.lock = RunLock(self.path)
        if self._old_lock is not None:
            self._old_lock.release()
            self._old_lock = None

    @classmethod
    def open_existing(cls, path: str | Path) -> RunDir:
        path = Path(path)
        info_path = path / "run.json"
        put_back_cut_swap(path)  # then the killed overwrite is adopted below (stranded_overwrites), as before a swap
        if not path.exists():
            raise RunDirError(f"run folder {path} does not exist")
        if not info_path.is_file() and lost_run_json(path, RUN_FILES):
            raise RunDirError(cannot_resume(path))
        if not info_path.is_file():
            stopped_early = path.is_dir() and stopped_before_run_json(path)
            leftovers = creation_leftovers(path) if stopped_early else []
            other = ("" if not leftovers else
                     "; with another config, pass --overwrite to replace its files"
                     if written_by_trainlab(path, leftovers) else
                     f"; with another config, remove its {', '.join(leftovers)} or choose another --out")
            raise RunDirError(f"{path} is not a trainlab run folder (no run.json)" + (
                "; a 'trainlab train' into it stopped before training started: rerun that same command" + other
                if stopped_early else ""))
        try:
            info = json.loads(read_regular_file(info_path, MAX_RUN_JSON_BYTES, follow_links=False))
        except OSError as exc:  # permission, I/O: the folder cannot be used, its record may be fine
            raise RunDirError(f"cannot read {info_path}: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:  # damaged: a data error, as in plot/report
            raise DataError(f"cannot read {info_path}: {exc}; {damaged_run_json_advice(path)}") from None
        if not isinstance(info, dict):
            raise DataError(f"cannot read {info_path}: not a JSON object; {damaged_run_json_advice(path)}")
        if info.get("format") != RUN_FORMAT:
            raise RunDirError(
                f"run folder {path} has format {info.get('format')!r} (trainlab {info.get('trainlab', '?')}); "
                f"this trainlab {__version__} reads format {RUN_FORMAT}"
            )
        refuse_linked_records(path, "resume")  # before the lock, the leftovers' cleanup and any checkpoint
        run = cls(path)
        run.lock.acquire()
        clean_stale_temporaries(path)  # under the lock: nothing else writes here
        stranded = stranded_overwrites(path)
        if stranded:  # a `train --overwrite` of this run killed after its first checkpoint: continue that run
            return run._adopt(stranded)
        clean_stale_staging(path)  # under the lock: e.g. a replaced run whose deletion was cut short
        return run

    def _adopt(self, stranded: list[Path]) -> RunDir:
        """Swap the newest of ``stranded`` (dead staging folders of an overwrite, newest first) into place,
        deleting the run it replaces and the older attempts; returns the adopted run, locked at ``self.path``."""
        staged = RunDir(stranded[0])
        staged.lock.acquire()
        staged.final, staged._swap_at, staged._old_lock = self.path, swap_place(self.path), self.lock
        staged.adopted_from = stranded[0]
        staged.commit_overwrite()
        for older in stranded[1:]:
            remove_path(older)
        return staged

    def info(self) -> dict[str, Any]:
        self._info = json.loads((self.path / "run.json").read_text())
        return self._info

    def write_info(self, **fields: Any) -> None:
        """Merge ``fields`` into run.json, written last: any record of :attr:`records` the folder lost is
        written again first (:meth:`restore_records`), and a run.json the folder lost is rewritten from the
        one this run last read or wrote, so that it never vouches for a folder without its records."""
        self.restore_records()
        current = self.info() if (self.path / "run.json").exists() else dict(self._info)
        current.update({"format": RUN_FORMAT, "trainlab": __version__, **fields})
        write_json(self.path / "run.json", current)
        self._info = current

    def restore_records(self) -> list[str]:
        """Write again each of :attr:`records` (config.yaml, labels.json, model.json, ...: what the folder held
        from the run's start, kept in memory) that the folder no longer holds: deleted while the run trained
        (``rm -rf`` of the folder, which the next checkpoint made again). Returns the names written, also
        added to :attr:`restored` (run.json among them when it is gone too: :meth:`write_info` rewrites it)."""
        lost = [name for name in self.records if not os.path.lexists(self.path / name)]
        for name in lost:
            record = self.records[name]
            if name == "config.yaml":
                write_text(self.path / name, record)
            else:
                write_json(self.path / name, record)
        if self._info and not os.path.lexists(self.path / "run.json"):
            lost.append("run.json")
        self.restored += [name for name in lost if name not in self.restored]
        return lost

    def write_config(self, text: str) -> None:
        write_text(self.path / "config.yaml", text)

    def write_metrics(self, history: list[dict[str, Any]], events: list[dict[str, Any]],
                      step_records: list[dict[str, Any]] = (), written: WrittenMetrics | None = None
                      ) -> WrittenMetrics:
        """metrics.jsonl: step, epoch and event records ordered by step (step < epoch < event at one step),
        non-finite values as null (:func:`trainlab.records.metrics_file_records`, as ``trainlab.fit`` writes it).

        ``written``: what the last write of these lists left in the file (this method's return value). Where
        the lists only extend it (:func:`~trainlab.records.appended_metrics`) and the file still has the size it
        left, the new lines are appended (:func:`~trainlab.atomic.append_bytes`: one write, fsynced), so a
        write costs what it adds; otherwise (None, a rollback or resume, a changed record, a failed or partial
        earlier write) the file is rewritten whole and atomically. Returns what the file now holds."""
        path = self.path / "metrics.jsonl"
        appended = appended_metrics(step_records, history, events, written) if written is not None else None
        if appended is not None and appended_size(path) == written.size:
            text, extent = appended
            if not text:
                return extent
            return dataclasses.replace(extent, size=append_bytes(path, text.encode()))
        data = "".join(json.dumps(r) + "\n" for r in metrics_file_records(history, events, list(step_records)))
        write_text(path, data)  # as write_jsonl writes it
        return WrittenMetrics.of(step_records, history, events, len(data.encode()))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """summary.json, indented, each list of numbers on one line (:func:`~trainlab.records.record_json`)."""
        write_text(self.path / "summary.json", record_json_text(summary))

    def close(self) -> None:
        """Release the lock; a staged overwrite is committed if it has something to keep, else discarded."""
        if self.final is not None:
            if self.has_something_to_keep():
                self.commit_overwrite()
            else:
                self.discard_staging()
                return
        self.lock.release()
