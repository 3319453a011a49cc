"""Opt-out and opt-in replies read on every inbound path (``consent/replies.py`` through
``webhooks/inbound.store_inbound``): Teleprom V0 and V3 webhooks, ITD's webhook and received-messages
poll, Wavy's MO callback and MO poll — real receiver, real simulators, both databases."""

from __future__ import annotations

import json

import pendulum
import requests
import sqlalchemy as sa

from latam_messaging.common.phones import consent_key as K
from latam_messaging.consent import suppressions
from latam_messaging.itd import poller as itd_poller
from latam_messaging.vendors import callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.wavy import poller as wavy_poller
from latam_messaging.webhooks.ingest import ingest_pending

S = schema.suppressions
T0 = pendulum.now("UTC").subtract(minutes=30).replace(microsecond=0)


def post(url: str, body) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30).status_code == 200


def ingest(warehouse) -> None:
    stats = ingest_pending(warehouse, callback_parsers())
    assert stats.errors == 0, warehouse.rows(sa.select(schema.raw_webhook_events.c.parse_error))


def rows(warehouse) -> list[tuple]:
    """The suppressions, evidence shown by the inbound message's id as the sender gave it (Teleprom V0's
    ``identificador`` is not unique per reply: the stored id carries a hash of the body after ``#``)."""
    query = sa.select(S.c.phone, S.c.scope, S.c.source, S.c.evidence, S.c.reason, S.c.ended_at.is_not(None)).order_by(S.c.id)
    return [(p, sc, so, ev.split("#")[0], re, e) for p, sc, so, ev, re, e in (tuple(r.values()) for r in warehouse.rows(query))]


def v3_incoming(mid: str, phone: str, kind: str, content: dict, at: pendulum.DateTime = T0) -> dict:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5491171186962", "phone_number_id": "252106964657695"},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": phone}],
        "messages": [{"from": phone, "id": mid, "timestamp": str(int(at.timestamp())), "type": kind, kind: content}],
    }
    return {"Version": "3", "Type": "INCOMING", "Payload": {"entry": [{"changes": [{"field": "messages", "value": value}]}]}}


def v0_received(ident: str, phone: str, text: str, at: pendulum.DateTime = T0) -> list:
    return [{"fechaHora": at.in_tz("America/Argentina/Buenos_Aires").isoformat(), "identificador": ident, "telefono": phone,
             "resultado": "received", "empresa": "MaytenCloud", "origen": "WSP", "mensaje": text, "sentTime": "1.0"}]


def itd_inbound(uuid: str, phone: str, text: str, at: pendulum.DateTime = T0) -> dict:
    return {"uuid": uuid, "accountPhone": "56932028245", "senderPhone": phone, "content": text,
            "sendAt": int(at.timestamp() * 1000), "messageType": "chat", "caption": "", "url": "", "direction": 1}


def wavy_mo(mid: str, phone: str, text: str, at: pendulum.DateTime = T0) -> dict:
    return {"id": mid, "source": phone, "shortCode": "28000", "messageText": text, "receivedAt": int(at.timestamp() * 1000)}


def test_an_opt_out_reply_on_every_webhook_path_suppresses_the_sender_for_every_vendor(receiver, warehouse):
    post(receiver.hook_url("teleprom"), v0_received("in-1", "5493515238015", "BAJA"))
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.t3", "5493515318047", "text", {"body": "baja."}))
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.btn", "5493515318048", "button", {"payload": "STOP", "text": "Ya no, gracias"}))
    post(receiver.hook_url("itd"), itd_inbound("itd-1", "56936858019", "No enviar"))
    post(receiver.hook_url("wavy", "mo"), wavy_mo("mo-1", "5511987650001", "SAIR"))
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.chat", "5493515318049", "text", {"body": "no, gracias, mañana no puedo"}))
    ingest(warehouse)
    assert warehouse.count(schema.inbound_messages) == 6
    assert rows(warehouse) == [
        (K("5493515238015"), "all", "keyword", "inbound_messages teleprom/in-1", "replied 'baja' (es)", False),
        (K("5493515318047"), "all", "keyword", "inbound_messages teleprom/wamid.t3", "replied 'baja' (es)", False),
        (K("5493515318048"), "all", "keyword", "inbound_messages teleprom/wamid.btn", "replied 'stop' (es)", False),
        (K("56936858019"), "all", "keyword", "inbound_messages itd/itd-1", "replied 'no enviar' (es)", False),
        (K("5511987650001"), "all", "keyword", "inbound_messages wavy/mo-1", "replied 'sair' (pt)", False),
    ]
    with warehouse.engine.connect() as conn:
        [item] = suppressions.active(conn, "5493515318047")
    assert item["since"] == T0 and item["created_by"] == "inbound webhook"
    # the same bodies again (vendor retries, a re-run of the ingest): nothing new
    post(receiver.hook_url("itd"), itd_inbound("itd-1", "56936858019", "No enviar") | {"title": "retry"})
    ingest(warehouse)
    assert len(rows(warehouse)) == 5


