"""Persistence for the library: SQLAlchemy 2 async models, engine and sessions."""
