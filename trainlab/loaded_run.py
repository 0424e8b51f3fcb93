"""A loaded run as a predictor: :class:`LoadedRun`, what :func:`trainlab.inference.load_run` returns and
``trainlab predict`` predicts with.

Inputs: :meth:`LoadedRun.predict` takes the model's inputs, preprocessed as the training split was
(what :meth:`LoadedRun.read` returns for a file, :meth:`LoadedRun.preprocess` for raw rows), checked against
the recorded row shape and converted to the training rows' dtype
(:func:`trainlab.data.predict_input.model_rows`); rows that look raw
(:func:`trainlab.data.preprocessing.looks_raw`) are warned of. For a run trained on a CSV
it also takes a ``pandas.DataFrame`` of raw columns, which goes through :meth:`LoadedRun.read` first.

Outputs (:meth:`LoadedRun.predict`, :meth:`LoadedRun.predict_file`):

- binary / multiclass: the class index (``predict``) or the class **name** (``predict_file``,
  from ``labels.json``); probabilities from the loss's ``probabilities(output)`` (softmax over K
  logits; for one binary logit, ``[1 - sigmoid(z), sigmoid(z)]``), one column per class;
- multilabel: one 0/1 column per label (logit > 0), probabilities ``sigmoid(z)`` per label;
- regression: the model's outputs in the target's original units
  (:func:`trainlab.data.preprocessing.inverse_target`, ``y = y_std * scale + mean``).

A run whose saved weights hold NaN/inf (:attr:`LoadedRun.nonfinite_weights`) predicts nothing (DataError), and
outputs that are not finite (an overflow in the model) are refused rather than decoded.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab.config import Config
from trainlab.config_fields import counted
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
)
from trainlab.data.preprocessing import MISREAD_SQUARE, looks_raw, varying_columns
from trainlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

PREDICT_BATCH = 4096  # rows per forward pass: bounds memory on large files


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
    # what is non-finite in the saved weights (trainlab.inference._nonfinite_weights), else None: predicting is refused
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
        elif self.text is not None:
            self._refuse_unshaped_ids(x)
        return model_rows(x, self.input_shape, self.input_dtype, self.vocab_size, ids_and_mask=self.ids_and_mask)

    def _refuse_unshaped_ids(self, x: Any) -> None:
        """A text run given neither texts nor token ids of its shape (``[1, 2, 3]``): the error says that texts
        are what it takes (:func:`~trainlab.data.predict_input.model_rows` would name the ids' shape alone)."""
        from trainlab.data.predict_shapes import rows_shape

        try:
            shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
        except ValueError:  # ragged nested lists: model_rows says what they are
            return
        if self.input_shape and len(shape) and rows_shape(shape, self.input_shape) is None:
            raise DataError(f"predict: got an input shaped {tuple(shape)}; a text run takes texts (a list of "
                            "strings, a pandas Series, or a DataFrame with the text column), or token ids shaped "
                            f"(N, {', '.join(map(str, self.input_shape))})")

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

        rows = self._raw_rows(x)
        prep.warn_constant_changed(fitted, rows, "preprocess")
        standardised = prep.apply(fitted, rows, what="preprocess")
        prep.warn_standardised_twice(fitted, rows, standardised, "preprocess")
        return torch.from_numpy(standardised)

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
        """One warning when model inputs look like raw rows (:func:`~trainlab.data.preprocessing.looks_raw`: the
        run standardised its numeric features, so its training rows have mean 0 and standard deviation 1 in
        each, yet these lie far out as given while, standardised as the training rows were, they would not)."""
        fitted = self.preprocessing
        columns = varying_columns(fitted)
        if not columns or rows.ndim != 2 or rows.shape[1] < len(fitted["mean"]) or not len(rows) \
                or not rows.is_floating_point():
            return
        given = rows[:, columns].double().cpu().numpy()
        standardised = (given - np.asarray(fitted["mean"])[columns]) / np.asarray(fitted["scale"])[columns]
        if not looks_raw(given, standardised):
            return
        means = given.mean(axis=0)
        farthest = int(np.abs(means).argmax())
        column = columns[farthest]
        beyond = int((np.abs(means) > math.sqrt(MISREAD_SQUARE)).sum())
        names = list(fitted.get("numeric_columns") or [])
        name = f"'{names[column]}'" if column < len(names) else f"{column} (counting from 0)"
        others = f" (and {counted(beyond - 1, 'other feature')})" if beyond > 1 else ""
        from trainlab.notices import warn

        remedy = ("pass the raw columns by name as a pandas DataFrame, run.predict(df), which the run preprocesses"
                  if fitted.get("categorical_columns") else
                  "pass raw rows through the run's preprocessing, run.predict(run.preprocess(x))")
        warn(f"predict: feature {name}{others} averages {means[farthest]:.4g} over these rows, where the run's "
             f"standardised training rows average 0 with standard deviation 1 (its raw training mean: "
             f"{fitted['mean'][column]:.4g}); predict takes rows preprocessed as the training split was, and these "
             f"look raw: {remedy}")

    def predict(self, x: Any, threshold: float | None = None) -> np.ndarray:
        """Predictions: class indices (N,), 0/1 labels (N, L), or regression values in original units
        (N,) for one target, (N, d) for several. ``threshold`` (binary and multi-label runs): predict class 1
        (a label) where its probability (:meth:`predict_proba`) is >= ``threshold``; None: where the logit
        is > 0 (probability > 0.5). A threshold chosen on held-out rows trades precision against recall.

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
                text column), tokenized as the training texts were. An array that looks like raw
                rows (:func:`~trainlab.data.preprocessing.looks_raw`) is warned of.

        Raises:
            DataError: rows of another shape, values that are not numbers, non-finite values, or
                (integer inputs) values that are not whole or out of range (token ids at or above the
                model's vocabulary; an attention mask other than 0/1); a run whose saved weights hold
                NaN/inf (it diverged with ``strategy.divergence.policy: off``: :func:`trainlab.inference.load_run` still
                loads it, for inspection, but it predicts nothing); rows whose outputs are not finite.
            ConfigError: a ``threshold`` the run cannot take (:meth:`check_threshold`: not binary or
                multi-label, outside (0, 1), or a loss without probabilities).
        """
        threshold = self.check_threshold(threshold)
        return self._decisions(self.outputs(x), threshold)

    def _decisions(self, output: torch.Tensor, threshold: float | None = None) -> np.ndarray:
        """:meth:`predict`'s answer for the model's outputs; ``threshold`` (binary, multi-label): class 1 (a
        label) where its probability is >= ``threshold``, instead of the loss's own rule (logit > 0)."""
        if self.task == "regression":  # as the metrics saw them: the loss's reading (poisson: exp), original units
            values = self._original_units(self.loss.predict(output)).numpy()
            return values.reshape(len(values)) if values.ndim == 2 and values.shape[1] == 1 else values
        if threshold is None:
            return self.loss.predict(output).numpy()
        probabilities = self._probabilities(output)
        chosen = probabilities[:, 1] if self.task == "binary" else probabilities
        return (chosen >= threshold).astype(np.int64)

    def check_threshold(self, threshold: float | None) -> float | None:
        """``threshold`` as :meth:`predict` takes it: None, or a real number (a NumPy float too: a threshold from
        scikit-learn's ``precision_recall_curve`` over :meth:`predict_proba`) strictly between 0 and 1 for a binary
        or multi-label run whose loss gives probabilities (a ConfigError otherwise: a multi-class run's argmax has
        no one threshold, a hinge loss no probability)."""
        if threshold is None:
            return None
        if self.task not in ("binary", "multilabel"):
            why = " (its prediction is the most probable class)" if self.task == "multiclass" else ""
            raise ConfigError(f"a decision threshold applies to binary and multi-label runs; this run is "
                              f"{self.task}{why}")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < float(threshold) < 1:
            raise ConfigError(f"the decision threshold must be a probability strictly between 0 and 1; got "
                              f"{threshold!r}")
        if not self.loss.has_probabilities:
            raise ConfigError(f"a decision threshold is a probability, and loss '{self.loss.name}' gives none (it "
                              "decides by the sign of the output); predict without --threshold")
        return float(threshold)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (N, K) (binary: K = 2, columns P(class 0), P(class 1)); per-label (N, L).

        ``x`` as for :meth:`predict`.
        """
        if self.task == "regression":  # the run's kind, not the rows: as --proba's refusal (exit 2)
            raise ConfigError("probabilities exist for classification runs; this run is a regression")
        return self._probabilities(self.outputs(x))

    def _probabilities(self, output: torch.Tensor) -> np.ndarray:
        """:meth:`predict_proba`'s answer for the model's outputs."""
        probabilities = self.loss.probabilities(output)
        if probabilities is None:  # the run's loss, not the rows: a usage error (exit 2), as --threshold's
            raise ConfigError(f"loss '{self.loss.name}' gives no class probabilities; predict without --proba "
                              "(Python: run.predict)")
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

    def predict_file(self, path: str | os.PathLike[str] | pd.DataFrame, proba: bool = False,
                     threshold: float | None = None) -> pd.DataFrame:
        """One row per input of ``path`` (in file order) as a ``pandas.DataFrame``.

        ``path``: a CSV or npz file like the training data (for a CSV run also a ``pandas.DataFrame``
        as :meth:`read` takes it; the result then keeps its index); for an ``image_folder`` run an image or a folder of
        images (then the first column, ``file``, names each image); for a ``text_tsv``/``text_csv`` run a
        file with the text column. Columns: ``prediction`` (the class name; the value in original units for
        regression; ``prediction_<target column>`` per target for several, ``prediction_<i>`` for unnamed
        targets), for multilabel one 0/1 column per label; with ``proba``, one probability column per class
        named by the class (multilabel: ``proba_<label>``). A class named ``file`` or ``prediction`` keeps its
        name; the column it would collide with becomes ``image_file`` or ``predicted_class``. ``threshold``
        as for :meth:`predict`.
        """
        import pandas as pd

        if proba and self.task == "regression":  # refused before the rows are read (and warned of)
            raise ConfigError("--proba applies to classification runs; this run is a regression")
        threshold = self.check_threshold(threshold)
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
            decisions = self._decisions(output, threshold)
            for j, name in enumerate(names):
                columns[name] = decisions[:, j].astype(np.int64)
            if proba:
                probabilities = self._probabilities(output)
                for j, name in enumerate(names):
                    columns[f"proba_{name}"] = probabilities[:, j]
        else:
            indices = self._decisions(output, threshold)
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
