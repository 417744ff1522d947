"""All SQL lives in this package: the connection, migrations and queries."""

from vidprod.store.database import MAX_INTEGER, Database

__all__ = ["MAX_INTEGER", "Database"]
