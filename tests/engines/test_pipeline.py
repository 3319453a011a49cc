"""The send DAGs and pipeline against the simulators, on both warehouses: every row accounted for.
No message ever sent twice: ``tests/promises/test_never_twice.py``."""

from __future__ import annotations

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.sending.pipeline import dispatch, ingest_drops
from latam_messaging.teleprom.send import TelepromAdapter
from latam_messaging.warehouse import schema
from tests.helpers.drops import drop_csv
from tests.helpers.ledger import states
from tests.helpers.sending import hsm_rows, load_catalog
from tests.helpers.simulators import configure, sim_state
from tests.helpers.waiting import wait_until

T = schema.outbound_messages


MESSY_TELEPROM = (
    "Teléfono;Plantilla;Cuenta;Parámetro 1;Parámetro 2\n"
    "+54 9 351 672-3999;payment_reminder;39;José;$ 1.000\n"  # 1 ok
    "0351 15 672-3998;26;;Ana;$ 20\n"  # 2 ok (national format, template by id)
    "351 555;payment_reminder;39;Ana;$ 1\n"  # 3 bad phone
    "5493516723997;promo_black_friday;41;x;\n"  # 4 template not Accepted
    "5493516723996;payment_reminder;39;Ana;\n"  # 5 too few params
    "5493516723995;payment_reminder;39;Ana;$ 3;extra\n"  # 6 too many fields
    "+54 9 351 672-3999;payment_reminder;39;José;$ 1.000\n"  # 7 duplicate of 1
    "5493516723994;shipping_confirmation;41;2;\n"  # 8 wrong account
)


def test_a_messy_drop_lands_exactly_and_a_redrop_sends_nothing(
    run_dag, warehouse, teleprom_hook, teleprom_server, drop_dir
):
    load_catalog(warehouse, teleprom_hook)
    drop_csv(drop_dir, "teleprom_hsm", "campaña.csv", MESSY_TELEPROM, encoding="cp1252")
    assert run_dag("teleprom_hsm_send").state == "success"

    [file] = warehouse.rows(schema.drop_files)
    assert (file["state"], file["rows_total"], file["rows_valid"], file["rows_rejected"]) == ("loaded", 8, 2, 6)
    assert len(list((drop_dir / "teleprom_hsm" / "archive").glob("*campaña.csv"))) == 1
    rejects = {r["row_number"]: r["reason"] for r in warehouse.rows(schema.drop_rejects)}
    assert sorted(rejects) == [3, 4, 5, 6, 7, 8]
    assert "not a valid number" in rejects[3] and "Rejected, not Accepted" in rejects[4]
    assert "takes 2 parameter(s), the row has 1" in rejects[5] and "6 fields but the header has 5" in rejects[6]
    assert rejects[7] == "duplicate of row 1 (same phone and content)" and "belongs to account 39, not 41" in rejects[8]
    sent = warehouse.rows(sa.select(T).order_by(T.c.row_number))
    assert [(r["row_number"], r["phone"], r["state"], r["params"]) for r in sent] == [
        (1, "5493516723999", "accepted", ["José", "$ 1.000"]),
        (2, "5493516723998", "accepted", ["Ana", "$ 20"]),
    ]
    state = sim_state(teleprom_server)
    assert {m["tracking"]: m["id"] for m in state["messages"]} == {
        r["message_key"]: r["vendor_message_id"] for r in sent
    }

    drop_csv(drop_dir, "teleprom_hsm", "campaña (copia).csv", MESSY_TELEPROM, encoding="cp1252")
    assert run_dag("teleprom_hsm_send").state == "success"
    assert sim_state(teleprom_server)["accepted_messages"] == 2
    assert warehouse.count(schema.drop_files) == 1 and warehouse.count(T) == 2


def test_unreadable_file_goes_to_failed_with_the_reason(run_dag, warehouse, wavy_hook, drop_dir):
    drop_csv(drop_dir, "wavy_sms", "sin_columnas.csv", "nombre,apellido\nAna,Pérez\n")
    assert run_dag("wavy_sms_send").state == "success"
    [file] = warehouse.rows(schema.drop_files)
    assert file["state"] == "failed" and "required column(s) missing: message, phone" in file["error"]
    assert len(list((drop_dir / "wavy_sms" / "failed").iterdir())) == 1


