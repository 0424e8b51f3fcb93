"""A finished run folder as a predictor: ``trainlab.load_run(RUN_DIR)`` and ``trainlab predict``.

:func:`load_run` rebuilds the run's model from its folder and loads ``model.safetensors`` (and
``loss.safetensors``, the learned state of its loss, when the run wrote one):

- from ``model.json`` (:func:`model_record`, written at training time: the model's input
  shape and output width, the resolved loss and model specs) it builds the loss and the model
  directly, **without reading the training data**;
  (image runs: the per-channel normalisation is recorded too; text runs: the tokenizer);
  an ``hf_pretrained`` encoder is built from its checkpoint's ``config.json`` alone, the checkpoint's
  weights unread (the run's replace them all), and a checkpoint gone from where the run's config names it
  is one DataError saying so; a changed ``data.tokenizer_path`` folder is warned of (run.json's fingerprint);
- a run without ``model.json`` (or whose inputs pass through an evaluation transform other than a
  normalisation) is rebuilt with :func:`trainlab.builders.build`, which reads and splits the
  training data once.

Either way the run folder's ``config.yaml`` is read under :func:`trainlab.code_policy.run_code_policy`: it
imports no ``module:attr`` code unless the user opted in (``--allow-code``; docs/security.md), and then
also from the folders the run was trained from.

``load_run(path, checkpoint="best")`` loads the weights of one of the run's checkpoints instead
(``checkpoint/best/``, the newest ``last``, a ``step-*`` folder): those the run's own evaluation at that step
used (:func:`trainlab.run_weights.checkpoint_state`). A checkpoint folder given as the run folder is one error naming the run and
the checkpoint to give (:func:`run_config_path`).

Inputs: :meth:`LoadedRun.predict` takes the model's inputs, preprocessed as the training split was
(what :meth:`LoadedRun.read` returns for a file, :meth:`LoadedRun.preprocess` for raw rows), checked against
the recorded row shape and converted to the training rows' dtype
(:func:`trainlab.data.predict_input.model_rows`); rows that look raw (a standardised feature averaging beyond
:data:`UNSCALED_MEAN_LIMIT` training standard deviations) are warned of. For a run trained on a CSV
it also takes a ``pandas.DataFrame`` of raw columns, which goes through :meth:`LoadedRun.read` first.

Outputs (:meth:`LoadedRun.predict`, :meth:`LoadedRun.predict_file`):

- binary / multiclass: the class index (``predict``) or the class **name** (``predict_file``,
  from ``labels.json``); probabilities from the loss's ``probabilities(output)`` (softmax over K
  logits; for one binary logit, ``[1 - sigmoid(z), sigmoid(z)]``), one column per class;
- multilabel: one 0/1 column per label (logit > 0), probabilities ``sigmoid(z)`` per label;
- regression: the model's outputs in the target's original units
  (:func:`trainlab.data.preprocessing.inverse_target`, ``y = y_std * scale + mean``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab.config import Config
from trainlab.config_fields import counted, path_argument
from trainlab.data.predict_input import is_table, model_rows, read_for_predict
from trainlab.data.predict_media import (
    IMAGE_SOURCES,
    TEXT_SOURCES,
    are_texts,
    encode_texts,
    read_images,
    read_texts,
    refuse_non_texts,
    text_cells,
    text_encoding,
)
from trainlab.errors import ConfigError, DataError, RunDirError
from trainlab.run_records import (
    LABELS_FIELDS,
    LABELS_RECORD,
    MODEL_FIELDS,
    MODEL_RECORD,
    PREPROCESSING_FIELDS,
    PREPROCESSING_RECORD,
    check_record_digests,
    checked,
    consistent,
    is_record_file,
    load_trained_config,
    read_json,
)
from trainlab.run_weights import (
    checkpoint_given_as_run,
    checkpoint_of_run,
    load_trained_state,
    read_trained_state,
)
from trainlab.runtime import resolve_device
from trainlab.shell_command import quoted_command

if TYPE_CHECKING:
    import pandas as pd

FORMAT = 1
PREDICT_BATCH = 4096  # rows per forward pass: bounds memory on large files
# a standardised feature whose mean over the rows given predict lies beyond this many training standard
# deviations: the rows look raw (LoadedRun._warn_if_unscaled); a real shift of a few std stays unwarned
UNSCALED_MEAN_LIMIT = 10.0
# (run -> predict) tasks whose outputs predict can name; metric-learning losses give embeddings instead
PREDICTABLE_TASKS = ("regression", "binary", "multiclass", "multilabel")


# --------------------------------------------------------------------------- the record written at training

def model_record(built: Any) -> dict[str, Any]:
    """What :func:`load_run` needs to rebuild ``built``'s model without the data (JSON-serialisable)."""
    data, loss = built.data, built.loss
    spec = built.config.model.spec()
    if "vocab_size" in data.extras and spec["name"] == "transformer_encoder":
        spec.setdefault("vocab_size", data.extras["vocab_size"])
    loss_spec = built.notes.get("loss_advice", {}).get("loss") or built.config.strategy.loss.spec()
    normalize = _normalize_record(data.eval_transform)
    return {
        "format": FORMAT,
        "task": data.task,
        "num_classes": data.num_classes,
        "target_dim": data.target_dim,
        "input_shape": list(data.input_shape),
        "input_dtype": str(data.train.x.dtype).removeprefix("torch."),
        "output_dim": int(loss.output_dim(data.task, data.num_classes, data.target_dim)),
        "loss": loss_spec,
        "model": spec,
        # a per-batch evaluation transform that is not a recorded normalisation: load_run rebuilds from the data
        "eval_transform": data.eval_transform is not None and normalize is None,
        "normalize": normalize,
        "text": text_encoding(data.extras),
    }


