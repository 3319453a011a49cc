"""What the tests share that is not a fixture: servers, drops, ledger rows, waits, paths.

Test modules import these from ``tests.helpers.<module>``, never from a ``conftest.py`` (which holds
fixtures only). See ``tests/README.md``.
"""
