"""Scoring a trained model once on rows it never saw: the test split, or a fold's held-out rows.

The metrics are scikit-learn's, on the model's predictions in the target's own units:
- classification: accuracy, balanced accuracy, macro precision / recall / F1, ROC AUC
  (binary, or one-vs-rest for more classes; left out with a note when a class has no rows
  to score), and the confusion matrix with its class labels (rows: true class, columns:
  predicted);
- regression and forecasting: MAE, RMSE and R², every predicted value counted once (a
  forecast's horizon steps, a multi-output target's outputs); forecasting also per horizon
  step (`per_horizon`: step 1 is the next value);
- reconstruction: the mean squared reconstruction error, in standardised input units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from torch import nn

from engine.data.preprocess.encoding import NumericFeature
from engine.pipeline import ArrayPipeline, Pipeline, WindowPipeline, class_probabilities
from engine.spec import Spec
from engine.training.preparation import Dataset, encode_held_out

# Predictions run in chunks so that scoring a large split never holds all its activations.
CHUNK_ELEMENTS = 2**24


@torch.inference_mode()
def model_outputs(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The model's raw outputs for x, in fp32 on the CPU, in eval mode."""
    model.train(False)
    chunk = max(1, min(8192, CHUNK_ELEMENTS // max(1, x[0].numel()))) if len(x) else 1
    parts = [
        model(x[start : start + chunk].to(device)).float().cpu()
        for start in range(0, x.shape[0], chunk)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def evaluate(
    model: nn.Module,
    pipeline: Pipeline,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
) -> dict[str, Any]:
    """{"rows", "metrics", "notes", and for classification "confusion_matrix"}."""
    if x.shape[0] == 0:
        return {
            "rows": 0,
            "metrics": {},
            "notes": ["not evaluated: the test split has no rows"],
        }
    outputs = model_outputs(model, x, device)
    if task == "classification":
        return classification_report(outputs, y.numpy(), pipeline.classes())
    if task == "reconstruction":
        error = (outputs.reshape(len(x), -1) - x.reshape(len(x), -1).float()).square()
        return {
            "rows": len(x),
            "metrics": {"reconstruction_error": float(error.mean(dtype=torch.float64))},
            "notes": [],
        }
    inputs = x.numpy()
    predicted = pipeline.decode_values(outputs.reshape(len(x), -1).numpy(), inputs)
    truth = pipeline.decode_values(y.reshape(len(x), -1).numpy(), inputs)
    report = regression_report(truth.reshape(-1), predicted.reshape(-1), rows=len(x))
    if task == "forecasting":
        report["per_horizon"] = per_horizon_errors(truth, predicted)
    return report


def evaluate_dataset(
    spec: Spec, pipeline: Pipeline, model: nn.Module, data: Dataset, device: torch.device
) -> dict[str, Any]:
    """A trained model scored on a whole labelled dataset it may never have seen (a stored
    hold-out), with the metrics of its test report; rows it cannot score are noted."""
    x, y, notes = encode_held_out(spec, pipeline, data)
    report = evaluate(model, pipeline, spec.task, torch.from_numpy(x), torch.from_numpy(y), device)
    if report["rows"] == 0:
        report["notes"] = ["not evaluated: the dataset has no rows the model can score"]
    report["notes"] = [*notes, *report["notes"]]
    return report


@dataclass(frozen=True)
class DataOutline:
    """What checking a model against a dataset needs to know of it, without its rows: a
    stored dataset's record gives it (service/evaluations/service.py)."""

    kind: str  # "table", or the arrays' kind: image, sequence, vector
    x_shape: list[int] = field(default_factory=list)  # arrays: one x
    target: str | None = None  # arrays' y: "classes", "numeric", or None without a y
    # A table's columns: name -> (logical type, pyarrow type), as ingest summarised them.
    columns: dict[str, tuple[str, str]] = field(default_factory=dict)


def scoring_mismatch(spec: Spec, pipeline: Pipeline, data: DataOutline) -> str | None:
    """Why a trained model cannot be scored on the dataset `data` outlines (None when it
    can): another kind of data, a column it reads (or the target) missing or of the wrong
    type, arrays of another shape, no labels."""
    if isinstance(pipeline, ArrayPipeline):
        if data.kind == "table":
            return "the model reads arrays; the dataset is a table"
        preprocessor = pipeline.preprocessor
        if data.kind != preprocessor.kind:
            return f"the model reads {preprocessor.kind}s; the dataset holds {data.kind}s"
        if data.x_shape != list(preprocessor.source_shape):
            return (
                f"x has shape {data.x_shape} per row; the model reads {preprocessor.source_shape}"
            )
        if spec.task != "reconstruction" and data.target is None:
            return "the dataset has no `y` array to score against"
        if spec.task == "classification" and data.target != "classes":
            return "array `y` holds real numbers; the model predicts class labels"
        return None
    if data.kind != "table":
        return f"the model reads table rows; the dataset holds {data.kind} arrays"
    if isinstance(pipeline, WindowPipeline):
        numeric = list(pipeline.scaler.channels)
        read = numeric
    else:
        features = pipeline.preprocessor.features
        numeric = [f.name for f in features if isinstance(f, NumericFeature)]
        read = [f.name for f in features]
        if spec.target is not None:
            read = [*read, spec.target]
            if spec.task == "regression":
                numeric = [*numeric, spec.target]
    missing = [name for name in read if name not in data.columns]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"the dataset lacks column {missing[0]!r}{more} that the model reads"
    for name in numeric:
        kind, dtype = data.columns[name]
        if kind == "categorical" and dtype != "null":  # a column of nulls alone reads as NaN
            return f"column {name!r} holds text; the model reads numbers there"
    return None


def per_horizon_errors(truth: np.ndarray, predicted: np.ndarray) -> list[dict[str, float]]:
    """MAE and RMSE of each forecast step ([N, horizon] in target units): how error grows
    with the distance ahead."""
    errors = predicted - truth
    return [
        {
            "step": step + 1,
            "mae": float(np.abs(errors[:, step]).mean()),
            "rmse": float(np.sqrt(np.square(errors[:, step]).mean())),
        }
        for step in range(errors.shape[1])
    ]


def classification_report(
    outputs: torch.Tensor, labels: np.ndarray, classes: list[Any]
) -> dict[str, Any]:
    probabilities = class_probabilities(outputs)
    predicted = probabilities.argmax(axis=1)
    n_classes = max(len(classes), probabilities.shape[1])
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": _balanced_accuracy(labels, predicted),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
    }
    notes = []
    absent = sorted(set(range(n_classes)) - set(np.unique(labels).tolist()))
    if absent:
        names = ", ".join(repr(_label(classes, i)) for i in absent)
        notes.append(f"roc_auc not computed: no test rows of class {names}")
    elif n_classes == 2:
        metrics["roc_auc"] = float(roc_auc_score(labels, probabilities[:, 1]))
    else:
        metrics["roc_auc"] = float(
            roc_auc_score(labels, probabilities, multi_class="ovr", labels=list(range(n_classes)))
        )
    matrix = confusion_matrix(labels, predicted, labels=list(range(n_classes)))
    return {
        "rows": len(labels),
        "metrics": metrics,
        "confusion_matrix": {
            "labels": [_label(classes, i) for i in range(n_classes)],
            "matrix": matrix.tolist(),
        },
        "notes": notes,
    }


def regression_report(truth: np.ndarray, predicted: np.ndarray, rows: int) -> dict[str, Any]:
    metrics = {
        "mae": float(mean_absolute_error(truth, predicted)),
        "rmse": float(root_mean_squared_error(truth, predicted)),
    }
    notes = []
    if len(truth) < 2 or np.all(truth == truth[0]):
        # R² divides by the targets' spread: undefined for one value or a constant.
        notes.append("r2 not computed: the test targets have no spread")
    else:
        metrics["r2"] = float(r2_score(truth, predicted))
    return {"rows": rows, "metrics": metrics, "notes": notes}


def summarise_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each fold's report, and the mean and (population) standard deviation of every metric
    that all folds have."""
    names = [n for n in folds[0]["metrics"] if all(n in f["metrics"] for f in folds)]
    values = {n: np.array([f["metrics"][n] for f in folds]) for n in names}
    return {
        "folds": folds,
        "mean": {n: float(v.mean()) for n, v in values.items()},
        "std": {n: float(v.std()) for n, v in values.items()},
    }


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The mean recall over the classes the rows hold; a class only predicted counts for
    nothing (scikit-learn warns about it; the note on roc_auc already says it is absent)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(labels, predicted))


def _label(classes: list[Any], index: int) -> Any:
    return classes[index] if index < len(classes) else index


# Permutation importance: at most this many test rows, each feature shuffled this many times.
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 5
IMPORTANCE_MAX_FEATURES = 200


def permutation_importance(
    model: nn.Module,
    pipeline: Pipeline,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Global importance of each input on the test split: how much the task's score drops
    when one feature's values are shuffled across the rows (the others kept), averaged over
    `IMPORTANCE_REPEATS` shuffles of at most `IMPORTANCE_ROWS` rows. A table's feature is its
    raw column (its whole encoded block is shuffled together, which is shuffling the raw
    values, since preprocessing is row by row); a forecasting window's or a sequence's, a
    channel; an image's, a channel; a vector's, a position. The score is accuracy for
    classification and R² (in the target's units) for regression and forecasting; None for
    autoencoders and for an empty test split."""
    if task == "reconstruction" or len(x) == 0:
        return None
    groups = _feature_groups(pipeline, x)
    notes = []
    if len(groups) > IMPORTANCE_MAX_FEATURES:
        notes.append(f"only the first {IMPORTANCE_MAX_FEATURES} of {len(groups)} features scored")
        groups = groups[:IMPORTANCE_MAX_FEATURES]
    generator = np.random.default_rng(seed)
    if len(x) > IMPORTANCE_ROWS:
        keep = np.sort(generator.choice(len(x), IMPORTANCE_ROWS, replace=False))
        x, y = x[keep], y[keep]
    metric = "accuracy" if task == "classification" else "r2"
    if metric == "r2" and (len(y) < 2 or bool(torch.all(y == y.reshape(len(y), -1)[0]))):
        return {"metric": metric, "importances": [], "notes": ["not computed: no target spread"]}

    def score(inputs: torch.Tensor) -> float:
        outputs = model_outputs(model, inputs, device)
        if task == "classification":
            if outputs.shape[1] == 1:
                predicted = (outputs[:, 0] > 0).long()
            else:
                predicted = outputs.argmax(dim=1)
            return float(predicted.eq(y).double().mean())
        predicted = pipeline.decode_values(outputs.reshape(len(x), -1).numpy(), inputs.numpy())
        truth = pipeline.decode_values(y.reshape(len(x), -1).numpy(), inputs.numpy())
        return float(r2_score(truth.reshape(-1), predicted.reshape(-1)))

    baseline = score(x)
    importances = []
    for name, part in groups:
        drops = []
        for _ in range(IMPORTANCE_REPEATS):
            order = torch.from_numpy(generator.permutation(len(x)))
            shuffled = x.clone()
            shuffled[(slice(None), *part)] = x[order][(slice(None), *part)]
            drops.append(baseline - score(shuffled))
        importances.append(
            {"feature": name, "mean": float(np.mean(drops)), "std": float(np.std(drops))}
        )
    importances.sort(key=lambda row: row["mean"], reverse=True)
    return {
        "metric": metric,
        "baseline": baseline,
        "rows": len(x),
        "repeats": IMPORTANCE_REPEATS,
        "importances": importances,
        "notes": notes,
    }


def _feature_groups(pipeline: Pipeline, x: torch.Tensor) -> list[tuple[str, tuple]]:
    """(name, the part of one row's input it holds) of each feature permuted together."""
    if isinstance(pipeline, WindowPipeline):
        return [(c, (slice(None), i)) for i, c in enumerate(pipeline.scaler.channels)]
    if isinstance(pipeline, ArrayPipeline):
        kind = pipeline.preprocessor.kind
        if kind == "image":
            return [(f"channel_{c}", (c,)) for c in range(x.shape[1])]
        if kind == "sequence":
            return [(f"channel_{c}", (slice(None), c)) for c in range(x.shape[2])]
        return [(f"x_{i}", (i,)) for i in range(x.shape[1])]
    groups, at = [], 0
    for feature in pipeline.preprocessor.features:
        groups.append((feature.name, (slice(at, at + feature.width),)))
        at += feature.width
    return groups
