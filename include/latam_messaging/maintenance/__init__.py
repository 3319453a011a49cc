"""Retention (the ``messaging_maintenance`` DAG): raw webhook bodies archived then purged
(``raw_retention.py``, written through ``archive.py``), old drop archives pruned (``drop_archives.py``), the
tables kept as data arrives checked and mended (``kept_tables.py``)."""