def _normalize_record(transform: Any) -> dict[str, list[float]] | None:
    from trainlab.data.transforms import Normalize

    if isinstance(transform, Normalize):
        return {"mean": list(transform.mean), "std": list(transform.std)}
    return None


# --------------------------------------------------------------------------- the loaded run

@dataclass
class LoadedRun:
    """A finished run, ready to predict. ``model`` is in eval mode on ``device``.

    Attributes:
        path: the run folder.
        config: the run's resolved config (``config.yaml``).
        model: the trained ``nn.Module`` with the weights of ``model.safetensors`` (or of :attr:`checkpoint`).
        loss: the run's loss (decides how outputs become predictions and probabilities), with the
            learned state of ``loss.safetensors`` when the run saved one (a learned variance, alpha...).
        task: regression, binary, multiclass or multilabel.
        class_names: class (or label) names in index order; None for regression.
        preprocessing: the fitted preprocessing (``preprocessing.json``) new rows go through.
        input_shape, input_dtype: one model input row as the training split held it; what
            :meth:`predict` checks and converts its inputs to.
    """

    path: Path
    config: Config
    model: torch.nn.Module
    loss: Any
    task: str
    class_names: list[str] | None
    preprocessing: dict[str, Any]
    num_classes: int | None = None  # classes (binary: 2) or labels; None for regression
    input_shape: tuple[int, ...] = ()  # one model input row, as the training split held it (): not checked
    input_dtype: str | None = None  # the training rows' dtype ("float32"; "int64" token ids; "uint8" pixels)
    output_dim: int | None = None  # the model's output width (the shape of an empty result)
    vocab_size: int | None = None  # token ids the model embeds (text runs), bounds the ids predict accepts
    text: dict[str, Any] | None = None  # the tokenizer of a text run (trainlab.data.predict_media.text_encoding)
    eval_transform: Any = None  # the run's per-batch evaluation transform (image normalisation), if any
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # what is non-finite in the saved weights (load_run: _nonfinite_weights), else None: predicting is refused
    nonfinite_weights: str | None = None
    checkpoint: str | None = None  # the checkpoint folder the weights came from (load_run's checkpoint), else None

    @property
    def ids_and_mask(self) -> bool:
        """Inputs are (N, 2, L) ``[input_ids, attention_mask]`` rows (a ``tokenizer: hf`` text run)."""
        return (self.text is not None and self.text.get("tokenizer") == "hf" and len(self.input_shape) == 2
                and self.input_shape[0] == 2)

    # -- arrays in, arrays out
    def model_input(self, x: Any) -> torch.Tensor:
        """``x`` as the model takes it (see :meth:`predict`): checked, converted, always (N, *input_shape)."""
        if self.text is not None:
            refuse_non_texts(x)  # a lone string, a list mixing texts and numbers: said here, not as "not numbers"
        if self._read_by_run(x):
            x = self.read(x)
        return model_rows(x, self.input_shape, self.input_dtype, self.vocab_size, ids_and_mask=self.ids_and_mask)

    def _read_by_run(self, x: Any) -> bool:
        """``x`` holds raw inputs that :meth:`read` preprocesses (a DataFrame, texts), not model inputs."""
        return is_table(x) or (self.text is not None and are_texts(x))

    def preprocess(self, x: Any) -> torch.Tensor:
        """Raw rows as the model takes them: the run's fitted preprocessing (``preprocessing.json``, fitted on
        its training split) applied to them, as ``trainlab predict`` applies it to an input file.

        A tabular run standardises its numeric features with the training split's mean and standard
        deviation, ``(x - mean) / std`` (:func:`trainlab.data.preprocessing.apply`); ``run.predict(run.preprocess(x))``
        is then the prediction of raw rows, such as ``sklearn.datasets.load_breast_cancer()``'s for a
        ``breast_cancer`` run. A run that fitted nothing (images: their normalisation is applied inside
        :meth:`predict`) gives the rows back as they are.

        Args:
            x: raw rows, (N, F) numbers with the training features in ``preprocessing["numeric_columns"]``
                order (one row (F,) counts as N = 1): a NumPy array, tensor or nested lists; or what
                :meth:`read` takes (a DataFrame of named columns, texts), which goes through :meth:`read`.

        Returns:
            (N, *input_shape) model inputs: float32 features, or the run's integer inputs.

        Raises:
            DataError: not numbers, non-finite values, another number of features, or an array for a run
                whose preprocessing one-hot encodes categorical columns (pass a DataFrame of them by name).
        """
        if self.text is not None:
            refuse_non_texts(x)
        if self._read_by_run(x):
            return self.read(x)
        fitted = self.preprocessing
        categorical = list(fitted.get("categorical_columns") or [])
        if categorical:
            raise DataError(f"preprocess: this run one-hot encodes its categorical column(s) {', '.join(categorical)}, "
                            "which an array of numbers does not hold; pass a pandas DataFrame with the training "
                            "columns by name (run.preprocess(df), or run.predict(df))")
        if not fitted.get("standardize"):
            return model_rows(x, self.input_shape, self.input_dtype, self.vocab_size, ids_and_mask=self.ids_and_mask)
        from trainlab.data import preprocessing as prep

        return torch.from_numpy(prep.apply(fitted, self._raw_rows(x), what="preprocess"))

    def _raw_rows(self, x: Any) -> np.ndarray:
        """Raw feature rows for :meth:`preprocess`: float64 (N, F), one row (F,) as N = 1, every value finite."""
        names = list(self.preprocessing.get("numeric_columns") or [])
        try:
            rows = np.asarray(x.detach().double().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
        except (ValueError, TypeError):
            raise DataError(f"preprocess takes raw rows of numbers shaped (N, {len(names) or 'F'}), the training "
                            f"features in order; got a {type(x).__name__} that is not one array of numbers") from None
        rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
        bad = ~np.isfinite(rows)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            column = where[1] if len(where) == 2 else None
            name = f", feature '{names[column]}'" if column is not None and column < len(names) else ""
            raise DataError(f"preprocess: row {where[0]} (counting from 0){name} holds {rows[where]}; the model "
                            "needs every feature as a finite number")
        return rows

    def outputs(self, x: Any) -> torch.Tensor:
        """The model's raw outputs for inputs ``x`` (see :meth:`predict`), in batches, without gradients.
        Rows given as model inputs are checked against the training split's scaling
        (:meth:`_warn_if_unscaled`).

        Raises:
            DataError: the run's weights hold NaN/inf (:attr:`nonfinite_weights`), or the model's outputs
                for some rows are not finite (an overflow: decoded, they would read as class 0).
        """
        self._refuse_nonfinite_weights()
        read_by_run = self._read_by_run(x)
        rows = self.model_input(x)
        if not read_by_run:
            self._warn_if_unscaled(rows)
        return self._forward(rows)

    def _refuse_nonfinite_weights(self) -> None:
        if self.nonfinite_weights is not None:
            raise DataError(f"run {self.path} cannot predict: {self.nonfinite_weights}")

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs for model inputs ``x`` (:meth:`model_input`), in batches of PREDICT_BATCH rows."""
        self._refuse_nonfinite_weights()
        if len(x) == 0 and self.output_dim is not None:
            return torch.empty((0, self.output_dim))
        chunks = []
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(x), PREDICT_BATCH):
                batch = x[start:start + PREDICT_BATCH].to(self.device)
                if self.eval_transform is not None:
                    batch = self.eval_transform(batch, None)
                chunks.append(self.model(batch).float().cpu())
        if not chunks:
            return torch.empty(0)
        output = torch.cat(chunks)
        _check_finite_outputs(output)
        return output

    def _warn_if_unscaled(self, rows: torch.Tensor) -> None:
        """One warning when model inputs look like raw rows: the run standardised its numeric features (its
        training rows then have mean 0 and standard deviation 1 in each), yet over ``rows`` some feature's mean
        lies beyond :data:`UNSCALED_MEAN_LIMIT` of those standard deviations. One mean per column: cheap."""
        fitted = self.preprocessing
        width = len(fitted.get("mean") or []) if fitted.get("standardize") else 0
        if not width or rows.ndim != 2 or rows.shape[1] < width or not len(rows) or not rows.is_floating_point():
            return
        means = rows[:, :width].double().mean(dim=0)
        beyond = (means.abs() > UNSCALED_MEAN_LIMIT).nonzero().reshape(-1).tolist()
        if not beyond:
            return
        column = max(beyond, key=lambda j: abs(float(means[j])))
        names = list(fitted.get("numeric_columns") or [])
        name = f"'{names[column]}'" if column < len(names) else f"{column} (counting from 0)"
        others = f" (and {counted(len(beyond) - 1, 'other feature')})" if len(beyond) > 1 else ""
        from trainlab.notices import warn

        remedy = ("pass the raw columns by name as a pandas DataFrame, run.predict(df), which the run preprocesses"
                  if fitted.get("categorical_columns") else
                  "pass raw rows through the run's preprocessing, run.predict(run.preprocess(x))")
        warn(f"predict: feature {name}{others} averages {float(means[column]):.4g} over these rows, where the run's "
             f"standardised training rows average 0 with standard deviation 1 (its raw training mean: "
             f"{fitted['mean'][column]:.4g}); predict takes rows preprocessed as the training split was, and these "
             f"look raw: {remedy}")

    def predict(self, x: Any) -> np.ndarray:
        """Predictions: class indices (N,), 0/1 labels (N, L), or regression values in original units
        (N,) for one target, (N, d) for several.

        Args:
            x: the model's inputs, preprocessed as the run's training split was (what :meth:`read`
                returns for a file, :meth:`preprocess` for raw rows: ``run.predict(run.preprocess(x_raw))``):
                a tensor, NumPy array or nested lists shaped (N, *input_shape). Numbers are
                converted to the training rows' dtype (float32 features; integer token ids stay
                integers, and must be whole numbers). One row shaped ``input_shape`` (a 1-D row of D
                features) counts as N = 1; 0 rows give an empty result. For one-channel images
                (``input_shape`` (1, H, W)) also (N, H, W) and one image (H, W): the shapes ``trainlab
                predict`` takes from an .npz, by the same rule
                (:func:`trainlab.data.predict_shapes.rows_shape`). For a run trained on a CSV,
                also a ``pandas.DataFrame`` of raw columns (as :meth:`read` takes it), preprocessed
                by the run; for a text run, a list of strings (or a Series, or a DataFrame with the
                text column), tokenized as the training texts were. An array whose standardised
                feature averages beyond 10 training standard deviations is warned of as raw rows.

        Raises:
            DataError: rows of another shape, values that are not numbers, non-finite values, or
                (integer inputs) values that are not whole or out of range (token ids at or above the
                model's vocabulary; an attention mask other than 0/1); a run whose saved weights hold
                NaN/inf (it diverged with ``strategy.divergence.policy: off``: :func:`load_run` still
                loads it, for inspection, but it predicts nothing); rows whose outputs are not finite.
        """
        return self._decisions(self.outputs(x))

    def _decisions(self, output: torch.Tensor) -> np.ndarray:
        """:meth:`predict`'s answer for the model's outputs."""
        if self.task == "regression":  # as the metrics saw them: the loss's reading (poisson: exp), original units
            values = self._original_units(self.loss.predict(output)).numpy()
            return values.reshape(len(values)) if values.ndim == 2 and values.shape[1] == 1 else values
        return self.loss.predict(output).numpy()

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (N, K) (binary: K = 2, columns P(class 0), P(class 1)); per-label (N, L).

        ``x`` as for :meth:`predict`.
        """
        if self.task == "regression":
            raise DataError("probabilities exist for classification runs; this run is a regression")
        return self._probabilities(self.outputs(x))

    def _probabilities(self, output: torch.Tensor) -> np.ndarray:
        """:meth:`predict_proba`'s answer for the model's outputs."""
        probabilities = self.loss.probabilities(output)
        if probabilities is None:
            raise DataError(f"loss '{self.loss.name}' gives no class probabilities")
        if self.task == "binary" and probabilities.ndim == 1:
            # P(class 0) of a logit z is sigmoid(-z): 1 - sigmoid(z) in float32 kept only float32's spacing near 1
            # (a confident row's rare class 9% off, exactly 0 past z ~ 16.6); outputs that are probabilities: 1 - p
            negative = self.loss.probabilities(-output) if self.loss.takes_logits else None
            if negative is None or not torch.allclose(negative + probabilities, torch.ones_like(probabilities),
                                                      atol=1e-5):  # a loss whose p(-z) is no 1 - p(z) (a user's)
                negative = 1 - probabilities
            probabilities = torch.stack([negative, probabilities], dim=1)
        return probabilities.numpy()

    def _original_units(self, output: torch.Tensor) -> torch.Tensor:
        from trainlab.data.preprocessing import inverse_target

        return inverse_target(self.preprocessing, output)

    # -- files in, rows out
    def read(self, path: str | os.PathLike[str] | pd.DataFrame) -> torch.Tensor:
        """The inputs of ``path``, preprocessed exactly as the run's training data (see :meth:`predict_file`).

        ``path`` may also be a ``pandas.DataFrame`` for a run trained on a CSV: the training CSV's
        feature columns by name, in any order (other columns, such as the target, are ignored), read
        as the CSV file would be. An empty DataFrame gives 0 rows.
        """
        return self._read_rows(path)[0]

    def _read_rows(self, path: str | os.PathLike[str] | pd.DataFrame) -> tuple[torch.Tensor, list[str] | None]:
        """(inputs, names of the rows: image paths for a folder, else None)."""
        options = {**self.config.data.model_dump(), **dict(self.config.data.model_extra or {})}
        source = self.preprocessing.get("source") or options.get("source")
        if source in TEXT_SOURCES:
            self._refuse_gone_tokenizer()
        if source in TEXT_SOURCES and self.text is not None and (is_table(path) or are_texts(path)):
            return torch.from_numpy(encode_texts(text_cells(path, source, options), self.text)), None
        if is_table(path):  # the columns of a CSV run (read_for_predict refuses the other sources)
            return read_for_predict(self.config.data, self.preprocessing, path), None
        if source in IMAGE_SOURCES:
            images, names = read_images(path, options, self.input_shape)
            return torch.from_numpy(images), names
        if source in TEXT_SOURCES:
            if self.text is None:
                raise DataError(f"run {self.path} records no tokenizer; predict cannot encode its texts")
            return torch.from_numpy(read_texts(path, source, options, self.text)), None
        if source == "idx" and options.get("transpose"):  # square images: no shape check can tell
            from trainlab.notices import warn

            warn("this run trained on IDX images transposed (data.transpose): predict takes rows as the model "
                 "saw them, already transposed; images as the IDX files store them need x.transpose(0, 2, 1) first")
        return read_for_predict(self.config.data, self.preprocessing, path), None

    def _refuse_gone_tokenizer(self) -> None:
        """A DataError before texts are encoded when the run's ``tokenizer: hf`` tokenizer.json is gone
        (:func:`trainlab.data.tokenizers.gone_tokenizer`): said as the run's, with where to put it back."""
        tokenizer_path = (self.text or {}).get("tokenizer_path")
        if (self.text or {}).get("tokenizer") != "hf" or not isinstance(tokenizer_path, str):
            return
        from trainlab.data.tokenizers import gone_tokenizer

        line = gone_tokenizer(self.path, tokenizer_path, self.config.model.spec())
        if line is not None:
            raise DataError(line)

    def predict_file(self, path: str | os.PathLike[str] | pd.DataFrame, proba: bool = False) -> pd.DataFrame:
        """One row per input of ``path`` (in file order) as a ``pandas.DataFrame``.

        ``path``: a CSV or npz file like the training data (for a CSV run also a ``pandas.DataFrame``
        as :meth:`read` takes it; the result then keeps its index); for an ``image_folder`` run an image or a folder of
        images (then the first column, ``file``, names each image); for a ``text_tsv``/``text_csv`` run a
        file with the text column. Columns: ``prediction`` (the class name; the value in original units for
        regression; ``prediction_<target column>`` per target for several, ``prediction_<i>`` for unnamed
        targets), for multilabel one 0/1 column per label; with ``proba``, one probability column per class
        named by the class (multilabel: ``proba_<label>``). A class named ``file`` or ``prediction`` keeps its
        name; the column it would collide with becomes ``image_file`` or ``predicted_class``.
        """
        import pandas as pd

        if proba and self.task == "regression":  # refused before the rows are read (and warned of)
            raise ConfigError("--proba applies to classification runs; this run is a regression")
        x, row_names = self._read_rows(path)
        self._refuse_nonfinite_weights()
        output = self._forward(self.model_input(x))  # rows the run preprocessed itself: no scaling check
        names = self.names()
        # a class named like a column of ours: ours gives way (the class columns keep the class names)
        columns: dict[str, Any] = {} if row_names is None else {_free_column(("file", "image_file"), names): row_names}
        if self.task == "regression":
            values = self._decisions(output)
            if values.ndim == 1:
                columns["prediction"] = values
            else:
                for j, name in enumerate(self._target_names(values.shape[1])):
                    columns[f"prediction_{name}"] = values[:, j]
        elif self.task == "multilabel":
            decisions = self._decisions(output)
            for j, name in enumerate(names):
                columns[name] = decisions[:, j].astype(np.int64)
            if proba:
                probabilities = self._probabilities(output)
                for j, name in enumerate(names):
                    columns[f"proba_{name}"] = probabilities[:, j]
        else:
            indices = self._decisions(output)
            label = _free_column(("prediction", "predicted_class"), names)
            columns[label] = [names[int(i)] for i in indices]
            if proba:
                probabilities = self._probabilities(output)
                for j, name in enumerate(names):
                    columns[name] = probabilities[:, j]
        return pd.DataFrame(columns, index=path.index if isinstance(path, pd.DataFrame) else None)

    def _target_names(self, count: int) -> list[str]:
        """The regression targets' column names (``data.target`` of a CSV run), else their indices."""
        target = getattr(self.config.data, "target", None)
        if isinstance(target, list | tuple) and len(target) == count:
            return [str(name) for name in target]
        return [str(j) for j in range(count)]

    def names(self) -> list[str]:
        """Class or label names in index order (their indices as text when the data had none)."""
        if self.class_names is not None:
            return [str(name) for name in self.class_names]
        return [str(i) for i in range(self.num_classes or 0)]


def _free_column(choices: tuple[str, ...], taken: list[str]) -> str:
    """The first of ``choices`` that no class column is named (the last one when all are taken)."""
    return next((name for name in choices if name not in taken), choices[-1])


NONFINITE_ROWS_SHOWN = 5  # rows a non-finite-output error names; it counts them all


def _check_finite_outputs(output: torch.Tensor) -> None:
    """Refuse outputs holding NaN/inf: argmax or a threshold would decode them silently (NaN logits read as
    class 0). The inputs were checked finite and the weights too, so this is an overflow in the model."""
    finite = torch.isfinite(output.reshape(len(output), -1)).all(dim=1) if output.ndim else torch.isfinite(output)
    if bool(finite.all()):
        return
    rows = (~finite).nonzero().reshape(-1).tolist()
    shown = ", ".join(str(r) for r in rows[:NONFINITE_ROWS_SHOWN]) + (", ..." if len(rows) > NONFINITE_ROWS_SHOWN
                                                                      else "")
    raise DataError(f"predict: the model's outputs for {len(rows)} row(s) are not finite (rows {shown}, counting "
                    "from 0 in input order): the inputs overflow the model's float32 computation; check those "
                    "rows for values far outside the training data's range")


def _nonfinite_weights(model: torch.nn.Module, loss: Any, guard: str) -> str | None:
    """What of the model's (and the loss's learned) tensors is NaN/inf, as one clause with the fix; None when
    all are finite. A run trained with ``strategy.divergence.policy: off`` keeps training (and saving) after
    its loss went non-finite; every prediction of such weights is NaN, which argmax reads as class 0.
    ``guard`` is the run's ``strategy.divergence.policy``."""
    tensors = [(name, value) for name, value in model.state_dict().items()]
    if isinstance(loss, torch.nn.Module):
        tensors += [(f"loss.{name}", value) for name, value in loss.state_dict().items()]
    first, bad, total = None, 0, 0
    for name, value in tensors:
        if not (value.is_floating_point() or value.is_complex()):
            continue
        count = int((~torch.isfinite(value)).sum())
        if count and first is None:
            first = (name, count, value.numel())
        bad += count
        total += value.numel()
    if first is None:
        return None
    name, count, size = first
    return (f"its saved weights hold NaN/inf ({bad} of {total} values; first in tensor '{name}', {count} of "
            f"{size}): the training diverged{' (strategy.divergence.policy: off kept it going)' if guard == 'off' else ''}; "
            "retrain it with the divergence guard on "
            "(strategy.divergence.policy: stop or rollback) or a lower learning rate")


# --------------------------------------------------------------------------- loading

def _from_record(config: Config, record: dict[str, Any]) -> tuple[torch.nn.Module, Any]:
    """Loss and model from ``model.json``: no data is read. An ``hf_pretrained`` encoder is built from its
    checkpoint's config.json alone (:func:`trainlab.models.hf.hf_classifier_from_config`): the run's
    ``model.safetensors`` holds every weight, so the checkpoint's weight files are not read."""
    from trainlab.finetune import apply_lora
    from trainlab.losses import build_loss
    from trainlab.models import build_model

    loss = build_loss(record["loss"])
    output_dim = loss.output_dim(record["task"], record["num_classes"], record["target_dim"])  # sets multilabel
    if output_dim != record["output_dim"]:
        raise DataError(f"model.json records an output width of {record['output_dim']} but loss "
                        f"'{loss.name}' gives {output_dim}; the run folder is inconsistent")
    spec = dict(record["model"])
    if str(spec.get("name", "")).lower() == "hf_pretrained":  # the run's weights replace all the checkpoint's
        from trainlab.models.hf import hf_classifier_from_config

        options = {key: value for key, value in spec.items() if key != "name"}
        model = hf_classifier_from_config(tuple(record["input_shape"]), output_dim, **options)
    else:
        model = build_model(spec, tuple(record["input_shape"]), output_dim)
    finetune = config.strategy.finetune
    if finetune is not None and finetune.lora:
        model = apply_lora(model, **finetune.lora.model_dump())
    return model, loss


def load_run(path: str | os.PathLike[str], device: str | torch.device = "cpu",
             allow_code: bool | None = None, checkpoint: str | None = None) -> LoadedRun:
    """The finished run in ``path`` with its trained model, ready to predict (see the module docstring).

    ``checkpoint`` loads the weights of one of the run's checkpoints instead of ``model.safetensors``
    (Lightning's ``ckpt_path``): ``"best"`` (``checkpoint/best/``, the best evaluation by the monitored
    metric, kept with ``output.checkpoint.every_n_epochs``: the model early stopping's ``restore_best: false``
    did not restore), ``"last"`` (the newest ``step-*``), or a folder's name (``"step-000000120"``) or step
    number; the weights are those the run's evaluation at that step used (with ``strategy.weight_averaging``
    the averaged ones: :func:`trainlab.run_weights.checkpoint_state`). A name the run has no checkpoint of is a ConfigError
    listing those it has. The run need not have finished: an interrupted run's checkpoints load too.

    ``allow_code=True`` is the CLI's ``--allow-code``: the run's ``module:attr`` components (your model,
    metric, ...) are imported, from the folders the run was trained from first, then the working directory.
    ``allow_code=False`` imports none of them, even with ``TRAINLAB_ALLOW_CODE=1`` set (a service loading
    runs sent to it); left out (None), that variable decides, as for the CLI.

    A run whose saved weights hold NaN/inf (it diverged under ``strategy.divergence.policy: off``) still
    loads, so that its model and records can be inspected; its ``nonfinite_weights`` says what is
    non-finite, and :meth:`LoadedRun.predict` / :meth:`LoadedRun.predict_proba` refuse it (DataError).

    Raises:
        RunDirError: ``path`` is not a finished run folder (a checkpoint folder given as ``path`` is told
            to be given as ``checkpoint``).
        ConfigError: ``checkpoint`` names no checkpoint of the run.
        DataError: the weights do not match the model the config builds; a checkpoint that does not verify.
    """
    from trainlab.code_policy import allow_local_modules, code_policy, run_code_policy

    path = path_argument(path, "load_run's path")
    if allow_code is not None and not isinstance(allow_code, bool):  # "yes" or "false" would read as true
        raise ConfigError(f"load_run's allow_code must be True, False or None; got {allow_code!r}")
    with contextlib.ExitStack() as stack:  # no user code without the opt-in; with it, as the CLI's --allow-code
        stack.enter_context(code_policy(allow=allow_code))
        stack.enter_context(run_code_policy(path))
        if allow_code:  # after the run's own folders: a module of the same name here is not the one it trained
            stack.enter_context(allow_local_modules(Path.cwd()))
        return _load_run(Path(path), resolve_device(str(device), "device"), checkpoint)


def run_config_path(path: Path) -> Path:
    """``path/config.yaml``; a folder without one is a RunDirError (one that says so for ``trainlab.fit``'s records)."""
    config_path = path / "config.yaml"
    if not is_record_file(config_path):  # a folder that cannot be read: a DataError naming it, not a write error
        if not path.exists():  # the same words as resume's (trainlab.run_folder)
            raise RunDirError(f"run folder {path} does not exist")
        if (path / "strategy.yaml").is_file() and (path / "model.safetensors").is_file():  # trainlab.fit(out=...)
            raise RunDirError(f"{path} holds the records of trainlab.fit, whose model is your own module: "
                              f"{_fit_weights_advice(path)}; {quoted_command('trainlab', 'plot', path)} draws its "
                              "curves")
        found = checkpoint_of_run(path)
        if found is not None:
            raise RunDirError(checkpoint_given_as_run(path, *found))
        raise RunDirError(f"{path} is not a trainlab run folder (no config.yaml)")
    return config_path


PEFT_PREFIX = "base_model.model."  # the keys of a peft-wrapped module's state_dict (a fit with finetune.lora)


def _fit_weights_advice(path: Path) -> str:
    """How to load ``trainlab.fit``'s ``model.safetensors`` into a fresh instance of the user's module.

    The file is the state_dict of the module fit trained: the module itself, or, with
    ``strategy.finetune.lora``, peft's wrapper of it, whose keys (``base_model.model.0.base_layer.weight``,
    ``...lora_A.default.weight``) a fresh module lacks until it is wrapped with the same adapters
    (:func:`trainlab.finetune.apply_lora` with the ``finetune.lora`` options of the folder's strategy.yaml).
    The file's keys decide; a file whose header cannot be read gets the plain advice (loading says why). The
    path is written as a Python literal (``repr``), so that the snippet parses whatever the path holds: a quote,
    a backslash or a newline in it ended the ``'...'`` written around it."""
    load = f"model.load_state_dict(safetensors.torch.load_file({str(path / 'model.safetensors')!r}))"
    try:
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), framework="pt") as weights:
            wrapped = any(key.startswith(PEFT_PREFIX) for key in weights.keys())  # noqa: SIM118 (not a dict)
    except Exception:  # noqa: BLE001  (a damaged file: the load it is pointed to names the problem)
        wrapped = False
    if not wrapped:
        return f"load its weights into it with {load}"
    options = _fit_lora_options(path)
    call = ("apply_lora(model" + "".join(f", {k}={v!r}" for k, v in options.items()) + ")"
            if options is not None else "apply_lora(model, **lora) with the finetune.lora options of its strategy.yaml")
    return (f"it was trained with LoRA adapters (finetune.lora) and saved with peft's keys ({PEFT_PREFIX}*), so "
            f"wrap a fresh module the same way first, model = {call} (from trainlab.finetune import apply_lora), "
            f"then {load} (model.merge_and_unload() gives back your module with the adapters merged into its "
            "weights)")


