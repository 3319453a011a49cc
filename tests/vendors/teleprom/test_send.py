"""TelepromAdapter (``teleprom/send.py``): rows without a template go out as free-form messages, grouped by
account, with answers read like MessageWpp's; the account an opt-out's confirmation is sent from."""

from __future__ import annotations

import logging

import pendulum
import pytest

from latam_messaging.consent.confirm import CannotConfirm
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.ledger import SendRow
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from tests.helpers.connections import set_connection
from tests.helpers.sending import load_catalog
from tests.helpers.simulators import sim_state

PHONE = "5493516723999"


def free(key: str, account: int | None = 39, text: str | None = "Listo", phone: str = PHONE) -> SendRow:
    return SendRow(key, phone, account_id=account, content_type="TEXT", content=text)


def hsm(key: str, account: int = 39, template: int = 24) -> SendRow:
    return SendRow(key, PHONE, account_id=account, template_id=template, params=["1"])


def test_batches_keep_free_form_rows_apart_by_account():
    rows = [hsm("m-1"), free("c-1"), hsm("m-2", 41, 27), free("c-2", 41), free("c-3"), hsm("m-3")]
    groups = {tuple(r.message_key for r in batch) for batch in TelepromAdapter().batches(rows)}
    assert groups == {("m-1", "m-3"), ("m-2",), ("c-1", "c-3"), ("c-2",)}


def test_free_form_rows_go_to_the_free_form_endpoint(teleprom_hook, teleprom_server):
    adapter = TelepromAdapter()
    outcomes = adapter.send_batch(teleprom_hook, [free("c-1"), free("c-2", phone="123")])
    assert [(o.message_key, o.state) for o in outcomes] == [("c-1", MessageState.ACCEPTED), ("c-2", MessageState.REJECTED)]
    assert outcomes[1].error == "Teleprom: Invalid destination number"
    [sent] = sim_state(teleprom_server)["messages"]
    assert (sent["kind"], sent["tracking"], sent["account_id"], sent["id"]) == ("free", "c-1", 39, outcomes[0].vendor_message_id)

    [unknown_account] = adapter.send_batch(teleprom_hook, [free("c-3", account=99)])
    assert (unknown_account.state, unknown_account.error) == (MessageState.REJECTED, "Teleprom: Account not found")


def test_a_free_form_row_with_nothing_to_send_is_refused_without_a_request(teleprom_hook, teleprom_server):
    before = sim_state(teleprom_server)["requests_served"]
    outcomes = TelepromAdapter().send_batch(teleprom_hook, [free("c-1", text=None), free("c-2", account=None)])
    assert {o.state for o in outcomes} == {MessageState.REJECTED}
    assert sim_state(teleprom_server)["requests_served"] == before


# ---- the account a confirmation is sent from ------------------------------------------------------
def sent_row(warehouse, key: str, account: int, vendor_id: str) -> None:
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        conn.execute(
            schema.outbound_messages.insert().values(
                message_key=key, vendor="teleprom", phone=PHONE, account_id=account, template_id=24,
                state="accepted", vendor_message_id=vendor_id, created_at=now, updated_at=now,
            )
        )


def fields(warehouse, **message):
    with warehouse.engine.connect() as conn:
        return TelepromAdapter().confirmation_fields(conn, {"vendor": "teleprom", **message})


@pytest.mark.parametrize(
    ("message", "account"),
    [
        ({"to_account": "39"}, 39),  # an account id
        ({"to_account": "5491151234567"}, 41),  # the account's number, as V3 carries it
        ({"to_account": "+54 9 11 5123-4567"}, 41),
        ({"to_account": "MaytenCloud", "in_reply_to": "gs-41"}, 41),  # V3: the id MessageWpp answered
        ({"to_account": "MaytenCloud", "in_reply_to": "m-0123456789abcdef-1"}, 39),  # V0: our message_key
        ({"to_account": "7", "in_reply_to": "gs-41"}, 41),  # not a known account: the message it answers
    ],
)
def test_the_account_of_a_confirmation(warehouse, teleprom_hook, message, account):
    load_catalog(warehouse, teleprom_hook)
    sent_row(warehouse, "m-0123456789abcdef-1", 39, "gs-39")
    sent_row(warehouse, "m-0123456789abcdef-2", 41, "gs-41")
    assert fields(warehouse, **message) == {"account_id": account, "content_type": "TEXT"}


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"to_account": "9" * 30, "in_reply_to": "gs-unknown"},  # longer than any account id: no database error
        {"to_account": 39, "in_reply_to": 7},  # not text
        {"to_account": "", "in_reply_to": ""},
    ],
)
def test_no_account_no_confirmation_unless_a_default_account(warehouse, teleprom_hook, monkeypatch, message):
    load_catalog(warehouse, teleprom_hook)
    with pytest.raises(CannotConfirm, match="no Teleprom account to answer from"):
        fields(warehouse, **message)
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", host="http://x", extra={"default_account": 41})
    assert fields(warehouse, **message)["account_id"] == 41


def test_an_inactive_account_does_not_answer(warehouse, teleprom_hook):
    load_catalog(warehouse, teleprom_hook)
    with warehouse.begin() as conn:
        conn.execute(schema.teleprom_accounts.update().where(schema.teleprom_accounts.c.account_id == 41).values(active=False))
    with pytest.raises(CannotConfirm):
        fields(warehouse, to_account="41")


def test_a_default_account_that_is_no_account_id_is_logged(warehouse, monkeypatch, caplog):
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", host="http://x", extra={"default_account": "ventas"})
    with caplog.at_level(logging.WARNING), pytest.raises(CannotConfirm):
        fields(warehouse)
    assert "default_account 'ventas' is not an account id" in caplog.text


def test_without_a_teleprom_connection_there_is_no_default_account(warehouse, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_TELEPROM_DEFAULT", raising=False)
    with pytest.raises(CannotConfirm):
        fields(warehouse, to_account="39")  # no catalogue either
