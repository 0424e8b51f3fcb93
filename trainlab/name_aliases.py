"""Other frameworks' names for trainlab's: what a Keras, PyTorch, Lightning, Hugging Face or optax user writes
for a config key, a component option, a loss or an optimizer that trainlab calls otherwise.

They feed the did-you-mean of the line that refuses such a name (:func:`trainlab.registry.did_you_mean`'s
``aliases``): ``unknown loss 'sparse_categorical_crossentropy'; did you mean 'cross_entropy'?``. Nothing
here is accepted in a config; each name only points to trainlab's. Keys are lower-case (a name is looked
up with its case folded: ``CrossEntropyLoss`` is ``crossentropyloss``); each value is trainlab's name, a
registered component or a key of the config schema (tests/test_name_aliases.py checks every one).

A name is listed when the did-you-mean would otherwise miss it, or point elsewhere: difflib rates
``sparse_categorical_crossentropy`` below its cut-off against ``cross_entropy`` and finds ``bce`` for
``ce``. A few that difflib already finds stay, so that the table reads as the whole mapping of a framework.

- :data:`KEY_NAMES`: config keys and component options. ``learning_rate`` -> ``lr`` (Keras, Hugging Face),
  ``max_epochs`` (Lightning), ``num_epochs``, ``num_train_epochs`` (Hugging Face), ``n_epochs`` -> ``epochs``,
  ``per_device_train_batch_size``, ``train_batch_size`` -> ``batch_size``, ``gradient_accumulation_steps``,
  ``accumulate_grad_batches`` -> ``grad_accum_steps``, ``max_grad_norm``, ``gradient_clip_val`` ->
  ``clip_grad_norm``, ``wd`` (fastai) -> ``weight_decay``, ``early_stopping_patience`` -> ``patience``,
  ``validation_split`` (Keras), ``validation_fraction`` (scikit-learn) -> ``val_fraction``, ``test_size``
  (scikit-learn's ``train_test_split``) -> ``test_fraction``, Hugging Face's ``eval_steps``,
  ``logging_steps``, ``save_total_limit`` -> ``eval_every_n_steps``, ``log_every_n_steps``, ``keep_last``,
  Keras's ``restore_best_weights`` -> ``restore_best``.
- :data:`KEY_PLACES`: a key pointed to by its whole dotted place, where trainlab's name alone would not find
  it (``warmup_ratio`` -> ``strategy.schedule.warmup_fraction``, ``save_steps`` ->
  ``output.checkpoint.every_n_steps``) or where the value means something else: :data:`KEY_MEANINGS` says
  what, beside the did-you-mean (``evaluation_strategy: steps`` names no number of steps).
- :data:`LOSS_NAMES`: Keras's loss names (``categorical_crossentropy``, ``mean_squared_error`` ...),
  PyTorch's classes and functions (``CrossEntropyLoss``, ``BCEWithLogitsLoss``, ``l1_loss`` ...), optax's.
- :data:`METRIC_NAMES`: Keras's metric names (``sparse_categorical_accuracy``, ``binary_accuracy``, ``acc``,
  ``AUC``, ``mean_squared_error`` ...), scikit-learn's (``roc_auc_score``, ``neg_log_loss``), torchmetrics'.
- :data:`OPTIMIZER_NAMES`: Hugging Face's ``optim`` choices that name an AdamW or Lion build
  (``adamw_torch_fused``, ``paged_adamw_8bit``), ``sgdm``, ``SparseAdam``. PyTorch's and Keras's class
  names (``AdamW``, ``SGD``, ``RMSprop``) are trainlab's names, case aside, and need no entry.
"""

from __future__ import annotations

from collections.abc import Mapping

# config keys and component options (strategy.epochs, strategy.optimizer.lr, ...)
KEY_NAMES: dict[str, str] = {
    "learning_rate": "lr", "learningrate": "lr",
    "max_epochs": "epochs", "num_epochs": "epochs", "num_train_epochs": "epochs", "n_epochs": "epochs",
    "nb_epoch": "epochs", "epoch": "epochs",
    "per_device_train_batch_size": "batch_size", "train_batch_size": "batch_size", "batchsize": "batch_size",
    "gradient_accumulation_steps": "grad_accum_steps", "accumulate_grad_batches": "grad_accum_steps",
    "max_grad_norm": "clip_grad_norm", "gradient_clip_val": "clip_grad_norm",
    "wd": "weight_decay",
    "early_stopping_patience": "patience",
    # the data's held-out fractions: Keras's fit(validation_split=), scikit-learn's train_test_split(test_size=)
    # and its estimators' validation_fraction, the short forms of scripts
    "validation_split": "val_fraction", "validation_fraction": "val_fraction", "validation_size": "val_fraction",
    "val_split": "val_fraction", "val_size": "val_fraction", "valid_size": "val_fraction",
    "val_ratio": "val_fraction", "validation_ratio": "val_fraction",
    "test_size": "test_fraction", "test_split": "test_fraction", "test_ratio": "test_fraction",
    # the cadences and keeps of the Hugging Face Trainer (TrainingArguments) and Keras's EarlyStopping
    "eval_steps": "eval_every_n_steps", "logging_steps": "log_every_n_steps", "save_total_limit": "keep_last",
    "restore_best_weights": "restore_best",
}