def _fit_lora_options(path: Path) -> dict[str, Any] | None:
    """The ``strategy.finetune.lora`` options a fit's strategy.yaml records (None left out), else None."""
    from trainlab.yaml_files import load_yaml_file

    try:
        lora = load_yaml_file(path / "strategy.yaml", "strategy")["strategy"]["finetune"]["lora"]
    except (ConfigError, KeyError, TypeError):
        return None
    if not isinstance(lora, dict):
        return None
    return {key: value for key, value in lora.items() if value is not None}


def _checked_trained_config(path: Path, config_path: Path) -> Config:
    """The run's config (:func:`load_trained_config`), then what it must pass before anything is built from it:
    a gone base checkpoint refused (:func:`refuse_gone_checkpoint`), a changed tokenizer warned of
    (:func:`_warn_if_tokenizer_changed`)."""
    config = load_trained_config(path, config_path)
    refuse_gone_checkpoint(path, config)
    _warn_if_tokenizer_changed(path, config)
    return config


def refuse_gone_checkpoint(path: Path, config: Config) -> None:
    """A DataError naming the checkpoint an ``hf_pretrained`` run was fine-tuned from when it is gone or has no
    config.json now (:func:`trainlab.models.hf.gone_checkpoint`): the run folder holds the weights, but the
    model is rebuilt from that config.json and its texts encoded with that tokenizer (predict, ``load_run``
    and eval alike)."""
    spec = config.model.spec()
    if str(spec.get("name", "")).lower() != "hf_pretrained":
        return
    from trainlab.models.hf import gone_checkpoint

    line = gone_checkpoint(path, spec)
    if line is not None:
        raise DataError(line)


