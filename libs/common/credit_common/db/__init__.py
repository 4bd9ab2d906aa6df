"""PostgreSQL: pool, per-service schema and role, migrations, inbox and outbox."""