def test_scheduled_rows_and_send_window(run_dag, warehouse, wavy_hook, wavy_server, drop_dir, monkeypatch):
    # due 20 s from now: two DAG runs fit before it even on a loaded 2-core machine (8 s did not, once)
    later = pendulum.now("America/Argentina/Buenos_Aires").add(seconds=20).replace(microsecond=0)
    naive = later.format("YYYY-MM-DDTHH:mm:ss")  # naive local time: MESSAGING_TIMEZONE
    drop_csv(drop_dir, "wavy_sms", "a.csv", f"phone,message,send_at\n5511987654321,now,\n5511987654322,later,{naive}\n")
    now_local = pendulum.now("America/Argentina/Buenos_Aires")
    closed = f"{now_local.add(hours=2):%H:00}-{now_local.add(hours=3):%H:00}"
    assert run_dag("wavy_sms_send", run_conf={"send_window": closed}).state == "success"
    assert states(warehouse, "wavy") == {"scheduled": 2}  # outside the window nothing goes out
    assert run_dag("wavy_sms_send").state == "success"
    assert pendulum.now("UTC") < later, "the first two runs took over 20 s: the row was due during them"
    assert states(warehouse, "wavy") == {"accepted": 1, "scheduled": 1}
    # until the row's send_at has passed (a deadline wait, not a guess)
    wait_until(lambda: pendulum.now("UTC") > later, timeout=40, what="the scheduled row's send_at to pass")
    assert run_dag("wavy_sms_send").state == "success"
    assert states(warehouse, "wavy") == {"accepted": 2}
    assert sim_state(wavy_server)["accepted_messages"] == 2


def test_itd_no_credits_stops_sending_and_the_next_run_resumes(run_dag, warehouse, itd_hook, itd_server, drop_dir):
    configure(itd_server, credits=3)
    rows = "".join(f"+56 9 6{i:03d} 4567,TEXT,hola {i}\n" for i in range(6))
    drop_csv(drop_dir, "itd_whatsapp", "a.csv", "phone,content_type,content\n" + rows)
    assert run_dag("itd_whatsapp_send", run_conf={"concurrency": 1}).state == "failed"
    assert states(warehouse, "itd") == {"accepted": 3, "pending": 3}
    configure(itd_server, credits=100)
    assert run_dag("itd_whatsapp_send").state == "success"
    assert states(warehouse, "itd") == {"accepted": 6}
    assert sim_state(itd_server)["accepted_messages"] == 6
    keys = {r["vendor_message_id"] for r in warehouse.rows(T)}
    assert keys == {m["id"] for m in sim_state(itd_server)["messages"]}