def _warn_if_tokenizer_changed(path: Path, config: Config) -> None:
    """One warning when the files of the run's ``data.tokenizer_path`` are not those its run.json recorded
    (``data_fingerprint``; :func:`trainlab.data.fingerprint.tokenizer_changes`): texts may encode to other ids
    than training's. The digest covers every file of the tokenizer's folder, so a file changed, added or
    removed there counts. Nothing when its tokenizer.json is gone (predicting texts then says so,
    :meth:`LoadedRun._refuse_gone_tokenizer`) or the run recorded no digest of it."""
    from trainlab.data.fingerprint import tokenizer_changes
    from trainlab.data.tokenizers import gone_tokenizer
    from trainlab.notices import warn
    from trainlab.records import read_record_object

    data = config.data.model_dump()
    tokenizer_path = data.get("tokenizer_path")
    if not isinstance(tokenizer_path, str) or not Path(tokenizer_path).expanduser().exists() \
            or gone_tokenizer(path, tokenizer_path, config.model.spec()) is not None:
        return
    changed = tokenizer_changes(read_record_object(path / "run.json") or {}, data)
    if changed:
        warn(f"the tokenizer files of {path} changed since it was trained ({changed}, data.tokenizer_path: a file "
             "there was changed, added or removed); predicting with its tokenizer as it is now (a text may get "
             "other token ids than in training)")


