"""Consent is enforced at the last moment (issue 23): after an opt-out — a reply on any vendor, a vendor's
opt-out status — no later or still-pending send to that phone reaches any simulator; each skipped row
names the evidence; an explicit exemption is the only way through. Real simulators, both databases."""

from __future__ import annotations

import threading

import pendulum
import sqlalchemy as sa

from latam_messaging.consent import suppressions
from latam_messaging.consent.suppressions import Source, Suppression
from latam_messaging.itd.send import ItdAdapter
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.consent.test_replies import ingest, itd_inbound, post, v3_incoming, wavy_mo
from tests.helpers.drops import drop_csv
from tests.helpers.sending import load_catalog
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until

T, S, R = schema.outbound_messages, schema.suppressions, schema.drop_rejects
AR, CL, BR = "5493516723999", "56961234567", "5511987650001"


def sent_to(server, phone: str) -> int:
    return sum(1 for m in sim_state(server)["messages"] if m.get("phone", "").endswith(phone[-8:]))


def rejects(warehouse) -> list[str]:
    return [r["reason"] for r in warehouse.rows(sa.select(R).order_by(R.c.rejected_at, R.c.row_number))]


def suppress(warehouse, phone: str, scope: str = "all", evidence: str = "test") -> None:
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        suppressions.add(warehouse, conn, [Suppression(phone, scope, Source.MANUAL, evidence, now, "a test")], now)


def test_a_baja_reply_on_any_vendor_stops_every_later_send_to_that_phone(
    run_dag, receiver, warehouse, teleprom_hook, teleprom_server, itd_server, itd_hook, wavy_server, wavy_hook, drop_dir
):
    load_catalog(warehouse, teleprom_hook)
    post(receiver.hook_url("teleprom"), v3_incoming("wamid.out", AR, "text", {"body": "baja."}))
    post(receiver.hook_url("itd"), itd_inbound("itd-out", CL, "BAJA"))
    post(receiver.hook_url("wavy", "mo"), wavy_mo("mo-out", BR, "Baja!"))
    ingest(warehouse)

    other_ar, other_cl, other_br = "5493516723998", "56961234568", "5511987650002"
    # each opt-out blocks every vendor (scope all): the Chilean customer is suppressed on Wavy too
    drop_csv(drop_dir, "teleprom_hsm", "a.csv", f"phone,template,param_1\n{AR},shipping_confirmation,1\n{other_ar},shipping_confirmation,2\n")
    drop_csv(drop_dir, "itd_whatsapp", "b.csv", f"phone,content_type,content\n{CL},TEXT,hola\n{other_cl},TEXT,hola\n")
    drop_csv(drop_dir, "wavy_sms", "c.csv", f"phone,message\n{BR},hola\n{other_br},hola\n+{CL},hola\n")
    for dag_id in ("teleprom_hsm_send", "itd_whatsapp_send", "wavy_sms_send"):
        assert run_dag(dag_id).state == "success"

    inbound = {r["vendor"]: r["vendor_message_id"] for r in warehouse.rows(schema.inbound_messages)}
    reasons = sorted(rejects(warehouse))
    assert reasons == sorted([
        f"suppressed: keyword (inbound_messages teleprom/{inbound['teleprom']})",
        f"suppressed: keyword (inbound_messages itd/{inbound['itd']})",
        f"suppressed: keyword (inbound_messages wavy/{inbound['wavy']})",
        f"suppressed: keyword (inbound_messages itd/{inbound['itd']})",
    ])
    for server, phone in ((teleprom_server, AR), (itd_server, CL), (wavy_server, BR), (wavy_server, CL)):
        assert sent_to(server, phone) == 0
    for server, phone in ((teleprom_server, other_ar), (itd_server, other_cl), (wavy_server, other_br)):
        assert sent_to(server, phone) == 1
    files = {r["folder"]: (r["rows_valid"], r["rows_rejected"]) for r in warehouse.rows(schema.drop_files)}
    assert files == {"teleprom_hsm": (1, 1), "itd_whatsapp": (1, 1), "wavy_sms": (1, 2)}


