"""Database: models, engine construction, migrations (Alembic) and the repository."""
