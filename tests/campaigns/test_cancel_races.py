"""A cancelled campaign stays cancelled: against an ingest promoting its file at the same moment, and
against an operator releasing its in-doubt rows afterwards (review of issue 24)."""

from __future__ import annotations

import threading

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.campaigns import audit, records
from latam_messaging.campaigns.records import CampaignState, ReleaseOutcome
from latam_messaging.lifecycle import MessageState
from latam_messaging.sending.ledger import Ledger, SendOutcome
from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.simulators import sim_state
from tests.helpers.waiting import wait_until

T, C = schema.outbound_messages, schema.campaign_files


def _loaded_campaign(warehouse, drop_dir, rows: int) -> tuple[str, str]:
    body = "phone,message\n" + "".join(f"55119876{i:05d},hola {i}\n" for i in range(rows))
    drop_csv(drop_dir, "wavy_sms", "c.csv", body)
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    campaign = warehouse.rows(sa.select(C))[0]
    return campaign["campaign_id"], campaign["file_sha256"]


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
def test_a_cancel_committing_while_the_file_is_promoted_leaves_no_row_to_send(
    warehouse, drop_dir, wavy_server, wavy_hook, monkeypatch
):
    """The ingest has promoted the file's rows (not committed) when the cancel marks the campaign and finds
    no waiting row; the ingest then closes the file. Its rows must end cancelled, none sent."""
    campaign_id, sha = _loaded_campaign(warehouse, drop_dir, 3)
    with warehouse.begin() as conn:  # as just before the promotion: staged rows, a confirmed campaign
        conn.execute(T.update().values(state="staged"))
        conn.execute(C.update().values(state=CampaignState.CONFIRMED))

    at_audit, go = threading.Event(), threading.Event()
    real_record = audit.record

    def held_record(*args, **kwargs):
        at_audit.set()
        assert go.wait(30)
        return real_record(*args, **kwargs)

    monkeypatch.setattr(audit, "record", held_record)
    now = pendulum.now("UTC")
    ingest = warehouse.engine.connect()
    promoting = ingest.begin()
    Ledger(warehouse, "wavy").promote_file(ingest, sha, now, window_open=True)

    answers: dict[str, object] = {}
    cancel = threading.Thread(target=lambda: answers.update(cancelled=records.cancel(warehouse, campaign_id, "ana")))
    cancel.start()
    assert at_audit.wait(30)  # the campaign row is marked (locked), its rows not yet committed as cancelled

    def close_file() -> None:
        records.file_loaded(ingest, sha, now)
        promoting.commit()
        ingest.close()

    closing = threading.Thread(target=close_file)
    closing.start()
    with warehouse.engine.connect() as probe:
        wait_until(
            lambda: probe.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar(),
            timeout=10,
            what="the ingest waiting for the cancel's lock",
        )
    go.set()
    cancel.join(30)
    closing.join(30)

    assert answers == {"cancelled": 0}
    assert states(warehouse, "wavy") == {"cancelled": 3}
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 0



def test_releasing_the_unknown_rows_of_a_cancelled_campaign_sends_none(warehouse, drop_dir, wavy_server, wavy_hook):
    """Cancelled while two rows were in doubt; the operator then learns the vendor never sent them:
    they are settled as cancelled, not queued again (the cancelled row stays cancelled)."""
    campaign_id, _ = _loaded_campaign(warehouse, drop_dir, 3)
    keys = sorted(r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key)))
    with warehouse.begin() as conn:
        conn.execute(
            T.update()
            .where(T.c.message_key.in_(keys[:2]))
            .values(state="unknown", claimed_by="run-a", request_started_at=pendulum.now("UTC"))
        )
    assert records.cancel(warehouse, campaign_id, "ana") == 1

    assert records.release_unknown(warehouse, campaign_id, "beto", ReleaseOutcome.NOT_SENT) == 2
    assert states(warehouse, "wavy") == {"cancelled": 3}
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 0


def test_rows_claimed_before_the_cancel_and_handed_back_unsent_are_cancelled(
    warehouse, drop_dir, wavy_server, wavy_hook
):
    """A run had claimed the rows when the cancel came; the vendor then refused before sending (no
    credits, a stop): the rows come back unsent. They must not wait for the next run: they are cancelled."""
    campaign_id, _ = _loaded_campaign(warehouse, drop_dir, 3)
    ledger = Ledger(warehouse, "wavy")
    claimed = ledger.claim("run-a", 10)
    assert len(claimed) == 3
    assert records.cancel(warehouse, campaign_id, "ana") == 0  # in flight: the cancel cannot take them

    ledger.record([SendOutcome(r.message_key, MessageState.PENDING) for r in claimed], pendulum.now("UTC"), "run-a")
    assert states(warehouse, "wavy") == {"cancelled": 3}
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 0


def test_the_trigger_forms_key_by_key_release_keeps_a_cancelled_campaigns_rows_unsent(
    warehouse, drop_dir, wavy_server, wavy_hook
):
    campaign_id, _ = _loaded_campaign(warehouse, drop_dir, 2)
    keys = sorted(r["message_key"] for r in warehouse.rows(sa.select(T.c.message_key)))
    with warehouse.begin() as conn:
        conn.execute(T.update().values(state="unknown", claimed_by="run-a", request_started_at=pendulum.now("UTC")))
    records.cancel(warehouse, campaign_id, "ana")
    assert sorted(Ledger(warehouse, "wavy").release_unknown(keys, pendulum.now("UTC"))) == keys
    assert states(warehouse, "wavy") == {"cancelled": 2}
    dispatch(WavyAdapter(), warehouse, hook=wavy_hook)
    assert sim_state(wavy_server)["accepted_messages"] == 0