def test_an_opt_out_landing_between_ingest_and_claim_stops_the_pending_row(run_dag, warehouse, wavy_server, wavy_hook, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "later.csv", f"phone,message\n{BR},hola\n5511987650002,hola\n")
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    assert stats.rows_valid == 2 and stats.rows_screened == 0
    suppress(warehouse, BR, evidence="drop_files abc row 7")  # the opt-out lands now, before any send

    result = dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert result.suppressed == 1 and result.attempted == 1
    row = warehouse.rows(sa.select(T.c.state, T.c.error, T.c.request_started_at).where(T.c.phone == BR))[0]
    assert dict(row) == {"state": "suppressed", "error": "suppressed: manual (drop_files abc row 7)", "request_started_at": None}
    assert sent_to(wavy_server, BR) == 0 and sim_state(wavy_server)["accepted_messages"] == 1
    # final: a later run never sends it, even once the suppression ends
    with warehouse.begin() as conn:
        suppressions.end(conn, BR, sources=[Source.MANUAL], at=pendulum.now("UTC"), by="a test", evidence="remove")
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sent_to(wavy_server, BR) == 0


def test_an_opt_out_arriving_mid_send_stops_the_rest_of_the_campaign(warehouse, itd_server, itd_hook, drop_dir):
    phones = [f"5696123{i:04d}" for i in range(60)]
    drop_csv(drop_dir, "itd_whatsapp", "big.csv", "phone,content_type,content\n" + "".join(f"{p},TEXT,hola\n" for p in phones))
    ingest_drops(ItdAdapter(), warehouse, drop_dir, region="CL", timezone="UTC")
    configure(itd_server, latency_ms=60)
    keys = warehouse.rows(sa.select(T.c.message_key, T.c.phone).order_by(T.c.message_key))  # the claims' order
    late = [r["phone"] for r in keys[-20:]]

    done = threading.Event()
    worker = threading.Thread(target=lambda: (dispatch(ItdAdapter(), warehouse, hook=itd_hook, concurrency=2), done.set()))
    worker.start()
    wait_until(lambda: sim_state(itd_server)["accepted_messages"] >= 3, timeout=30, what="the first sends")
    suppressed_at = pendulum.now("UTC")
    for phone in late:
        suppress(warehouse, phone, evidence=f"reply {phone}")
    worker.join(timeout=120)
    assert done.is_set()

    final = {r["phone"]: r for r in warehouse.rows(sa.select(T))}
    stopped = [p for p in late if final[p]["state"] == "suppressed"]
    assert len(stopped) >= 10  # most of the campaign's end was still waiting
    for phone in late:
        row = final[phone]
        if row["state"] == "suppressed":
            assert sent_to(itd_server, phone) == 0 and row["error"] == f"suppressed: manual (reply {phone})"
        else:  # claimed before the opt-out was committed
            assert row["state"] == "accepted" and row["request_started_at"] < suppressed_at.add(seconds=1)
    assert sim_state(itd_server)["accepted_messages"] == 60 - len(stopped)


