"""Alembic environment: runs on the connection handed in by callcenter.adapters.db."""

from alembic import context

from callcenter.adapters.tables import compared, metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `callcenter db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=compared,
)
with context.begin_transaction():
    context.run_migrations()
