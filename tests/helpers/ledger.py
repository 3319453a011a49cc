"""Ledger rows (``outbound_messages``) written and read the way the send pipeline leaves them."""

from __future__ import annotations

import sqlalchemy as sa


def add_ledger_row(
    warehouse,
    key: str,
    vendor: str,
    *,
    phone: str = "5493515238015",
    state: str = "accepted",
    vendor_id: str | None = None,
) -> None:
    """A row of ``outbound_messages`` as the send pipeline leaves it."""
    import pendulum

    from latam_messaging.warehouse import schema

    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        conn.execute(
            schema.outbound_messages.insert().values(
                message_key=key,
                vendor=vendor,
                phone=phone,
                state=state,
                vendor_message_id=vendor_id,
                created_at=now,
                updated_at=now,
                accepted_at=now if state == "accepted" else None,
            )
        )


def states(warehouse, vendor: str) -> dict[str, int]:
    """How many of ``vendor``'s rows are in each state."""
    from latam_messaging.warehouse import schema

    T = schema.outbound_messages
    query = sa.select(T.c.state, sa.func.count()).where(T.c.vendor == vendor).group_by(T.c.state)
    with warehouse.engine.connect() as conn:
        return dict(conn.execute(query).all())


def ledger_keys(warehouse, state: str | None = None) -> set[str]:
    from latam_messaging.warehouse import schema

    T = schema.outbound_messages
    query = sa.select(T.c.message_key)
    if state:
        query = query.where(T.c.state == state)
    with warehouse.engine.connect() as conn:
        return set(conn.execute(query).scalars())