def test_only_an_explicit_exemption_sends_to_a_suppressed_phone_and_it_is_counted(run_dag, warehouse, wavy_server, wavy_hook, drop_dir):
    suppress(warehouse, BR, evidence="registry row 1")
    drop_csv(drop_dir, "wavy_sms", "otp.csv", f"phone,message\n{BR},Tu código es 1234\n5511987650002,Tu código es 9876\n")
    # a campaign dropped at the same moment is not covered by the exemption
    drop_csv(drop_dir, "wavy_sms", "promo-same-time.csv", f"phone,message\n{BR},Promo\n")
    conf = {"consent_exempt": "OTP codes; approved by legal (Ana)", "consent_exempt_files": ["otp.csv"]}
    run = run_dag("wavy_sms_send", run_conf=conf)
    assert run.state == "success"
    rows = warehouse.rows(sa.select(T.c.phone, T.c.state, T.c.consent_exempt).order_by(T.c.phone))
    assert [(r["phone"], r["state"]) for r in rows] == [(BR, "accepted"), ("5511987650002", "accepted")]
    text = f"OTP codes; approved by legal (Ana) (run {run.run_id}) (file otp.csv)"
    assert [r["consent_exempt"] for r in rows] == [text, text]
    assert sent_to(wavy_server, BR) == 1
    [ingest_task] = [ti for ti in run.get_task_instances() if ti.task_id == "ingest_drops"]
    stats = ingest_task.xcom_pull(task_ids="ingest_drops")
    assert (stats["rows_exempt"], stats["rows_exempt_overriding"], stats["rows_screened"]) == (2, 1, 1)
    assert rejects(warehouse) == ["suppressed: manual (registry row 1)"]

    # without the flag, the next file's row to that phone is rejected
    drop_csv(drop_dir, "wavy_sms", "promo.csv", f"phone,message\n{BR},Promo 2\n")
    assert run_dag("wavy_sms_send").state == "success"
    assert sent_to(wavy_server, BR) == 1
    assert rejects(warehouse) == ["suppressed: manual (registry row 1)"] * 2


def test_an_exemption_that_names_no_file_loads_nothing(run_dag, warehouse, wavy_server, wavy_hook, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "otp.csv", f"phone,message\n{BR},Tu código es 1234\n")
    assert run_dag("wavy_sms_send", run_conf={"consent_exempt": "OTP codes; approved by legal (Ana)"}).state == "failed"
    assert warehouse.count(T) == 0 and sim_state(wavy_server)["accepted_messages"] == 0
    assert (drop_dir / "wavy_sms" / "otp.csv").exists()  # untouched, for a corrected run


