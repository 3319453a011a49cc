"""The webhook receiver (real uvicorn server) and ``webhook_ingest``, on both warehouses."""

from __future__ import annotations

import json

import pendulum
import requests
import sqlalchemy as sa

from latam_messaging.teleprom.models import HsmDestination, HsmMessage
from latam_messaging.vendors import callback_parsers
from latam_messaging.warehouse import schema
from latam_messaging.webhooks.ingest import ingest_pending
from tests.helpers.ledger import add_ledger_row
from tests.helpers.paths import VENDOR_DOCS as FIXTURES
from tests.helpers.simulators import configure
from tests.helpers.waiting import wait_until

R = schema.raw_webhook_events
T = schema.outbound_messages

# The vendors' own examples (seeds / vendor-apis.md)
V0 = [
    {
        "fechaHora": "2022-05-24T13:30:02.568-03:00",
        "identificador": "42",
        "telefono": "5493515238015",
        "resultado": "enqueued",
        "empresa": "MaytenCloud",
        "origen": "WSP",
        "sentTime": "1370.0765",
    },
    {
        "fechaHora": "2022-05-24T13:30:09.100-03:00",
        "identificador": "42",
        "telefono": "5493515238015",
        "resultado": "read",
        "empresa": "MaytenCloud",
        "origen": "WSP",
        "senttime": "8000.1",
    },
    {
        "fechaHora": "2022-05-24T13:30:05.000-03:00",
        "identificador": "42",
        "telefono": "5493515238015",
        "resultado": "delivered",
        "empresa": "MaytenCloud",
        "origen": "WSP",
        "senttime": "5000.1",
    },
    {
        "fechaHora": "2022-05-24T13:31:00.000-03:00",
        "identificador": "in-1",
        "telefono": "5493515238015",
        "resultado": "received",
        "empresa": "MaytenCloud",
        "origen": "WSP",
        "mensaje": "Gracias",
    },
]
V1 = {
    "Uuid": "c29915c8-d20c-4455-b322-2f3da9d55646",
    "Id": "23506",
    "Version": "1",
    "Type": "STATUS",
    "Payload": {
        "gs_app_id": "APP_ID",
        "object": "whatsapp_business_account",
        "entry": [
            {
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "statuses": [
                                {
                                    "id": "wamid-1",
                                    "gs_id": "vendor-msg-7",
                                    "status": "sent",
                                    "timestamp": "1725372609",
                                    "recipient_id": "5493515238016",
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ]
            }
        ],
    },
}
V3 = {
    "Uuid": "9013547f-ebfd-4be0-a666-25ed136170a9",
    "Id": "",
    "Version": "3",
    "Type": "INCOMING",
    "Payload": {
        "entry": [
            {
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "contacts": [{"profile": {"name": "nombre apellido"}, "wa_id": "5493515318047"}],
                            "messages": [
                                {
                                    "button": {"payload": "Quiero más info", "text": "Quiero más info"},
                                    "context": {"from": "5491171186962", "gs_id": "7bb2e914", "id": "fb90048f"},
                                    "from": "5493515318047",
                                    "id": "wamid.HBgNNTQ5MzUx",
                                    "timestamp": "1725372609",
                                    "type": "button",
                                }
                            ],
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "5491171186962", "phone_number_id": "252106964657695"},
                        },
                    }
                ],
                "id": "275578198964163",
            }
        ],
        "gs_app_id": "795a3985",
        "object": "whatsapp_business_account",
    },
}
ITD_STATUS = {"sent_at": "26/12/2019 16:07", "status": "READ", "uuid": "f927f0fb-649f-45eb-92bf-15cb975f1bac"}
ITD_INBOUND = json.loads((FIXTURES / "itd" / "webhook_inbound.json").read_bytes())  # the vendor's, verbatim
WAVY_CALLBACK = {
    "id": "wavy-1",
    "correlationId": "m-wavy-1",
    "carrierId": 1,
    "carrierName": "VIVO",
    "destination": "5511900000001",
    "sentStatusCode": 2,
    "sentStatus": "SENT_SUCCESS",
    "sentAt": 1582637824000,
    "sentDate": "2020-02-25T13:37:04Z",
}
WAVY_DLR = {
    **{k: v for k, v in WAVY_CALLBACK.items() if k not in ("sentAt", "sentDate")},
    "sentStatusAt": 1582637824000,
    "sentStatusDate": "2020-02-25T13:37:04Z",
    "deliveredStatusCode": 4,
    "deliveredStatus": "DELIVERED_SUCCESS",
    "deliveredAt": 1582637830000,
    "deliveredDate": "2020-02-25T13:37:10Z",
}
WAVY_MO = {
    "id": "mo-1",
    "subAccount": "demo",
    "carrierId": 1,
    "carrierName": "VIVO",
    "source": "5511900000001",
    "shortCode": "28080",
    "messageText": "SI",
    "receivedAt": 1582637900000,
    "receivedDate": "2020-02-25T13:38:20Z",
    "mt": {"id": "wavy-1", "correlationId": "m-wavy-1", "username": "demo"},
}


