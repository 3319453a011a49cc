"""The suppressions table (``consent/suppressions.py``) on both databases: one key per subscriber, adds
that renew, ends that never undo newer evidence, and the claim's SQL key equal to the Python one."""

from __future__ import annotations

import pendulum
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latam_messaging.common.phones import consent_key, normalise_any_form
from latam_messaging.consent import suppressions
from latam_messaging.consent.suppressions import Source, Suppression

T0 = pendulum.datetime(2026, 11, 1, 12, tz="UTC")


def add(warehouse, phone, evidence, at, source=Source.KEYWORD, scope="all"):
    with warehouse.begin() as conn:
        return suppressions.add(warehouse, conn, [Suppression(phone, scope, source, evidence, at, "test")], T0)


def blocked(warehouse, phone, scopes=("all", "wavy", "sms")) -> bool:
    with warehouse.engine.connect() as conn:
        return phone in suppressions.screen(conn, [phone], scopes)


def test_the_two_ways_of_writing_one_mobile_are_one_subscriber():
    assert consent_key("5491171186962") == consent_key("541171186962") == "541171186962"  # Argentina 54 9 / 54
    assert consent_key(normalise_any_form("+52 1 55 1234 5678")) == consent_key("525512345678")  # Mexico 52 1 / 52
    assert consent_key(normalise_any_form("551187650001")) == consent_key("5511987650001")  # Brazil's ninth digit
    assert consent_key("56961234567") == "56961234567" and consent_key("5493516723") == "5493516723"


def test_an_opt_out_under_one_form_blocks_the_other_at_ingest_and_at_claim(warehouse):
    from latam_messaging.sending.ledger import Ledger
    from tests.helpers.ledger import add_ledger_row

    add(warehouse, "5491171186962", "reply 1", T0)  # WhatsApp's form
    assert blocked(warehouse, "541171186962")  # a CSV's national form, as normalised
    add_ledger_row(warehouse, "m-a-1", "wavy", phone="541171186962", state="pending")
    add_ledger_row(warehouse, "m-a-2", "wavy", phone="5511987650001", state="pending")
    add(warehouse, "551187650001", "reply 2", T0)  # Brazil without the ninth digit
    claimed = Ledger(warehouse, "wavy", "sms").claim("run", 10)
    assert (list(claimed), claimed.suppressed) == ([], 2)


def test_a_repeated_opt_out_renews_the_entry_so_an_older_opt_in_cannot_end_it(warehouse):
    phone = "5493515238015"
    assert len(add(warehouse, phone, "reply baja 1", T0)) == 1
    assert add(warehouse, phone, "reply baja 2", T0.add(minutes=20)) == []  # one active entry, renewed
    with warehouse.begin() as conn:  # an ALTA sent between the two, read late
        assert suppressions.end(conn, phone, sources=[Source.KEYWORD], at=T0.add(minutes=10), by="t", evidence="alta") == 0
    assert blocked(warehouse, phone)
    with warehouse.begin() as conn:  # an ALTA after both
        assert suppressions.end(conn, phone, sources=[Source.KEYWORD], at=T0.add(minutes=30), by="t", evidence="alta 2") == 1
    assert not blocked(warehouse, phone)


def test_the_same_evidence_twice_is_one_entry_and_history_is_kept(warehouse):
    phone = "5511987650001"
    add(warehouse, phone, "reply 1", T0)
    add(warehouse, phone, "reply 1", T0)
    with warehouse.begin() as conn:
        suppressions.end(conn, phone, sources=[Source.KEYWORD], at=T0.add(hours=1), by="t", evidence="alta")
    add(warehouse, phone, "reply 1", T0)  # replayed after it ended: still ended, not re-opened
    assert not blocked(warehouse, phone)
    assert warehouse.count(suppressions.SUPPRESSIONS) == 1


def test_scopes_block_their_vendor_or_channel_only(warehouse):
    phone = "5511987650001"
    add(warehouse, phone, "status 1", T0, Source.VENDOR_STATUS, scope="wavy")
    add(warehouse, "5511987650002", "file row 1", T0, Source.MANUAL, scope="whatsapp")
    assert blocked(warehouse, phone, ("all", "wavy", "sms")) and not blocked(warehouse, phone, ("all", "itd", "whatsapp"))
    assert blocked(warehouse, "5511987650002", ("all", "itd", "whatsapp"))
    assert blocked(warehouse, "5511987650002", ("all", "teleprom", "whatsapp"))
    assert not blocked(warehouse, "5511987650002", ("all", "wavy", "sms"))


digits = st.text(alphabet="0123456789", min_size=8, max_size=15)
phones = st.one_of(
    digits,
    st.builds(lambda d: "549" + d, st.text(alphabet="0123456789", min_size=9, max_size=11)),
    st.builds(lambda d: "521" + d, st.text(alphabet="0123456789", min_size=9, max_size=11)),
    st.builds(lambda d: "55" + d, st.text(alphabet="0123456789", min_size=9, max_size=11)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(phones, min_size=1, max_size=20))
def test_the_claims_sql_key_is_the_python_key_on_both_databases(warehouse, numbers):
    column = sa.literal_column("p")
    rows = " UNION ALL ".join(f"SELECT '{n}' AS p" for n in numbers)
    query = sa.select(column, suppressions.consent_key_of(column)).select_from(sa.text(f"({rows}) AS t"))
    with warehouse.engine.connect() as conn:
        got = conn.execute(query).all()
    assert [(p, k) for p, k in got] == [(n, consent_key(n)) for n in numbers]
