"""Campaigns as the unit (issue 24): a dropped file is a campaign; cancel, release and mark-sent are one
transaction each with their audit line; a campaign cancelled before its file loads never sends a row.
Real simulators, both databases."""

from __future__ import annotations

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.campaigns import records
from latam_messaging.campaigns.records import Batch, CampaignError, CampaignState, ReleaseOutcome, Source
from latam_messaging.drops.folder import fingerprint
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.simulators import sim_state

T, C, A = schema.outbound_messages, schema.campaign_files, schema.audit_log


def wavy_file(n: int, campaign: str | None = None, start: int = 0) -> str:
    header = "phone,message" + (",campaign" if campaign else "")
    extra = f",{campaign}" if campaign else ""
    return header + "\n" + "".join(f"55119876{start + i:05d},hola {i}{extra}\n" for i in range(n))


def campaign_of(warehouse) -> dict:
    rows = warehouse.rows(sa.select(C))
    assert len(rows) == 1, rows
    return rows[0]


def audit_lines(warehouse) -> list[tuple]:
    return [
        (r["user_name"], r["action"], r["campaign_id"], r["rows_affected"])
        for r in warehouse.rows(sa.select(A).order_by(A.c.id))
    ]


def test_a_dropped_file_is_a_campaign_named_by_its_column(warehouse, drop_dir):
    path = drop_csv(drop_dir, "wavy_sms", "martes.csv", wavy_file(3, campaign="Recordatorio martes"))
    sha = fingerprint(path).sha256
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert stats.rows_valid == 3
    campaign = campaign_of(warehouse)
    assert campaign["campaign_id"] == sha[:16] and campaign["file_sha256"] == sha
    assert campaign["name"] == "Recordatorio martes" and campaign["source"] == Source.DROP
    assert campaign["state"] == CampaignState.LOADED and campaign["created_by"].startswith("file owner")
    assert campaign["vendor"] == "wavy" and campaign["folder"] == "wavy_sms" and campaign["file_name"] == "martes.csv"


def test_without_a_campaign_column_the_file_name_names_it(warehouse, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "promo-octubre.csv", wavy_file(2))
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert campaign_of(warehouse)["name"] == "promo-octubre"


def test_a_failed_file_is_a_failed_campaign(warehouse, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "good.csv", wavy_file(1))
    drop_csv(drop_dir, "wavy_sms", "broken.csv", "no_phone_here,message\n5511987650001,hola\n")
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    by_name = {r["file_name"]: r["state"] for r in warehouse.rows(sa.select(C))}
    assert by_name == {"good.csv": CampaignState.LOADED, "broken.csv": CampaignState.FAILED}


def test_cancel_moves_only_waiting_rows_and_is_audited(warehouse, drop_dir, wavy_server, wavy_hook):
    drop_csv(drop_dir, "wavy_sms", "c.csv", wavy_file(5))
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    campaign_id = campaign_of(warehouse)["campaign_id"]
    keys = sorted(r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key)))
    with warehouse.begin() as conn:  # two rows already answered, one later (scheduled), two pending
        conn.execute(T.update().where(T.c.message_key.in_(keys[:2])).values(state="accepted"))
        conn.execute(T.update().where(T.c.message_key == keys[2]).values(state="scheduled"))

    assert records.cancel(warehouse, campaign_id, "ana") == 3
    assert states(warehouse, "wavy") == {"accepted": 2, "cancelled": 3}
    assert records.cancel(warehouse, campaign_id, "ana") == 0  # a second click changes nothing
    campaign = campaign_of(warehouse)
    assert campaign["state"] == CampaignState.CANCELLED and campaign["cancelled_by"] == "ana"
    assert audit_lines(warehouse) == [("ana", "cancel", campaign_id, 3), ("ana", "cancel", campaign_id, 0)]

    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 0  # the claim never takes a cancelled row