def post(url: str, body, content_type: str = "application/json") -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers={"Content-Type": content_type}, timeout=10).status_code


def test_secret_vendor_and_size_are_checked_before_anything_is_stored(receiver, warehouse):
    assert post(f"{receiver.url}/webhooks/teleprom/wrong", V0) == 404
    assert post(f"{receiver.url}/webhooks/acme/{receiver.secret}", V0) == 404
    assert post(f"{receiver.url}/webhooks/wavy/{receiver.secret}/other", WAVY_MO) == 404
    assert post(receiver.hook_url("itd"), b"x" * (1024 * 1024 + 1)) == 413
    assert warehouse.count(R) == 0
    assert requests.get(f"{receiver.url}/health", timeout=5).json() == {"status": "ok"}


def test_any_authenticated_body_is_stored_raw_once(receiver, warehouse):
    assert post(receiver.hook_url("teleprom"), b"not json at all", "text/plain") == 200
    assert post(receiver.hook_url("teleprom"), b"\xff\xfe binary", "application/octet-stream") == 200
    assert post(receiver.hook_url("teleprom"), V3, "application/x-www-form-urlencoded") == 200
    assert post(receiver.hook_url("teleprom"), V3, "application/x-www-form-urlencoded") == 200  # vendor retry
    rows = warehouse.rows(sa.select(R).order_by(R.c.id))
    assert [r["body"] for r in rows[:2]] == ["not json at all", "base64://4gYmluYXJ5"]
    assert len(rows) == 3 and rows[2]["content_type"] == "application/x-www-form-urlencoded"
    assert all(r["parse_state"] == "pending" for r in rows)


def test_a_warehouse_outage_answers_503(receiver, warehouse):
    with warehouse.begin() as conn:
        conn.execute(sa.text("ALTER TABLE raw_webhook_events RENAME TO raw_webhook_events_away"))
    assert post(receiver.hook_url("itd"), ITD_STATUS) == 503
    with warehouse.begin() as conn:
        conn.execute(sa.text("ALTER TABLE raw_webhook_events_away RENAME TO raw_webhook_events"))
    assert post(receiver.hook_url("itd"), ITD_STATUS) == 200


