"""PostgreSQL: schema (SQLModel tables + Alembic), the pool, and the statements on the hot paths."""