def test_an_opt_out_read_by_the_itd_poll_and_the_wavy_mo_poll(warehouse, itd_hook, itd_server, wavy_hook, wavy_server):
    now_ms = int(pendulum.now("UTC").subtract(minutes=1).timestamp() * 1000)
    with itd_server.simulator.lock:
        itd_server.simulator.inbound.append(
            {"whatsappKey": "", "uuid": "itd-poll-1", "accountPhone": "56932028245", "senderPhone": "56961234567",
             "senderName": "Cliente", "senderType": "user", "content": "¡Cancelar!", "createdAt": now_ms, "sendAt": now_ms,
             "direction": 1, "messageType": "chat", "comments": "READ"}
        )
    stats = itd_poller.poll_itd_received(warehouse, itd_hook, ["56961234567"], lookback_days=1)
    assert stats.new_messages == 1
    with wavy_server.simulator.lock:
        mo = wavy_mo("mo-poll-1", "5511987650002", "Parar", pendulum.now("UTC").subtract(minutes=1))
        wavy_server.simulator.mo_queue.append((0.0, 0, mo))
        wavy_server.simulator.mo_all.append(mo)
    wavy_poller.drain_wavy_queue(warehouse, wavy_hook, "receive_list")
    ingest(warehouse)
    assert [(r[0], r[2], r[3]) for r in rows(warehouse)] == [
        (K("56961234567"), "keyword", "inbound_messages itd/itd-poll-1"),
        (K("5511987650002"), "keyword", "inbound_messages wavy/mo-poll-1"),
    ]


def test_an_opt_in_ends_the_opt_out_and_history_is_kept(receiver, warehouse):
    phone = "5493515238015"
    post(receiver.hook_url("teleprom"), v0_received("in-out", phone, "Baja", T0))
    ingest(warehouse)
    post(receiver.hook_url("teleprom"), v0_received("in-in", phone, "ALTA", T0.add(minutes=5)))
    ingest(warehouse)
    [row] = warehouse.rows(S)
    assert (row["ended_at"], row["end_evidence"].split("#")[0], row["ended_by"]) == (T0.add(minutes=5), "inbound_messages teleprom/in-in", "inbound webhook")
    with warehouse.engine.connect() as conn:
        assert suppressions.screen(conn, [phone], ("all", "teleprom")) == {}
    # opting out again starts a new entry; the old one stays, ended
    post(receiver.hook_url("teleprom"), v0_received("in-out-2", phone, "stop", T0.add(minutes=9)))
    ingest(warehouse)
    assert [(r[3], r[5]) for r in rows(warehouse)] == [
        ("inbound_messages teleprom/in-out", True),
        ("inbound_messages teleprom/in-out-2", False),
    ]


def test_an_old_opt_in_processed_late_never_ends_a_newer_opt_out(receiver, warehouse):
    phone = "5493515238015"
    post(receiver.hook_url("teleprom"), v0_received("new-out", phone, "BAJA", T0.add(minutes=10)))
    ingest(warehouse)
    post(receiver.hook_url("teleprom"), v0_received("old-in", phone, "ALTA", T0))  # arrives late (a vendor retry)
    ingest(warehouse)
    assert [r[5] for r in rows(warehouse)] == [False]