# another framework's key that KEY_NAMES cannot point to by trainlab's key name alone, -> trainlab's dotted key:
# a component's option (warmup_ratio: the schedule's warmup_fraction, which no config section holds), a name
# trainlab's config holds at several places (save_steps: the checkpoint's every_n_steps, not weight
# averaging's), or a setting whose values mean something else (KEY_MEANINGS says what)
KEY_PLACES: dict[str, str] = {
    "evaluation_strategy": "strategy.eval_every_n_steps", "eval_strategy": "strategy.eval_every_n_steps",
    "val_check_interval": "strategy.eval_every_n_steps",
    "load_best_model_at_end": "strategy.early_stopping.restore_best",
    "save_steps": "output.checkpoint.every_n_steps", "warmup_ratio": "strategy.schedule.warmup_fraction",
    # warmup in steps is the schedule's (a name close to max_steps, and an option of schedule_free_adamw)
    "warmup_steps": "strategy.schedule.warmup_steps", "num_warmup_steps": "strategy.schedule.warmup_steps",
    "check_val_every_n_epoch": "strategy.eval_every_n_steps",
}

# what a KEY_PLACES key's value means besides trainlab's key, said with the did-you-mean: following the
# pointer with the same value would train otherwise (evaluation_strategy=steps is no number of steps)
_HF_EVAL_STRATEGY = ("Hugging Face's {} picks 'steps' or 'epoch'; trainlab validates after every epoch, and every N "
                     "optimizer steps too with eval_every_n_steps: N")
KEY_MEANINGS: dict[str, str] = {
    # the Trainer's name for it before and after its rename
    "evaluation_strategy": _HF_EVAL_STRATEGY.format("evaluation_strategy"),
    "eval_strategy": _HF_EVAL_STRATEGY.format("eval_strategy"),
    "val_check_interval": "Lightning's val_check_interval counts batches, or a fraction of an epoch; "
                          "eval_every_n_steps counts optimizer steps, and every epoch ends in a validation anyway",
    "check_val_every_n_epoch": "Lightning's check_val_every_n_epoch skips epochs' validations; trainlab validates "
                               "after every epoch, and every N optimizer steps too with eval_every_n_steps: N",
    "load_best_model_at_end": "early stopping's, on by default: set strategy.early_stopping (its monitor, "
                              "patience) to have the best validation's weights put back at the end",
}

# trainlab's models end in logits, so the losses on probabilities of Keras (from_logits=False) map to the
# logit forms; PyTorch's BCELoss and F.binary_cross_entropy take probabilities, as bce_prob does
LOSS_NAMES: dict[str, str] = {
    # Keras (keras.losses)
    "sparse_categorical_crossentropy": "cross_entropy", "categorical_crossentropy": "cross_entropy",
    "crossentropy": "cross_entropy", "binary_crossentropy": "bce",
    "binary_focal_crossentropy": "focal", "categorical_focal_crossentropy": "focal",
    "mean_squared_error": "mse", "mean_absolute_error": "mae", "huber_loss": "huber", "logcosh": "log_cosh",
    "kl_divergence": "kl_div", "kld": "kl_div", "kullback_leibler_divergence": "kl_div",
    "poisson": "poisson_nll", "categorical_hinge": "multiclass_hinge",
    # PyTorch (torch.nn classes, torch.nn.functional, torchvision)
    "crossentropyloss": "cross_entropy", "nllloss": "nll", "nll_loss": "nll",
    "bcewithlogitsloss": "bce", "binary_cross_entropy_with_logits": "bce",
    "bceloss": "bce_prob", "binary_cross_entropy": "bce_prob",
    "mseloss": "mse", "mse_loss": "mse", "l2": "mse",
    "l1loss": "mae", "l1_loss": "mae", "l1": "mae",
    "huberloss": "huber", "smoothl1loss": "smooth_l1", "smooth_l1_loss": "smooth_l1",
    "kldivloss": "kl_div", "poissonnllloss": "poisson_nll", "gaussiannllloss": "gaussian_nll",
    "multimarginloss": "multiclass_hinge", "cosineembeddingloss": "cosine_embedding",
    "tripletmarginloss": "triplet", "sigmoid_focal_loss": "focal",
    # optax, and the short forms of papers and code
    "softmax_cross_entropy": "cross_entropy", "sigmoid_binary_cross_entropy": "bce",
    "ce": "cross_entropy", "xent": "cross_entropy", "pinball": "quantile", "pinball_loss": "quantile",
    "infonce": "nt_xent", "ntxentloss": "nt_xent", "contrastiveloss": "contrastive",
}

