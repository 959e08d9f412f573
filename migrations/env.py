from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from service.core.database import UTCDateTime
from service.core.migrate import target_metadata
from service.core.settings import load_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or load_settings().effective_database_url


def render_item(type_: str, obj, autogen_context):
    # Migrations stay free of application imports: UTCDateTime is a plain tz-aware DateTime.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata(),
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
