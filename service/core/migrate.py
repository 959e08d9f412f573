"""Alembic, driven from code: `upgrade head` on start, and the metadata it compares."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

MIGRATIONS_DIR_NAMES = (
    Path(__file__).resolve().parents[2] / "migrations",
    Path.cwd() / "migrations",
)


def target_metadata() -> MetaData:
    # Importing the tables registers them on Base.metadata.
    from service.auth import tables as _auth  # noqa: F401
    from service.batch_predictions import tables as _batch_predictions  # noqa: F401
    from service.core.database import Base
    from service.datasets import tables as _datasets  # noqa: F401
    from service.evaluations import tables as _evaluations  # noqa: F401
    from service.fleet import tables as _fleet  # noqa: F401
    from service.idempotency import tables as _idempotency  # noqa: F401
    from service.jobs import tables as _jobs  # noqa: F401
    from service.models import tables as _models  # noqa: F401
    from service.studies import tables as _studies  # noqa: F401

    return Base.metadata


def migrations_dir() -> Path:
    for candidate in MIGRATIONS_DIR_NAMES:
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("migrations/ not found beside the package or in the working directory")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")
