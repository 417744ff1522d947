"""All SQL lives in this package: the connection, migrations and queries."""

from vidprod.store.database import Database

__all__ = ["Database"]
