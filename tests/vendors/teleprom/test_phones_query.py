"""``phones_query``, the SQL a number_checks run may be given (``teleprom/number_checks.py``), can never
write to the warehouse; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from latam_messaging.teleprom.number_checks import CheckStats, UnsafeQueryError, queue_from_query
from latam_messaging.warehouse import schema

T = schema.outbound_messages


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE outbound_messages SET content = 'rewritten'; COMMIT",
        "COMMIT; UPDATE outbound_messages SET content = 'rewritten'",
        "DELETE FROM outbound_messages",
        "SELECT phone FROM outbound_messages; DROP TABLE outbound_messages",
        "WITH gone AS (DELETE FROM outbound_messages RETURNING phone) SELECT phone FROM gone",
    ],
)
def test_phones_query_cannot_write(warehouse, sql):
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-0000000000000000-1", "wavy", state="pending")
    before = warehouse.rows(T)
    with pytest.raises((UnsafeQueryError, sa.exc.DBAPIError)):
        queue_from_query(warehouse, sql, default_max_age_hours=24, stats=CheckStats())
    assert warehouse.rows(T) == before
    assert warehouse.count(schema.number_check_queue) == 0
    # the same warehouse still takes an honest query, and writes normally afterwards
    stats = CheckStats()
    queue_from_query(warehouse, "SELECT phone FROM outbound_messages", default_max_age_hours=24, stats=stats)
    assert stats.queued == 1 and warehouse.count(schema.number_check_queue) == 1