def test_a_vendor_opt_out_status_stops_that_vendor_only(receiver, warehouse, wavy_server, wavy_hook, itd_server, itd_hook, drop_dir):
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-w-1", "wavy", phone=CL, vendor_id="w-1")
    post(receiver.hook_url("wavy", "callback"), {"id": "w-1", "correlationId": "m-w-1", "sentStatusCode": 204, "sentStatus": "DESTINATION_BLOCKED_BY_OPTOUT"})
    ingest(warehouse)
    drop_csv(drop_dir, "wavy_sms", "w.csv", f"phone,message\n{CL},hola\n")
    drop_csv(drop_dir, "itd_whatsapp", "i.csv", f"phone,content_type,content\n{CL},TEXT,hola\n")
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    ingest_drops(ItdAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    dispatch(ItdAdapter(), warehouse, hook=itd_hook)
    [event] = warehouse.rows(schema.message_status_events)
    assert rejects(warehouse) == [f"suppressed: vendor_status (message_status_events {event['id']})"]
    assert sent_to(wavy_server, CL) == 0 and sent_to(itd_server, CL) == 1


def customer_says(server, phone: str, text: str) -> str:
    import requests

    answer = requests.post(f"{server.url}/_sim/inbound", json={"phone": phone, "text": text}, timeout=10)
    answer.raise_for_status()
    return answer.json()["id"]


def test_customers_of_the_simulators_say_baja_and_nothing_more_reaches_them(
    run_dag, receiver, warehouse, teleprom_hook, teleprom_server, itd_server, itd_hook, wavy_server, wavy_hook, drop_dir
):
    """The simulators' own customers (``/_sim/inbound``) reply after a first campaign; the second campaign
    to the same phones reaches only those who did not opt out."""
    load_catalog(warehouse, teleprom_hook)
    configure(teleprom_server, webhook_url=receiver.hook_url("teleprom"), webhook_versions={"39": "V3"})
    configure(itd_server, webhook_url=receiver.hook_url("itd"), reply_rate=0.0)
    configure(wavy_server, webhook_url=receiver.hook_url("wavy"), reply_rate=0.0)
    ar = ["5493516723991", "5493516723992"]
    cl = ["56961234561", "56961234562"]
    br = ["5511987650011", "5511987650012"]

    def campaign(name: str) -> None:
        drop_csv(drop_dir, "teleprom_hsm", f"{name}.csv", "phone,template,account,param_1,param_2\n" + "".join(
            f"{p},payment_reminder,39,Ana,{name}\n" for p in ar))
        drop_csv(drop_dir, "itd_whatsapp", f"{name}.csv", "phone,content_type,content\n" + "".join(f"{p},TEXT,{name}\n" for p in cl))
        drop_csv(drop_dir, "wavy_sms", f"{name}.csv", "phone,message\n" + "".join(f"{p},{name}\n" for p in br))
        for dag_id in ("teleprom_hsm_send", "itd_whatsapp_send", "wavy_sms_send"):
            assert run_dag(dag_id).state == "success"

    campaign("first")
    customer_says(teleprom_server, ar[0], "Baja.")
    customer_says(itd_server, cl[0], "BAJA")
    customer_says(wavy_server, br[0], "baja!")
    customer_says(wavy_server, br[1], "Hola, ¿hasta cuándo vale la promo?")  # not an opt-out
    wait_until(lambda: warehouse.count(schema.raw_webhook_events, schema.raw_webhook_events.c.channel == "mo") >= 2
               and warehouse.count(schema.raw_webhook_events) >= 4, timeout=30, what="the replies at the receiver")
    wait_until(lambda: (ingest(warehouse), warehouse.count(S))[1] == 3, timeout=30, what="three opt-outs")
    campaign("second")

    for server, phones in ((teleprom_server, ar), (itd_server, cl), (wavy_server, br)):
        assert (sent_to(server, phones[0]), sent_to(server, phones[1])) == (1, 2)
    assert sorted(r.split(" (")[0] for r in rejects(warehouse)) == ["suppressed: keyword"] * 3


def test_a_vendor_that_reports_an_opt_out_gets_no_second_message(run_dag, receiver, warehouse, teleprom_hook, teleprom_server, wavy_server, wavy_hook, drop_dir):
    """Wavy answers 204 and Meta 131050 (through Teleprom V3) for a phone opted out at the vendor: the
    status suppresses it for that vendor, and the next drop skips it."""
    load_catalog(warehouse, teleprom_hook)
    configure(teleprom_server, webhook_url=receiver.hook_url("teleprom"), webhook_versions={"39": "V3"}, opted_out=[AR])
    configure(wavy_server, webhook_url=receiver.hook_url("wavy"), reply_rate=0.0, opted_out=[BR])
    for name in ("first", "second"):
        drop_csv(drop_dir, "teleprom_hsm", f"{name}.csv", f"phone,template,account,param_1,param_2\n{AR},payment_reminder,39,Ana,{name}\n")
        drop_csv(drop_dir, "wavy_sms", f"{name}.csv", f"phone,message\n{BR},{name}\n")
        assert run_dag("teleprom_hsm_send").state == "success" and run_dag("wavy_sms_send").state == "success"
        if name == "first":
            wait_until(lambda: (ingest(warehouse), warehouse.count(S))[1] == 2, timeout=30, what="two vendor opt-outs")
    got = {r["scope"]: (r["source"], r["reason"]) for r in warehouse.rows(S)}
    assert got == {
        "wavy": ("vendor_status", "wavy: DESTINATION_BLOCKED_BY_OPTOUT"),
        "teleprom": ("vendor_status", "teleprom: 131050: Unable to deliver the message. This recipient has chosen to stop "
                     "receiving marketing messages on WhatsApp from your business."),
    }
    assert sent_to(teleprom_server, AR) == 1 and sent_to(wavy_server, BR) == 1
    assert [r.split(" (")[0] for r in rejects(warehouse)] == ["suppressed: vendor_status"] * 2
