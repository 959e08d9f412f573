"""Class imbalance: under- and over-sampling of the training rows, synthetic minority rows
(SMOTE and its categorical variants, from imbalanced-learn), or class weights in the loss.

Only the training rows are resampled: validation and test keep the class balance the world
has, so their metrics say how the model will do there. Resampling is seeded and drawn once,
before training; the trainer's shuffle then mixes the rows as usual.

Where SMOTE runs: on the training rows as the preprocessor encodes them, with each one-hot
block folded back into one code column first (`column_blocks`, `synthesise`). So
- numbers are already imputed (SMOTE cannot take a missing value) and scaled (its nearest
  neighbours are Euclidean: unscaled, the widest column would choose them alone), by rules
  fitted on the real training rows only; synthetic rows never shift those statistics, and
  predict replays the same rules on rows like the real ones;
- a categorical column is one column of category codes, as SMOTENC wants it: a synthetic row
  takes one real category (the neighbours' most frequent), never the fractional mix of
  one-hot slots that interpolating encoded columns would give, nor two slots set at once;
- binned numbers, booleans and missing indicators count as categorical for the same reason.
Running it on raw rows instead would need imputing and scaling twice, once for SMOTE's
distances and again, differently fitted, for the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.preprocess.encoding import CategoricalFeature, Feature
from engine.errors import DataError, SpecMismatch
from engine.spec import Spec
from engine.spec.data import SYNTHETIC_METHODS


def check_sampling(spec: Spec) -> None:
    """Refuse a sampling method that cannot apply; raises SpecMismatch naming the field."""
    method = spec.data.sampling.method
    if method == "none":
        return
    if spec.task != "classification":
        raise SpecMismatch(
            "data.sampling.method", f"{method} balances classes; it needs task classification"
        )
    if spec.training.class_weights is not None:
        # Both correct the same imbalance: together they over-correct it.
        raise SpecMismatch(
            "data.sampling.method",
            f"{method} and training.class_weights both correct class imbalance; use one",
        )


@dataclass(frozen=True)
class Block:
    """Columns of the encoded input that hold one feature's value: `width` one-hot slots
    (folded into one code for SMOTE), or a single column."""

    name: str
    start: int
    width: int = 1
    categorical: bool = False
    onehot: bool = False


def table_blocks(features: list[Feature]) -> list[Block]:
    """The blocks of a table preprocessor's encoded input, feature by feature."""
    blocks, at = [], 0
    for feature in features:
        value_width = feature.width - feature.indicator
        if isinstance(feature, CategoricalFeature):
            onehot = feature.encoding == "onehot"
            blocks.append(Block(feature.name, at, value_width, True, onehot))
        elif feature.edges is not None:
            onehot = feature.bin_encode == "onehot"
            blocks.append(Block(feature.name, at, value_width, True, onehot))
        else:
            blocks.append(Block(feature.name, at, 1, categorical=feature.boolean))
        if feature.indicator:
            blocks.append(Block(f"{feature.name} (missing indicator)", at + value_width, 1, True))
        at += feature.width
    return blocks


def vector_blocks(width: int, codes: bool = False) -> list[Block]:
    """A vector array's columns: numbers, or (`codes`, token ids for an embedding) categories,
    which SMOTE must not interpolate into codes that do not exist."""
    return [Block(f"x[{i}]", i, categorical=codes) for i in range(width)]


def check_synthesis(spec: Spec, blocks: list[Block] | None, labels: np.ndarray) -> None:
    """Refuse smote/smotenc/smoten where they cannot run, naming the field: the feature types
    must fit the variant (`blocks` None: the input is not a feature vector) and every class
    needs k_neighbors + 1 training rows (`labels`: class index per training row)."""
    config = spec.data.sampling
    method = config.method
    if method not in SYNTHETIC_METHODS:
        return
    if blocks is None:
        raise SpecMismatch(
            "data.sampling.method",
            f"{method} interpolates feature vectors (tables, or vector arrays); this dataset "
            "holds images or sequences: use oversample",
        )
    categorical = [b.name for b in blocks if b.categorical]
    numeric = [b.name for b in blocks if not b.categorical]
    if method == "smote" and categorical:
        raise SpecMismatch(
            "data.sampling.method",
            f"smote interpolates numbers; {_some(categorical)} categorical (binned, boolean "
            "and missing-indicator columns count too): use smotenc",
        )
    if method == "smotenc" and not categorical:
        raise SpecMismatch(
            "data.sampling.method", "smotenc is for mixed features; every one is numeric: use smote"
        )
    if method == "smotenc" and not numeric:
        raise SpecMismatch(
            "data.sampling.method",
            "smotenc needs at least one numeric feature; every one is categorical: use smoten",
        )
    if method == "smoten" and numeric:
        raise SpecMismatch(
            "data.sampling.method",
            f"smoten is for categorical features only; {_some(numeric)} numeric: use smotenc",
        )
    counts = np.bincount(labels[labels >= 0]) if len(labels) else np.zeros(0, dtype=int)
    present = counts[counts > 0]
    if len(present) and present.min() < config.k_neighbors + 1:
        raise SpecMismatch(
            "data.sampling.k_neighbors",
            f"a class has {int(present.min())} training row(s); {method} with k_neighbors "
            f"{config.k_neighbors} needs at least {config.k_neighbors + 1} in every class: "
            "lower k_neighbors, or use oversample",
        )


