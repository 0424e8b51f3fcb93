"""``trainlab predict``: a finished run's predictions of an input file, as CSV on stdout or in ``-o FILE``.

The predicting is :meth:`trainlab.loaded_run.LoadedRun.predict_file`'s; this module checks where the CSV
goes (never a folder, a file of another format, the run's own records or the input itself) before any
prediction, and writes it atomically where it is a regular file (:func:`trainlab.atomic.write_output_text`).
"""

from __future__ import annotations

import os
from pathlib import Path

from trainlab.errors import ConfigError, folder_error
from trainlab.inference import load_run

# what -o may be named: predict writes comma-separated CSV text; a .parquet or .json name would hold CSV
OUTPUT_SUFFIXES = (".csv", ".txt", "")


def _check_output(out: str, run_dir: str, input_path: str) -> None:
    """Refuse an ``-o`` that predict cannot or must not write, before predicting: a folder, a name of another
    format (unless it is a device, FIFO or descriptor, written in place: its name says no format), a file in
    the run folder (its records would be replaced; a symlink's target in any run folder, or in a folder that
    does not exist: :func:`trainlab.atomic.link_target`), or the input file itself."""
    from trainlab.atomic import check_output_path, is_written_in_place
    from trainlab.data.paths import candidates

    if not out:  # Path('') is '.', the folder the command runs in
        raise ConfigError("-o is empty; give the CSV file to write, e.g. -o predictions.csv")
    target = Path(out)
    if target.is_dir():  # else the atomic writer's temp file is what the error names
        raise ConfigError(f"-o {out} is a folder; give the CSV file to write, e.g. -o {target / 'predictions.csv'}")
    if target.suffix.lower() not in OUTPUT_SUFFIXES and not is_written_in_place(target):  # a FIFO's name: any
        raise ConfigError(f"-o {out}: predict writes CSV (comma-separated text), not {target.suffix}; give a .csv "
                          f"file, e.g. -o {target.with_suffix('.csv')}")
    resolved, run = target.resolve(), Path(run_dir).resolve()
    if resolved == run or run in resolved.parents:
        raise ConfigError(f"-o {out} is inside the run folder {run_dir}, whose records predict must not replace; "
                          "write the predictions outside it")
    check_output_path(target, follow_link=True)  # a link into another run folder, or to a folder that is not
    source = next((path for path in candidates(input_path) if path.exists()), None)  # as the input is found
    if source is not None and (resolved == source.resolve() or (target.exists() and os.path.samefile(target, source))):
        raise ConfigError(f"-o {out} is the input file {input_path}, which the predictions would replace; "
                          "give another file to write")


def predict_command(run_dir: str, input_path: str, out: str | None = None, proba: bool = False,
                    checkpoint: str | None = None, threshold: float | None = None) -> str | None:
    """``trainlab predict``: write the predictions of ``input_path`` as CSV to ``out``, or return the CSV text
    when ``out`` is None (the CLI prints it). ``checkpoint`` (``--checkpoint best``) predicts with the weights of
    that checkpoint of the run instead of its ``model.safetensors`` (:func:`trainlab.inference.load_run`); ``threshold``
    (``--threshold 0.2``, binary and multi-label runs) predicts class 1 where its probability is >= it. A regular or new file is written atomically (its folders are
    created, as ``report`` and ``plot`` create theirs; a replaced file keeps its permission bits); a symlink's
    target is written, the link kept (never into a run folder; its folder is not created); a
    device, FIFO or descriptor (``/dev/null``, a named pipe, ``/dev/stdout``) is written through
    (:func:`trainlab.atomic.write_output_text`).

    Raises:
        ConfigError: ``out`` is an existing folder, is named for another format than CSV (``.csv``,
            ``.txt`` or no suffix), lies inside the run folder, or is the input file (all checked before
            predicting); ``checkpoint`` names no checkpoint of the run.
    """
    from trainlab.atomic import write_output_text

    if out is not None:
        _check_output(out, run_dir, input_path)
    table = load_run(run_dir, checkpoint=checkpoint).predict_file(input_path, proba=proba, threshold=threshold)
    # %.9g: float32 round-trips; a float64 column (regression in original units) keeps its 17 digits
    wide = any(str(dtype) == "float64" for dtype in table.dtypes)
    text = table.to_csv(index=False, lineterminator="\n", float_format="%.17g" if wide else "%.9g")
    if out is None:
        return text
    try:  # a link's own folder exists; the folder of what it leads to is never created (atomic.link_target)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be: the path's fault (exit 2); a read-only disk: 5
        raise folder_error(f"cannot create the folder of {out}", exc) from None
    write_output_text(out, text, follow_link=True)  # -o: the user named it
    return None