def test_every_format_of_the_seeds_is_ingested_and_linked(receiver, warehouse):
    add_ledger_row(warehouse, "42", "teleprom")
    add_ledger_row(warehouse, "m-tp-7", "teleprom", vendor_id="vendor-msg-7")
    add_ledger_row(warehouse, "m-itd-1", "itd", state="unknown", vendor_id="f927f0fb-649f-45eb-92bf-15cb975f1bac")
    add_ledger_row(warehouse, "m-wavy-1", "wavy", vendor_id="wavy-1")
    for vendor, channel, body in [
        ("teleprom", None, V0),
        ("teleprom", None, V1),
        ("teleprom", None, V3),
        ("itd", None, ITD_STATUS),
        ("itd", None, ITD_INBOUND),
        ("wavy", "dlr", WAVY_DLR),
        ("wavy", "callback", WAVY_CALLBACK),
        ("wavy", "mo", WAVY_MO),
        ("teleprom", None, {"hello": "world"}),
    ]:
        assert post(receiver.hook_url(vendor, channel), body) == 200
    stats = ingest_pending(warehouse, callback_parsers())
    assert (stats.events, stats.parsed, stats.errors) == (9, 8, 1)
    [error] = warehouse.rows(sa.select(R).where(R.c.parse_state == "error"))
    assert "neither a V0 array nor a V1/V3 envelope" in error["parse_error"] and error["body"] == '{"hello": "world"}'
    versions = {r["format_version"] for r in warehouse.rows(R) if r["format_version"]}
    assert versions == {"V0", "V1", "V3", "status", "inbound", "dlr", "callback", "mo"}

    ledger = {r["message_key"]: r for r in warehouse.rows(T)}
    assert ledger["42"]["delivery_status"] == "read"  # out of order: read came before delivered
    assert ledger["m-tp-7"]["delivery_status"] == "sent"
    assert (ledger["m-itd-1"]["state"], ledger["m-itd-1"]["delivery_status"]) == (
        "accepted",
        "read",
    )  # unknown resolved
    itd_raw = [r for r in warehouse.rows(R) if r["vendor"] == "itd" and b"READ" in r["body"].encode()]
    assert [ledger["m-itd-1"]["delivery_status_at"]] == [r["received_at"] for r in itd_raw]  # learned then
    [itd_event] = [e for e in warehouse.rows(sa.select(schema.message_status_events)) if e["vendor"] == "itd"]
    assert itd_event["message_sent_at"] == pendulum.datetime(2019, 12, 26, 19, 7, tz="UTC")  # Chile UTC-3 in summer
    assert ledger["m-wavy-1"]["delivery_status"] == "delivered"
    events = warehouse.rows(sa.select(schema.message_status_events))
    assert len(events) == 3 + 1 + 1 + 2  # V0 x3, V1, ITD, Wavy sent + delivered (callback repeats the sent event)
    assert {(e["vendor"], e["status"], e["raw_status"]) for e in events if e["vendor"] == "wavy"} == {
        ("wavy", "sent", "SENT_SUCCESS"),
        ("wavy", "delivered", "DELIVERED_SUCCESS"),
    }
    inbound = {r["vendor_message_id"]: r for r in warehouse.rows(schema.inbound_messages)}
    [v0_reply] = [k for k in inbound if k.startswith("in-1#")]  # the identificador plus the event's own digest
    assert set(inbound) == {v0_reply, "wamid.HBgNNTQ5MzUx", "2a7907d9-612e-401b-bc54-ce1eab3dce3a", "mo-1"}
    assert (inbound[v0_reply]["text"], inbound[v0_reply]["in_reply_to"]) == ("Gracias", "in-1")
    assert inbound["wamid.HBgNNTQ5MzUx"]["text"] == "Quiero más info" and inbound["mo-1"]["in_reply_to"] == "m-wavy-1"
    assert inbound["2a7907d9-612e-401b-bc54-ce1eab3dce3a"]["direction"] == 1  # as the vendor sent it

    # reprocessing is idempotent; a repeated delivery of an old event changes nothing
    assert post(receiver.hook_url("teleprom"), [V0[0]]) == 200
    ingest_pending(warehouse, callback_parsers(), reparse_errors=True)
    assert len(warehouse.rows(sa.select(schema.message_status_events))) == 7
    assert {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)}["42"] == "read"


def test_simulator_webhooks_reach_the_receiver_and_become_statuses(receiver, warehouse, teleprom_hook, teleprom_server):
    configure(teleprom_server, webhook_url=receiver.hook_url("teleprom"), inbound_reply_rate=1.0)
    destinations = [HsmDestination(f"k-{i}", f"54935167{i:05d}", ["1"]) for i in range(30)]
    for d in destinations:
        add_ledger_row(warehouse, d.tracking_number, "teleprom")
    teleprom_hook.send_hsm([HsmMessage(39, 24, destinations)])
    expected = {d.tracking_number: teleprom_server.simulator.timeline(d.tracking_number, d.phone) for d in destinations}
    wait_until(lambda: not teleprom_server.simulator.webhooks.stats()["pending"], timeout=15,
               what="the simulator's pending webhooks delivered")
    ingest_pending(warehouse, callback_parsers())
    final = {r["message_key"]: r["delivery_status"] for r in warehouse.rows(T)}
    assert final == {k: t[-1] for k, t in expected.items()}
    assert warehouse.count(schema.inbound_messages) == sum(1 for t in expected.values() if t[-1] == "read")
