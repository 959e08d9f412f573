from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.core.migrate import target_metadata, upgrade_database
from tests.conftest import fresh_postgres_database

TABLES = {"projects", "api_keys", "datasets", "jobs", "job_metrics", "models", "alembic_version"}


def assert_migrated_schema_matches_models(url: str) -> None:
    upgrade_database(url)
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, target_metadata())
        assert differences == [], f"models and migrations disagree: {differences}"
        # Running it again is a no-op, as on every service start.
        upgrade_database(url)
    finally:
        engine.dispose()


def test_upgrade_head_on_empty_sqlite_matches_the_models(tmp_path) -> None:
    assert_migrated_schema_matches_models(f"sqlite:///{tmp_path / 'empty.sqlite'}")


@pytest.mark.postgres
def test_upgrade_head_on_empty_postgres_matches_the_models() -> None:
    with fresh_postgres_database() as url:
        assert_migrated_schema_matches_models(url)
