"""The schema is owned by Alembic: upgrade → models agree → downgrade, on both databases."""

from __future__ import annotations


import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import UniqueConstraint, create_engine, inspect

from leadgen import migrations
from leadgen.db import scratch_database
from leadgen.models import Base
from tests.conftest import PG_ADMIN


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
        return
    with scratch_database(PG_ADMIN, prefix="leadgen_mig") as url:
        yield url


def test_upgrade_check_downgrade_roundtrip(empty_db):
    migrations.upgrade(empty_db)
    engine = create_engine(empty_db)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        migrations.downgrade(empty_db)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrations.upgrade(empty_db)  # and back up again
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_idempotency_keys_are_unique_constraints():
    def unique_sets(table):
        sets = {tuple(column.name for column in constraint.columns)
                for constraint in table.constraints if isinstance(constraint, UniqueConstraint)}
        return sets | {(column.name,) for column in table.columns if column.unique}

    tables = Base.metadata.tables
    assert ("query_hash",) in unique_sets(tables["serp_queries"])
    assert ("operation_id",) in unique_sets(tables["serp_operations"])
    assert ("operation_id", "url") in unique_sets(tables["serp_results"])
    assert ("domain",) in unique_sets(tables["companies"])
    assert ("company_id", "email") in unique_sets(tables["contacts"])
    assert ("contact_id",) in unique_sets(tables["outreach_messages"])
