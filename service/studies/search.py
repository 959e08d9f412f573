"""A study's Optuna side: the storage (Optuna's own tables in the service's database), the
sampler and pruner a study names, and its Optuna study.

Optuna's RDB storage keeps its schema version in an `alembic_version` table, the name the
service's own migrations use; the two must not share a namespace. On PostgreSQL Optuna's
tables live in a schema of their own (`optuna`) in the service's database; on the embedded
SQLite default, in a file beside the service's database (`<name>.optuna.sqlite3`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.core.settings import Settings

OPTUNA_SCHEMA = "optuna"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "successive_halving", "hyperband", "none")

_storages: dict[str, optuna.storages.RDBStorage] = {}
_lock = threading.Lock()
optuna.logging.set_verbosity(optuna.logging.WARNING)


def optuna_storage(settings: Settings) -> optuna.storages.RDBStorage:
    """One storage per database and process: building one checks Optuna's schema."""
    url = settings.effective_database_url
    with _lock:
        if url not in _storages:
            _storages[url] = _build_storage(url)
        return _storages[url]


def _build_storage(url: str) -> optuna.storages.RDBStorage:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = Path(parsed.database or "trainyard.sqlite3")
        beside = database.with_name(f"{database.stem}.optuna.sqlite3")
        # Several workers write trials at once: wait for the file's lock, don't fail on it.
        return optuna.storages.RDBStorage(
            f"sqlite:///{beside}", engine_kwargs={"connect_args": {"timeout": 30}}
        )
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
    engine.dispose()
    return optuna.storages.RDBStorage(
        parsed.render_as_string(hide_password=False),
        engine_kwargs={
            "connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"},
            "pool_pre_ping": True,
        },
    )


def build_sampler(
    name: str, seed: int, grid: dict[str, list] | None = None
) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid or {}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        # Not before five trials have completed (Optuna's default: the median of fewer is too
        # noisy, and pruned the best trial in bench/study.py), nor in a trial's first two
        # epochs.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()
