"""The warehouse: schema, migrations and the one place that reads and writes it."""