def _load_run(path: Path, device: torch.device, checkpoint: str | None = None) -> LoadedRun:
    config_path = run_config_path(path)
    # before any building: an unfinished or changed run (or a checkpoint it has not) is said at once; with the
    # loss's learned state (a learned variance, alpha...): LoadedRun.loss is the trained loss
    trained = read_trained_state(path, checkpoint)
    check_record_digests(path)
    config = _checked_trained_config(path, config_path)
    labels, fitted, record = {}, None, None
    if (path / LABELS_RECORD).is_file():
        labels = checked(read_json(path / LABELS_RECORD, "class names"), path / LABELS_RECORD, LABELS_FIELDS)
    if (path / PREPROCESSING_RECORD).is_file():
        fitted = checked(read_json(path / PREPROCESSING_RECORD, "preprocessing"), path / PREPROCESSING_RECORD,
                          PREPROCESSING_FIELDS)
        fitted = consistent(path / PREPROCESSING_RECORD, fitted)
    if (path / MODEL_RECORD).is_file():
        record = read_json(path / MODEL_RECORD, "model record")
        if not isinstance(record, dict) or record.get("format") == FORMAT:  # another format: rebuilt from the data
            record = checked(record, path / MODEL_RECORD, MODEL_FIELDS)

    eval_transform = None
    if record is not None and record.get("format") == FORMAT and not record.get("eval_transform") \
            and fitted is not None:
        from trainlab.builders import run_scope

        with run_scope(config):  # the model's random init must not move the caller's RNG streams
            model, loss = _from_record(config, record)
        architecture = path / MODEL_RECORD  # what load_weights names when the weights do not fit
        task, num_classes = record["task"], record["num_classes"]
        if record.get("normalize"):
            from trainlab.data.transforms import Normalize

            eval_transform = Normalize(tuple(record["normalize"]["mean"]), tuple(record["normalize"]["std"]))
    else:  # rebuild the run as training did: reads and splits the data once
        from trainlab.builders import build, run_scope

        with run_scope(config):
            built = build(config, quiet=True, training=False)
        model, loss, architecture = built.model, built.loss, config_path
        task, num_classes = built.data.task, built.data.num_classes
        fitted = fitted if fitted is not None else dict(built.data.preprocessing)
        eval_transform = built.data.eval_transform
        labels = labels or {"class_names": built.data.class_names}
        record = model_record(built)  # what the run folder would hold: one source for the facts below
    input_shape, text = tuple(record["input_shape"]), record.get("text")
    input_dtype, output_dim = record.get("input_dtype"), record["output_dim"]
    vocab_size = record["model"].get("vocab_size")
    if vocab_size is None:  # hf_pretrained: the checkpoint's embedding rows, which its model spec does not hold
        found = getattr(model, "vocab_size", None)
        vocab_size = found if isinstance(found, int) and not isinstance(found, bool) else None
    if task not in PREDICTABLE_TASKS:
        raise DataError(f"predict supports {', '.join(PREDICTABLE_TASKS)} runs; this run's task is {task}")
    if getattr(loss, "target_kind", None) in ("pair", "embedding"):
        raise DataError(f"loss '{loss.name}' trains embeddings, not predictions; predict supports classification "
                        "and regression losses")
    model = model.to(device)
    # no warning of a loss without its saved state: no built-in loss predicts with its state
    load_trained_state(model, loss, trained, path, architecture, config_path)
    model.eval()
    class_names = labels.get("class_names")
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise DataError(f"{path / LABELS_RECORD} names {len(class_names)} classes but the model has {num_classes}; "
                        "the file was changed or damaged after training; restore it or retrain the run")
    loaded_loss = loss.to(device)
    return LoadedRun(path=path, config=config, model=model, loss=loaded_loss, task=task,
                     class_names=class_names, preprocessing=fitted or {},
                     num_classes=num_classes, input_shape=input_shape, input_dtype=input_dtype,
                     output_dim=output_dim, vocab_size=vocab_size, text=text, eval_transform=eval_transform,
                     device=device, nonfinite_weights=_nonfinite_weights(model, loaded_loss, config.strategy.divergence.policy),
                     checkpoint=trained.checkpoint)
