"""number_checks against the Teleprom simulator, on both warehouses; the risky hold in the send pipeline."""

from __future__ import annotations

import sqlalchemy as sa

from latam_messaging.sending.pipeline import ingest_drops, risky_numbers
from latam_messaging.teleprom.number_checks import CheckStats, run_checks
from latam_messaging.warehouse import schema
from latam_messaging.wavy.send import WavyAdapter
from tests.helpers.drops import drop_csv
from tests.helpers.simulators import configure, sim_state

PHONES = [f"+54 9 351 6{i:02d}-1234" for i in range(20)]


def e164(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def test_checks_from_a_drop_with_recheck_window(run_dag, warehouse, teleprom_hook, teleprom_server, drop_dir):
    rows = (
        "".join(f"{p},8760\n" for p in PHONES)
        + "011 4321-5678,\n123,\n"
        + f"{PHONES[0]},8760\n"
        + "+54 9 351 699-1234,abc\n"
    )
    drop_csv(drop_dir, "number_checks", "semana.csv", "telefono,horas_maximas\n" + rows)
    assert run_dag("number_checks").state == "success"
    rejects = {r["row_number"]: r["reason"] for r in warehouse.rows(schema.drop_rejects)}
    assert sorted(rejects) == [22, 23, 24]
    assert "not a valid number" in rejects[22] and "duplicate of row 1" in rejects[23] and "whole number" in rejects[24]
    lookups = {r["phone"]: r for r in warehouse.rows(schema.number_lookups)}
    swaps = {r["phone"]: r for r in warehouse.rows(schema.sim_swap_checks)}
    expected = {e164(p) for p in PHONES} | {"541143215678"}
    assert set(lookups) == set(swaps) == expected
    assert (
        lookups["541143215678"]["line_type"] == "landline" and lookups["541143215678"]["raw"]["lineType"] == "landline"
    )
    sim = teleprom_server.simulator
    for phone in (e164(p) for p in PHONES):
        assert swaps[phone]["changed"] == (sim.fraction("simswap", phone) < 0.3)
        assert swaps[phone]["max_age_hours"] == 8760
    assert swaps["541143215678"]["max_age_hours"] == 240  # the DAG param's default
    assert warehouse.count(schema.number_check_queue) == 0

    served = sim_state(teleprom_server)["requests_served"]
    drop_csv(drop_dir, "number_checks", "otra.csv", "phone\n" + PHONES[0] + "\n")
    assert run_dag("number_checks").state == "success"
    assert sim_state(teleprom_server)["requests_served"] == served  # checked within the recheck window: free
    assert (
        run_dag("number_checks", run_conf={"recheck_hours": 0, "phones_query": "SELECT '5493516001234' AS phone"}).state
        == "success"
    )
    assert warehouse.count(schema.sim_swap_checks, schema.sim_swap_checks.c.phone == "5493516001234") == 2


def test_a_number_checks_file_that_fails_queues_none_of_its_phones(warehouse, drop_dir, monkeypatch):
    """All or nothing, as the send drops: each check costs money, so a file refused half-way must not
    leave its first chunks' phones queued; a file that loads queues every phone, once."""
    import functools

    import pendulum

    from latam_messaging.drops import csvfile, process
    from latam_messaging.teleprom import number_checks

    monkeypatch.setattr(process, "read_rows", functools.partial(csvfile.read_rows, chunk_rows=4))
    with warehouse.begin() as conn:  # queued earlier by a query, with its own window
        conn.execute(
            schema.number_check_queue.insert(),
            [{"phone": e164(PHONES[0]), "max_age_hours": 1, "source": "query", "queued_at": pendulum.now("UTC")}],
        )
    drop_csv(drop_dir, "number_checks", "a.csv", "phone,max_age_hours\n" + "".join(f"{p},48\n" for p in PHONES))
    real_insert, chunks = warehouse.bulk_insert_new, []

    def insert(conn, table, rows, *, keys):
        if table is schema.number_check_staging:
            chunks.append(len(rows))
            if len(chunks) == 3:
                raise sa.exc.DataError("INSERT", {}, ValueError("refused by the database"))
        return real_insert(conn, table, rows, keys=keys)

    monkeypatch.setattr(warehouse, "bulk_insert_new", insert)
    stats = CheckStats()
    number_checks.queue_from_drops(warehouse, drop_dir, region="AR", default_max_age_hours=240, stats=stats)
    assert chunks == [4, 4, 4] and stats.queued == 0
    assert [(q["phone"], q["max_age_hours"]) for q in warehouse.rows(schema.number_check_queue)] == [(e164(PHONES[0]), 1)]
    assert warehouse.count(schema.number_check_staging) == 0
    assert [f["state"] for f in warehouse.rows(schema.drop_files)] == ["failed"]

    monkeypatch.setattr(warehouse, "bulk_insert_new", real_insert)
    lines = "".join(f"{p},\n" for p in PHONES[:6]) + f"{PHONES[0]},\n{PHONES[2]},12\n"  # row 7 a duplicate
    drop_csv(drop_dir, "number_checks", "b.csv", "phone,max_age_hours\n" + lines)
    number_checks.queue_from_drops(warehouse, drop_dir, region="AR", default_max_age_hours=240, stats=stats)
    queue = {q["phone"]: q for q in warehouse.rows(schema.number_check_queue)}
    assert stats.queued == 7 and set(queue) == {e164(p) for p in PHONES[:6]}
    # the queued phone takes the file's window; a phone listed twice, its last row's
    assert {p: q["max_age_hours"] for p, q in queue.items() if q["max_age_hours"] != 240} == {e164(PHONES[2]): 12}
    assert queue[e164(PHONES[0])]["source"] == "query" and queue[e164(PHONES[1])]["source"].startswith("drop:")
    assert warehouse.count(schema.number_check_staging) == 0


def test_an_error_for_one_phone_never_stops_the_batch(warehouse, teleprom_hook, teleprom_server):
    now = __import__("pendulum").now("UTC")
    with warehouse.begin() as conn:
        conn.execute(
            schema.number_check_queue.insert(),
            [{"phone": e164(p), "max_age_hours": 240, "source": "test", "queued_at": now} for p in PHONES],
        )
    teleprom_hook.get_accounts()
    teleprom_hook.max_retries = 0
    configure(teleprom_server, error_rate=0.4)
    stats = run_checks(warehouse, teleprom_hook, requests_per_s=0, stats=CheckStats())
    assert stats.checked == len(PHONES) and 0 < stats.errors
    swaps = warehouse.rows(schema.sim_swap_checks)
    assert len(swaps) == len(PHONES)
    failed = [s for s in swaps if s["error"]]
    assert failed and all(s["changed"] is None and "HTTP 5" in s["error"] for s in failed)


def test_risky_numbers_are_held_only_where_the_folder_opted_in(
    run_dag, warehouse, teleprom_hook, wavy_hook, drop_dir, monkeypatch
):
    drop_csv(drop_dir, "number_checks", "a.csv", "phone\n011 4321-5678\n+54 9 351 600-1234\n")
    assert run_dag("number_checks").state == "success"
    # the mobile number's checks are the simulator's draw: a newer, clean check of our own decides it
    later = __import__("pendulum").now("UTC").add(seconds=1)
    with warehouse.begin() as conn:
        conn.execute(schema.number_lookups.insert().values(phone="5493516001234", checked_at=later, valid=True,
                                                           line_type="mobile"))
        conn.execute(schema.sim_swap_checks.insert().values(phone="5493516001234", checked_at=later,
                                                            max_age_hours=240, changed=False))
    assert risky_numbers(warehouse) == {"541143215678": "landline"}
    body = "phone,message\n011 4321-5678,hola\n+54 9 351 600-1234,hola\n"
    drop_csv(drop_dir, "wavy_sms", "not_opted.csv", body)
    assert ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC").rows_rejected == 0
    monkeypatch.setenv("MESSAGING_HOLD_RISKY_FOLDERS", "teleprom_hsm, wavy_sms")
    drop_csv(drop_dir, "wavy_sms", "opted.csv", body.replace("hola", "chau"))
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    assert (stats.rows_valid, stats.rows_rejected) == (1, 1)
    held = warehouse.rows(sa.select(schema.drop_rejects))
    assert [(r["row_number"], r["reason"]) for r in held] == [(1, "held: number_checks flagged this number (landline)")]