# Keras's metric names and class names (keras.metrics, case folded), scikit-learn's functions and scorer
# strings, torchmetrics' class names. Keras's accuracies are trainlab's one ``accuracy`` (class indices,
# one-hot rows and 0/1 decisions alike); its top-k ones default to k = 5; its crossentropy metrics are the
# log loss of the probabilities. Each points to one metric; the did-you-mean names it only where the task
# has it (trainlab.metrics.get_metric)
METRIC_NAMES: dict[str, str] = {
    # Keras (keras.metrics)
    "acc": "accuracy", "binary_accuracy": "accuracy", "categorical_accuracy": "accuracy",
    "sparse_categorical_accuracy": "accuracy", "binaryaccuracy": "accuracy", "categoricalaccuracy": "accuracy",
    "sparsecategoricalaccuracy": "accuracy",
    "top_k_categorical_accuracy": "top_5_accuracy", "sparse_top_k_categorical_accuracy": "top_5_accuracy",
    "topkcategoricalaccuracy": "top_5_accuracy", "sparsetopkcategoricalaccuracy": "top_5_accuracy",
    "auc": "roc_auc", "f1_score": "f1", "f1score": "f1", "r2_score": "r2", "r2score": "r2",
    "binary_crossentropy": "log_loss", "categorical_crossentropy": "log_loss",
    "sparse_categorical_crossentropy": "log_loss", "binarycrossentropy": "log_loss",
    "categoricalcrossentropy": "log_loss", "sparsecategoricalcrossentropy": "log_loss",
    "mean_squared_error": "mse", "meansquarederror": "mse", "mean_absolute_error": "mae", "meanabsoluteerror": "mae",
    # scikit-learn (sklearn.metrics functions and scoring strings)
    "accuracy_score": "accuracy", "balanced_accuracy_score": "balanced_accuracy", "roc_auc_score": "roc_auc",
    "average_precision_score": "average_precision", "precision_score": "precision", "recall_score": "recall",
    "top_k_accuracy_score": "top_5_accuracy", "neg_log_loss": "log_loss", "neg_mean_squared_error": "mse",
    "neg_mean_absolute_error": "mae", "mcc": "matthews_corrcoef",
    # torchmetrics' class names, and the short forms of papers
    "auroc": "roc_auc", "pr_auc": "average_precision", "auprc": "average_precision",
    "averageprecision": "average_precision", "matthewscorrcoef": "matthews_corrcoef",
}

OPTIMIZER_NAMES: dict[str, str] = {
    # Hugging Face TrainingArguments.optim: builds of AdamW and Lion
    "adamw_torch": "adamw", "adamw_torch_fused": "adamw", "adamw_hf": "adamw", "adamw_apex_fused": "adamw",
    "adamw_bnb_8bit": "adamw", "adamw_8bit": "adamw", "paged_adamw_8bit": "adamw", "paged_adamw_32bit": "adamw",
    "adamw_anyprecision": "adamw", "lion_8bit": "lion", "lion_32bit": "lion", "paged_lion_8bit": "lion",
    "paged_lion_32bit": "lion",
    "sgdm": "momentum", "sparseadam": "adam",
}

# trainlab.registry.Registry.kind -> the names other frameworks give its components
NAMES_BY_KIND: dict[str, Mapping[str, str]] = {"loss": LOSS_NAMES, "optimizer": OPTIMIZER_NAMES,
                                               "metric": METRIC_NAMES}


def trainlab_name(name: str, aliases: Mapping[str, str]) -> str | None:
    """trainlab's name for ``name`` in ``aliases`` (one of this module's tables), its case folded; None when
    ``aliases`` does not list it."""
    return aliases.get(name.casefold())