def test_an_expired_token_mid_batch_is_renewed_once(warehouse, teleprom_hook, teleprom_server, drop_dir):
    load_catalog(warehouse, teleprom_hook)
    drop_csv(drop_dir, "teleprom_hsm", "t.csv", hsm_rows(1000))
    ingest_drops(TelepromAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")
    logins = sim_state(teleprom_server)["logins"]
    configure(teleprom_server, expire_tokens=True)
    dispatch(TelepromAdapter(), warehouse, hook=teleprom_hook, concurrency=4)
    assert sim_state(teleprom_server)["logins"] == logins + 1
    assert states(warehouse, "teleprom") == {"accepted": 1000}


def test_release_unknown_fails_when_no_key_matched(run_dag, warehouse, wavy_hook, drop_dir):
    from tests.helpers.ledger import add_ledger_row

    add_ledger_row(warehouse, "m-00000000000000aa-1", "wavy", state="accepted", vendor_id="x")
    run = run_dag("wavy_sms_send", run_conf={"release_unknown": ["m-00000000000000aa-1"]})
    assert run.state == "failed"
    assert states(warehouse, "wavy") == {"accepted": 1}


# ---- a chunk is stored while the next is checked (drops/process.py, common/write_behind.py) ---------------
def _wavy_drop_in_chunks_of_two(drop_dir, monkeypatch, name: str, rows: int) -> None:
    import functools

    from latam_messaging.drops import csvfile, process

    monkeypatch.setattr(process, "read_rows", functools.partial(csvfile.read_rows, chunk_rows=2))
    lines = "".join(f"55119876543{i:02d},hola {i}\n" for i in range(rows))
    drop_csv(drop_dir, "wavy_sms", name, "phone,message\n" + lines)


def test_a_chunk_is_stored_while_the_next_is_checked(warehouse, drop_dir, monkeypatch):
    import threading

    from latam_messaging.drops import process
    from latam_messaging.sending.ledger import Ledger
    from latam_messaging.wavy.send import WavyAdapter

    _wavy_drop_in_chunks_of_two(drop_dir, monkeypatch, "a.csv", 6)
    checked, second_checked, overlapped = [], threading.Event(), []
    real_check, real_stage = process.check_rows, Ledger.stage

    def check(validator, chunk):
        checked.append(len(chunk))
        if len(checked) == 2:
            second_checked.set()
        return real_check(validator, chunk)

    def stage(self, conn, rows):
        if not overlapped:  # the first chunk's store waits until the second chunk has been checked
            overlapped.append(second_checked.wait(5))
        return real_stage(self, conn, rows)

    monkeypatch.setattr(process, "check_rows", check)
    monkeypatch.setattr(Ledger, "stage", stage)
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert overlapped == [True], "the second chunk was not checked while the first was stored"
    assert (stats.files, stats.rows_valid) == (1, 6) and states(warehouse, "wavy") == {"pending": 6}


def test_a_chunk_the_database_refuses_fails_its_file_whole_and_the_next_file_loads(warehouse, drop_dir, monkeypatch):
    from latam_messaging.sending.ledger import Ledger
    from latam_messaging.wavy.send import WavyAdapter

    _wavy_drop_in_chunks_of_two(drop_dir, monkeypatch, "a.csv", 6)
    real_stage, stored = Ledger.stage, []

    def stage(self, conn, rows):
        stored.append(rows[0]["file_sha256"])
        if len(stored) == 2:  # the second chunk of the first file
            raise sa.exc.DataError("INSERT", {}, ValueError("refused by the database"))
        return real_stage(self, conn, rows)

    monkeypatch.setattr(Ledger, "stage", stage)
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (stats.files, stats.failed) == (0, 1)
    assert len(stored) == 2  # the third chunk, checked meanwhile, is never stored
    assert warehouse.count(T) == 0  # nothing of the failed file stays, not even its first chunk
    [file] = warehouse.rows(schema.drop_files)
    # the error names the refused chunk's rows (3-4), not those of the chunk checked meanwhile (5-6)
    assert (file["state"], file["error"]) == ("failed", "DataError while loading the rows after row 4")

    _wavy_drop_in_chunks_of_two(drop_dir, monkeypatch, "b.csv", 3)
    monkeypatch.setattr(Ledger, "stage", real_stage)
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (stats.files, stats.rows_valid) == (1, 3) and states(warehouse, "wavy") == {"pending": 3}


def test_the_last_chunk_refused_fails_its_file_whole(warehouse, drop_dir, monkeypatch):
    """The last chunk's failure comes out when the writer is closed, after every row was read: the
    file must still fail whole, never be promoted without it."""
    from latam_messaging.sending.ledger import Ledger
    from latam_messaging.wavy.send import WavyAdapter

    _wavy_drop_in_chunks_of_two(drop_dir, monkeypatch, "a.csv", 5)
    real_stage, stored = Ledger.stage, []

    def stage(self, conn, rows):
        stored.append(len(rows))
        if len(stored) == 3:  # the last chunk: row 5 alone
            raise sa.exc.DataError("INSERT", {}, ValueError("refused by the database"))
        return real_stage(self, conn, rows)

    monkeypatch.setattr(Ledger, "stage", stage)
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (stats.files, stats.failed, stored) == (0, 1, [2, 2, 1])
    assert warehouse.count(T) == 0
    [file] = warehouse.rows(schema.drop_files)
    assert (file["state"], file["error"]) == ("failed", "DataError while loading the rows after row 5")


def test_a_store_failing_while_the_next_chunk_fails_too_reports_the_store(warehouse, drop_dir, monkeypatch):
    """Both fail: the store's failure came first (a serial loop would have stopped there). A warehouse
    outage in the store stops the run — the file is taken up again later — instead of failing the file."""
    import threading

    from latam_messaging.drops import process
    from latam_messaging.sending.ledger import Ledger
    from latam_messaging.wavy.send import WavyAdapter

    _wavy_drop_in_chunks_of_two(drop_dir, monkeypatch, "a.csv", 6)
    second_failed = threading.Event()
    real_check, real_stage = process.check_rows, Ledger.stage
    checks = []

    def check(validator, chunk):
        checks.append(len(chunk))
        if len(checks) == 2:
            second_failed.set()
            raise RuntimeError("a validator bug")
        return real_check(validator, chunk)

    def stage(self, conn, rows):
        second_failed.wait(5)
        raise sa.exc.OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(process, "check_rows", check)
    monkeypatch.setattr(Ledger, "stage", stage)
    with pytest.raises(sa.exc.OperationalError):
        ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    monkeypatch.setattr(Ledger, "stage", real_stage)
    assert warehouse.count(T) == 0
    assert [f["state"] for f in warehouse.rows(schema.drop_files)] == ["claimed"]  # not failed: taken up later


def _files_in(drop_dir, outcome: str) -> list[str]:
    return sorted(p.name.split("-", 2)[2] for p in (drop_dir / "wavy_sms" / outcome).iterdir())


def test_an_outage_while_a_failed_file_is_recorded_leaves_it_claimed_and_a_later_run_fails_it(
    warehouse, drop_dir, monkeypatch
):
    """The record is written before the file moves: an outage at that moment stops the run with the file
    still claimed (never in ``failed/`` under a record that says ``claimed``), and a later run ends it."""
    from latam_messaging.drops.registry import DropRegistry
    from latam_messaging.wavy.send import WavyAdapter

    drop_csv(drop_dir, "wavy_sms", "broken.csv", "nombre,apellido\nAna,Paz\n")  # no phone column: fails whole
    real_finish, calls = DropRegistry.finish_file, []

    def finish_file(self, conn, sha256, **kwargs):
        calls.append(kwargs["state"])
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE", {}, ConnectionError("server closed the connection"))
        return real_finish(self, conn, sha256, **kwargs)

    monkeypatch.setattr(DropRegistry, "finish_file", finish_file)
    with pytest.raises(sa.exc.OperationalError):
        ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    [record] = warehouse.rows(schema.drop_files)
    assert record["state"] == "claimed" and _files_in(drop_dir, "failed") == []
    assert [p.name for p in (drop_dir / "wavy_sms" / ".claimed").rglob("*.csv")] == ["broken.csv"]

    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")  # the dead run's lease is gone
    assert (stats.files, stats.failed) == (0, 1) and calls == ["failed", "failed"]
    [record] = warehouse.rows(schema.drop_files)
    assert record["state"] == "failed" and "phone" in record["error"]
    assert _files_in(drop_dir, "failed") == ["broken.csv"] and record["path"].startswith(str(drop_dir / "wavy_sms" / "failed"))


@pytest.mark.parametrize("content, outcome", [("phone,message\n5511987654300,hola\n", "archive"),
                                              ("nombre,apellido\nAna,Paz\n", "failed")])
def test_a_run_stopped_between_a_files_record_and_its_move_is_finished_by_the_next_run(
    warehouse, drop_dir, monkeypatch, content, outcome
):
    """A kill after the record's transaction, before the rename: the next run moves the file where its
    record says, points the record at it, and neither loads it again nor calls it a duplicate."""
    from latam_messaging.drops.folder import DropFolder
    from latam_messaging.wavy.send import WavyAdapter

    drop_csv(drop_dir, "wavy_sms", "a.csv", content)
    real_move = DropFolder.finish

    def killed(self, claimed, where):
        raise KeyboardInterrupt  # the process stops here

    monkeypatch.setattr(DropFolder, "finish", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    [record] = warehouse.rows(schema.drop_files)
    assert record["state"] == ("loaded" if outcome == "archive" else "failed") and "/.claimed/" in record["path"]

    monkeypatch.setattr(DropFolder, "finish", real_move)
    [dead] = [p for p in (drop_dir / "wavy_sms" / ".claimed").iterdir() if p.is_dir()]
    (dead.parent / f"{dead.name}.lease").touch()  # the dead run's lease still fresh: its file is not taken yet
    drop_csv(drop_dir, "wavy_sms", "a.csv", content)  # meanwhile someone drops the same content again
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    assert (stats.files, stats.duplicates, stats.failed, stats.rows_valid) == (0, 1, 0, 0)  # the copy: a duplicate
    assert _files_in(drop_dir, "archive") == ["a.csv"] and _files_in(drop_dir, "failed") == []
    assert warehouse.rows(schema.drop_files)[0]["path"] == record["path"]  # the record still waits for its file

    (dead.parent / f"{dead.name}.lease").unlink()  # the lease runs out: the dead run's file is taken over
    stats = ingest_drops(WavyAdapter(), warehouse, drop_dir, region="BR", timezone="UTC")
    loaded = outcome == "archive"
    assert (stats.files, stats.duplicates, stats.failed, stats.rows_valid) == (int(loaded), 0, int(not loaded), 0)
    assert _files_in(drop_dir, outcome) == ["a.csv"] * (2 if loaded else 1)
    assert _files_in(drop_dir, "failed" if loaded else "archive") == ([] if loaded else ["a.csv"])
    [after] = warehouse.rows(schema.drop_files)
    assert after["state"] == record["state"] and after["path"].startswith(str(drop_dir / "wavy_sms" / outcome))
    assert warehouse.count(T) == (1 if outcome == "archive" else 0)
    assert list((drop_dir / "wavy_sms" / ".claimed").rglob("*.csv")) == []