def test_an_opt_out_and_an_opt_in_in_one_batch_are_read_in_reply_time_order(receiver, warehouse):
    phone = "5493515238015"
    post(receiver.hook_url("teleprom"), v0_received("b-in", phone, "alta", T0.add(minutes=1)) + v0_received("b-out", phone, "baja", T0))
    ingest(warehouse)
    assert [(r[3], r[5]) for r in rows(warehouse)] == [("inbound_messages teleprom/b-out", True)]


def test_a_vendor_opt_out_status_suppresses_the_phone_for_that_vendor(receiver, warehouse):
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-w-1", "wavy", phone="5511987650003", vendor_id="w-1")
    add_ledger_row(warehouse, "m-t-1", "teleprom", phone="5493515318047", vendor_id="gs-1")
    post(receiver.hook_url("wavy", "callback"), {"id": "w-1", "correlationId": "m-w-1", "sentStatusCode": 204,
                                                  "sentStatus": "DESTINATION_BLOCKED_BY_OPTOUT", "sentAt": int(T0.timestamp() * 1000)})
    error = {"code": 131050, "title": "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business"}
    status = {"id": "wamid.gs-1", "gs_id": "gs-1", "status": "failed", "timestamp": str(int(T0.timestamp())), "recipient_id": "5493515318047", "errors": [error]}
    value = {"messaging_product": "whatsapp", "statuses": [status]}
    post(receiver.hook_url("teleprom"), {"Version": "3", "Type": "STATUS", "Payload": {"entry": [{"changes": [{"field": "messages", "value": value}]}]}})
    # a failure for another reason suppresses nothing
    add_ledger_row(warehouse, "m-w-2", "wavy", phone="5511987650004", vendor_id="w-2")
    post(receiver.hook_url("wavy", "callback"), {"id": "w-2", "correlationId": "m-w-2", "sentStatusCode": 202, "sentStatus": "INVALID_DESTINATION_NUMBER"})
    ingest(warehouse)
    events = {r["vendor_message_id"]: r["id"] for r in warehouse.rows(schema.message_status_events)}
    got = rows(warehouse)
    assert got == [
        (K("5511987650003"), "wavy", "vendor_status", f"message_status_events {events['w-1']}", "wavy: DESTINATION_BLOCKED_BY_OPTOUT", False),
        (K("5493515318047"), "teleprom", "vendor_status", f"message_status_events {events['gs-1']}", f"teleprom: 131050: {error['title']}", False),
    ]
    # scoped to the vendor: another vendor may still send to the phone
    with warehouse.engine.connect() as conn:
        assert suppressions.screen(conn, ["5511987650003"], ("all", "itd", "whatsapp")) == {}
        assert suppressions.screen(conn, ["5511987650003"], ("all", "wavy", "sms")) == {
            "5511987650003": f"suppressed: vendor_status (message_status_events {events['w-1']})"
        }


def test_an_old_opt_out_read_after_a_newer_opt_in_is_not_the_last_word(receiver, warehouse):
    phone = "5493515238015"
    post(receiver.hook_url("teleprom"), v0_received("o-1", phone, "BAJA", T0))
    ingest(warehouse)
    post(receiver.hook_url("teleprom"), v0_received("i-1", phone, "ALTA", T0.add(minutes=10)))
    ingest(warehouse)
    post(receiver.hook_url("teleprom"), v0_received("o-0", phone, "Baja", T0.add(minutes=5)))  # delivered late
    ingest(warehouse)
    assert [r[5] for r in rows(warehouse)] == [True]
    with warehouse.engine.connect() as conn:
        assert suppressions.screen(conn, [phone], ("all",)) == {}


def test_zero_width_characters_cannot_hide_a_keyword_and_whatsapp_forms_are_read(receiver, warehouse):
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.zw", "5493515318047", "text", {"body": "BA\u200bJA\u00ad"}))
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.br", "551187650001", "text", {"body": "Descadastrar"}))  # no 9th digit
    ingest(warehouse)
    assert sorted(r[0] for r in rows(warehouse)) == sorted([K("5493515318047"), "5511987650001"])