def test_a_campaign_cancelled_before_its_file_loads_sends_nothing(warehouse, drop_dir, wavy_server, wavy_hook):
    """Confirmed on the page (the file waits in its folder), cancelled before the send DAG read it."""
    path = drop_csv(drop_dir, "wavy_sms", "wait.csv", wavy_file(4))
    sha = fingerprint(path).sha256
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        records.register(
            conn, warehouse, sha256=sha, name="espera", vendor="wavy", folder="wavy_sms", source=Source.UPLOAD,
            file_name="wait.csv", created_by="ana", now=now, state=CampaignState.CONFIRMED,
        )
    assert records.cancel(warehouse, sha[:16], "beto") == 0
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert states(warehouse, "wavy") == {"cancelled": 4}
    assert sim_state(wavy_server)["accepted_messages"] == 0
    assert campaign_of(warehouse)["state"] == CampaignState.CANCELLED


def _unknown_rows(warehouse, keys: list[str], owner: str, started: pendulum.DateTime) -> None:
    with warehouse.begin() as conn:
        conn.execute(
            T.update().where(T.c.message_key.in_(keys)).values(state="unknown", claimed_by=owner, request_started_at=started)
        )


def test_release_and_mark_sent_by_campaign_and_by_batch(warehouse, drop_dir, wavy_server, wavy_hook):
    drop_csv(drop_dir, "wavy_sms", "u.csv", wavy_file(6))
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    campaign_id = campaign_of(warehouse)["campaign_id"]
    keys = sorted(r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key)))
    first, second = pendulum.datetime(2026, 11, 2, 10, 0, 0, 123456), pendulum.datetime(2026, 11, 2, 10, 0, 1)
    _unknown_rows(warehouse, keys[:2], "run-a", first)
    _unknown_rows(warehouse, keys[2:5], "run-a", second)

    with warehouse.engine.connect() as conn:
        batches = records.unknown_batches(conn, campaign_id)
    assert [b["rows"] for b in batches] == [2, 3]
    assert batches[0]["batch"] == Batch("run-a", first).batch_id

    assert records.release_unknown(warehouse, campaign_id, "ana", ReleaseOutcome.SENT, batch=batches[0]["batch"]) == 2
    assert records.release_unknown(warehouse, campaign_id, "ana", ReleaseOutcome.NOT_SENT) == 3
    assert records.release_unknown(warehouse, campaign_id, "ana", ReleaseOutcome.NOT_SENT) == 0
    assert states(warehouse, "wavy") == {"accepted": 2, "pending": 4}
    marked = warehouse.rows(sa.select(T).where(T.c.message_key.in_(keys[:2])))
    assert {r["error"] for r in marked} == {"marked sent by ana (the vendor confirmed it)"}
    assert all(r["accepted_at"] is not None for r in marked)
    assert [a[1:] for a in audit_lines(warehouse)] == [
        ("mark_sent", campaign_id, 2), ("release_unknown", campaign_id, 3), ("release_unknown", campaign_id, 0)
    ]
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)  # the released rows go out once, the marked ones never
    assert sim_state(wavy_server)["accepted_messages"] == 4


@pytest.mark.parametrize("batch", ["nonsense", "@2026-01-01T00:00:00+00:00", "run-a@2026-01-01T00:00:00", "run@x"])
def test_a_batch_id_that_is_not_one_is_refused(warehouse, drop_dir, batch):
    drop_csv(drop_dir, "wavy_sms", "b.csv", wavy_file(1))
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    with pytest.raises(CampaignError):
        records.release_unknown(warehouse, campaign_of(warehouse)["campaign_id"], "ana", "not_sent", batch=batch)
    assert audit_lines(warehouse) == []


def test_decisions_on_an_unknown_campaign_are_refused(warehouse):
    with pytest.raises(records.CampaignNotFound):
        records.cancel(warehouse, "0" * 16, "ana")
    with pytest.raises(records.CampaignNotFound):
        records.release_unknown(warehouse, "0" * 16, "ana", "sent")
    assert audit_lines(warehouse) == []


def test_campaign_names_are_one_clean_line():
    assert records.clean_name("  Promo\n\tde\x00 <b>octubre</b>  ") == "Promo de <b>octubre</b>"
    assert len(records.clean_name("x" * 500)) == records.MAX_NAME


def test_the_cancelled_state_is_final():
    from latam_messaging.lifecycle import MOVES, ForbiddenMove, check_move

    assert MOVES[MessageState.CANCELLED] == frozenset()
    with pytest.raises(ForbiddenMove):
        check_move((MessageState.SENDING,), MessageState.CANCELLED)  # a row in flight cannot be taken back