def _some(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
    return f"{shown} {'is' if len(names) == 1 else 'are'}"


def synthesise(
    x: np.ndarray,
    labels: np.ndarray,
    method: str,
    k_neighbors: int,
    seed: int,
    blocks: list[Block],
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows followed by synthetic rows of the smaller classes, up to the largest
    class: SMOTE (every block numeric), SMOTENC (mixed) or SMOTEN (every block categorical)
    on the rows with each one-hot block folded into one code, then unfolded again."""
    # imbalanced-learn (and scikit-learn under it) only load when a spec asks for them.
    from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC

    compact = _fold(x, blocks)
    if method == "smote":
        sampler = SMOTE(k_neighbors=k_neighbors, random_state=seed)
    elif method == "smoten":
        sampler = SMOTEN(k_neighbors=k_neighbors, random_state=seed)
    else:
        categorical = [i for i, block in enumerate(blocks) if block.categorical]
        sampler = SMOTENC(categorical, k_neighbors=k_neighbors, random_state=seed)
    try:
        compact_out, labels_out = sampler.fit_resample(compact, labels)
    except ValueError as exc:  # a check above should have caught it; still the data's fault
        raise DataError(f"{method} could not resample the training rows: {exc}") from exc
    synthetic = _unfold(np.asarray(compact_out[len(x) :], dtype=np.float64), blocks, x.shape[1])
    rows = np.concatenate([x, synthetic.astype(x.dtype)])
    return rows, np.asarray(labels_out, dtype=labels.dtype)


def _fold(x: np.ndarray, blocks: list[Block]) -> np.ndarray:
    """[N, width] encoded rows -> [N, blocks]: a one-hot block becomes its slot (-1: none)."""
    columns = []
    for block in blocks:
        part = x[:, block.start : block.start + block.width]
        if block.onehot:
            columns.append(np.where(part.any(axis=1), part.argmax(axis=1), -1))
        else:
            columns.append(part[:, 0])
    return np.column_stack(columns).astype(np.float64)


def _unfold(compact: np.ndarray, blocks: list[Block], width: int) -> np.ndarray:
    out = np.zeros((len(compact), width), dtype=np.float64)
    rows = np.arange(len(compact))
    for j, block in enumerate(blocks):
        if block.onehot:
            slots = np.rint(compact[:, j]).astype(np.int64)
            known = slots >= 0
            out[rows[known], block.start + slots[known]] = 1.0
        else:
            out[:, block.start] = compact[:, j]
    return out


def resample(labels: np.ndarray, method: str, seed: int) -> np.ndarray | None:
    """Row indices into `labels` (class index per training row) after under- or over-sampling,
    sorted; None when the method resamples nothing (none, class_weights)."""
    if method not in ("undersample", "oversample"):
        return None
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.min() if method == "undersample" else counts.max()
    picked = []
    for label, count in zip(classes, counts, strict=True):
        rows = np.flatnonzero(labels == label)
        if method == "undersample":
            picked.append(rng.choice(rows, size=target, replace=False))
        else:
            # Every row once, then random repeats up to the largest class.
            picked += [rows, rng.choice(rows, size=target - count, replace=True)]
    return np.sort(np.concatenate(picked))


def class_counts(labels: np.ndarray, classes: list) -> dict[str, int]:
    """Rows per class label, for the job's report."""
    counts = np.bincount(labels, minlength=len(classes))
    return {str(label): int(n) for label, n in zip(classes, counts, strict=True)}
