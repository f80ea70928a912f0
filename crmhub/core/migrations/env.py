"""Alembic environment of the hub's database (the tables of :mod:`schemas.tables`).

Normally run through :func:`crmhub.core.sql.upgrade`, which passes an open connection (holding the
migration lock) in ``config.attributes["connection"]``. The ``alembic`` command line (``alembic.ini`` at
the repository root) works too: it connects to ``sqlalchemy.url`` or else to ``CRMHUB_DATABASE_URL`` /
the SQLite file of ``CRMHUB_DATA_DIR``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from crmhub.core.sql import normalise_url
from schemas.tables import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from crmhub.core.settings import Settings
    from crmhub.core.sql import make_engine

    url = config.get_main_option("sqlalchemy.url") or Settings().sql_url
    engine = make_engine(normalise_url(url), migrate=False)
    with engine.connect() as conn:
        run(conn)
        conn.commit()


main()
