"""Loading a finished run folder: ``trainlab.load_run(RUN_DIR)``, the predictor ``trainlab predict`` uses.

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

What it returns is a :class:`trainlab.loaded_run.LoadedRun`: its inputs, outputs and files are that module's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from trainlab.config import Config
from trainlab.config_fields import path_argument
from trainlab.data.predict_media import text_encoding
from trainlab.errors import ConfigError, DataError, RunDirError
from trainlab.loaded_run import LoadedRun
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
    is_fit_records,
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

FORMAT = 1
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
    from trainlab.lora import apply_lora
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
        if is_fit_records(path):
            raise RunDirError(f"{path} holds the records of trainlab.fit, whose model is your own module: "
                              f"{fit_weights_advice(path)}; {quoted_command('trainlab', 'plot', path)} draws its "
                              "curves")
        found = checkpoint_of_run(path)
        if found is not None:
            raise RunDirError(checkpoint_given_as_run(path, *found))
        raise RunDirError(f"{path} is not a trainlab run folder (no config.yaml)")
    return config_path


PEFT_PREFIX = "base_model.model."  # the keys of a peft-wrapped module's state_dict (a fit with finetune.lora)


def fit_weights_advice(path: Path) -> str:
    """How to load ``trainlab.fit``'s ``model.safetensors`` into a fresh instance of the user's module.

    The file is the state_dict of the module fit trained, with ``strategy.finetune.lora`` its adapters merged
    into its layers (:func:`trainlab.lora.merge_lora`), so its own keys. A folder a LoRA fit wrote before
    that (before 2026-12-06) holds peft's wrapper's state_dict, whose keys (``base_model.model.0.base_layer.weight``,
    ``...lora_A.default.weight``) a fresh module lacks until it is wrapped with the same adapters
    (:func:`trainlab.lora.apply_lora` with the ``finetune.lora`` options of the folder's strategy.yaml).
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
            f"wrap a fresh module the same way first, model = {call} (from trainlab.lora import apply_lora), "
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
    :meth:`trainlab.loaded_run.LoadedRun._refuse_gone_tokenizer`) or the run recorded no digest of it."""
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
