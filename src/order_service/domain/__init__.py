"""The order domain: imports nothing from FastAPI, SQLAlchemy, asyncpg or aiokafka."""
