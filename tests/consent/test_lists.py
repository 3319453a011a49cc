"""Suppression lists and registry exports from drop folders (``consent/lists.py``), on SQLite and
PostgreSQL: what a file adds and ends, the last row winning, the same content loaded once, registry
exports in the shapes registries export them, poison files and hostile folder names costing only
themselves, concurrent runs, all or nothing, and a listed phone never reaching the simulator."""

from __future__ import annotations

import gzip
import threading

import pendulum
import pytest
import sqlalchemy as sa

from latam_messaging.common.phones import consent_key
from latam_messaging.consent import lists, suppressions
from latam_messaging.consent.suppressions import Source, Suppression
from latam_messaging.vendors import suppression_scopes
from latam_messaging.warehouse import schema
from tests.helpers.drops import drop_csv

S = schema.suppressions
# +54 9 11 5555-1234 …, as consent keys them (the Argentine mobile without its 9: common.phones.consent_key)
A = consent_key("5491155551234")
B = consent_key("5491155551235")
C = consent_key("5491155551236")
D = consent_key("5491155551237")


def load(warehouse, drop_dir) -> lists.ListStats:
    return lists.load_lists(warehouse, drop_dir, scopes=suppression_scopes(), region="AR")


def load_registries(warehouse, drop_dir) -> lists.RegistryLoads:
    return lists.load_registries(warehouse, drop_dir, region="AR")


def active(warehouse) -> set[tuple[str, str, str]]:
    rows = warehouse.rows(sa.select(S.c.phone, S.c.scope, S.c.source).where(S.c.ended_at.is_(None)))
    return {(r["phone"], r["scope"], r["source"]) for r in rows}


def rejects(warehouse) -> dict[int, str]:
    return {r["row_number"]: r["reason"] for r in warehouse.rows(schema.drop_rejects)}


def file_of(warehouse, name: str) -> dict:
    [row] = [r for r in warehouse.rows(schema.drop_files) if r["path"].endswith(name)]
    return row


def registry_drop(drop_dir, registry: str, name: str, data: str | bytes, encoding: str = "utf-8"):
    folder = f"suppressions/registries/{registry}"
    if isinstance(data, bytes):
        target = drop_dir / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{name}.part").write_bytes(data)
        return (target / f"{name}.part").rename(target / name)
    return drop_csv(drop_dir, folder, name, data, encoding=encoding)


def keyword_opt_out(warehouse, phone: str) -> None:
    item = Suppression(phone, suppressions.ALL, Source.KEYWORD, f"inbound_messages x/{phone}", pendulum.now("UTC"), "t")
    with warehouse.begin() as conn:
        assert suppressions.add(warehouse, conn, [item], pendulum.now("UTC"))


# ---- lists in suppressions/ -----------------------------------------------------------------------------
def test_a_list_adds_per_scope_with_defaults_and_rejects_bad_rows_with_reasons(warehouse, drop_dir):
    drop_csv(
        drop_dir,
        "suppressions",
        "bajas.csv",
        "Teléfono;Motivo;Alcance;Acción\n"
        f"+54 9 11 5555-1234;pidió la baja por teléfono;;\n"  # 1 default scope all, default action add
        f"{B};;SMS;add\n"  # 2 a channel, case folded
        f"{C};;wavy;ADD\n"  # 3 a vendor
        f"{D};;fax;\n"  # 4 unknown scope
        "011 5;;;\n"  # 5 not a phone
        f"{D};;;borrar\n"  # 6 unknown action
        ";;;\n",  # 7 empty
    )
    stats = load(warehouse, drop_dir)
    assert (stats.files, stats.rows_valid, stats.rows_rejected, stats.added, stats.already_active) == (1, 3, 4, 3, 0)
    assert active(warehouse) == {(A, "all", "manual"), (B, "sms", "manual"), (C, "wavy", "manual")}
    reasons = rejects(warehouse)
    assert sorted(reasons) == [4, 5, 6, 7]
    assert reasons[4].startswith("scope 'fax' is not all, a vendor or a channel (one of: all, ")
    assert "sms" in reasons[4] and "whatsapp" in reasons[4]
    assert "is not a valid number" in reasons[5]
    assert reasons[6] == "action 'borrar' is not add or remove" and reasons[7] == "row is empty"
    [row] = warehouse.rows(sa.select(S).where(S.c.phone == A))
    sha = file_of(warehouse, "bajas.csv")["file_sha256"]
    assert row["evidence"] == f"drop_files {sha} row 1" and row["reason"] == "pidió la baja por teléfono"
    assert row["created_by"] == "suppression_lists" and row["ended_at"] is None
    assert warehouse.count(schema.suppression_staging) == 0


def test_the_last_row_per_phone_and_scope_wins(warehouse, drop_dir):
    drop_csv(
        drop_dir,
        "suppressions",
        "a.csv",
        "phone,scope,action\n"
        f"{A},all,add\n{A},all,remove\n{A},all,add\n"  # add wins (row 3)
        f"{B},all,add\n{B},all,remove\n"  # remove wins: never added
        f"{C},all,remove\n{C},sms,add\n",  # two scopes, two decisions
    )
    stats = load(warehouse, drop_dir)
    assert (stats.added, stats.ended, stats.rows_rejected) == (2, 0, 0)
    assert active(warehouse) == {(A, "all", "manual"), (C, "sms", "manual")}
    [row] = warehouse.rows(sa.select(S).where(S.c.phone == A))
    assert row["evidence"].endswith(" row 3")
    # the next file: remove wins for A, and an add for C's sms scope that is already active
    drop_csv(drop_dir, "suppressions", "b.csv", f"phone,scope,action\n{A},,add\n{A},,remove\n{C},sms,\n")
    stats = load(warehouse, drop_dir)
    assert (stats.added, stats.ended, stats.already_active) == (0, 1, 1)
    assert active(warehouse) == {(C, "sms", "manual")}
    [ended] = warehouse.rows(sa.select(S).where(S.c.phone == A))
    sha = file_of(warehouse, "b.csv")["file_sha256"]
    assert ended["end_evidence"] == f"drop_files {sha} row 2" and ended["ended_by"] == "suppression_lists"


def test_the_same_content_dropped_again_does_nothing(warehouse, drop_dir):
    text = f"phone\n{A}\n{B}\n"
    drop_csv(drop_dir, "suppressions", "a.csv", text)
    assert load(warehouse, drop_dir).added == 2
    drop_csv(drop_dir, "suppressions", "remove.csv", f"phone,action\n{A},remove\n")
    assert load(warehouse, drop_dir).ended == 1
    drop_csv(drop_dir, "suppressions", "a (copia).csv", text)  # the same bytes: already loaded
    stats = load(warehouse, drop_dir)
    assert (stats.duplicates, stats.files, stats.added) == (1, 0, 0)
    assert active(warehouse) == {(B, "all", "manual")}
    assert warehouse.count(S) == 2 and warehouse.count(schema.drop_files) == 2


def test_remove_ends_manual_keyword_and_vendor_entries_of_its_scope_but_never_a_registry_one(warehouse, drop_dir):
    keyword_opt_out(warehouse, A)
    with warehouse.begin() as conn:
        vendor = Suppression(A, suppressions.ALL, Source.VENDOR_STATUS, "event 1", pendulum.now("UTC"), "t")
        assert suppressions.add(warehouse, conn, [vendor], pendulum.now("UTC"))
    registry_drop(drop_dir, "ar_no_llame", "export.txt", f"{A}\n{B}\n")
    drop_csv(drop_dir, "suppressions", "add.csv", f"phone,scope\n{A},all\n{A},sms\n")
    load_registries(warehouse, drop_dir)
    load(warehouse, drop_dir)
    assert len(active(warehouse)) == 6
    drop_csv(drop_dir, "suppressions", "remove.csv", f"phone,action\n{A},remove\n{B},remove\n")
    stats = load(warehouse, drop_dir)
    assert stats.ended == 3  # keyword, vendor_status and manual of scope all; not sms, not the registry's
    assert active(warehouse) == {(A, "sms", "manual"), (A, "all", "registry:ar_no_llame"), (B, "all", "registry:ar_no_llame")}
    sha = file_of(warehouse, "remove.csv")["file_sha256"]
    ended = warehouse.rows(sa.select(S.c.source, S.c.end_evidence).where(S.c.ended_at.is_not(None)))
    assert sorted(e["source"] for e in ended) == ["keyword", "manual", "vendor_status"]
    assert {e["end_evidence"] for e in ended} == {f"drop_files {sha} row 1"}


# ---- registry exports -----------------------------------------------------------------------------------
REGISTRY_SHAPES = {
    "headerless, a blank line, spaced international": ("export.txt", f"+54 9 11 5555-1234\n\n{B}\n+54 9 11 5555 1236\n", "utf-8", {2: "row is empty"}),
    "one oddly named column": ("abonados.csv", f"Abonado\n{A}\n{B}\n{C}\n", "utf-8", {}),
    "Nro_Linea among other columns, semicolons": (
        "enacom.csv",
        f"Nombre;Nro_Linea;Fecha Alta;Numero Documento\nAna;{A};2026-01-02;20123456\nJosé;{B};2026-01-03;20123457\n"
        f"Eva;{C};2026-01-04;20123458\n",
        "utf-8",
        {},
    ),
    "Windows-1252 header": ("ñandú.csv", f"Teléfono Móvil,Observación\n{A},sí\n{B},también\n{C},\n", "cp1252", {}),
    "a BOM and msisdn": ("bom.csv", f"\ufeffMSISDN\r\n{A}\r\n{B}\r\n{C}\r\n", "utf-8", {}),
    "headerless national numbers with an extra field": ("nacional.csv", "011 15 5555-1234;x\n011 15 5555-1235;y\n(011) 15-5555-1236;z\n", "utf-8", {}),
}


@pytest.mark.parametrize("shape", list(REGISTRY_SHAPES))
def test_registry_exports_are_read_as_registries_export_them(warehouse, drop_dir, shape):
    name, text, encoding, expected_rejects = REGISTRY_SHAPES[shape]
    registry_drop(drop_dir, "ar_no_llame", name, text, encoding=encoding)
    loads = load_registries(warehouse, drop_dir)
    stats = loads.by_registry["ar_no_llame"]
    assert (stats.files, stats.failed, stats.added) == (1, 0, 3), stats
    assert active(warehouse) == {(p, "all", "registry:ar_no_llame") for p in (A, B, C)}
    assert rejects(warehouse) == expected_rejects
    assert file_of(warehouse, name)["folder"] == "suppressions/registries/ar_no_llame"


def test_a_registry_export_never_lifts_a_phone_it_omits_and_remove_rows_end_only_its_own(warehouse, drop_dir):
    registry_drop(drop_dir, "ar_no_llame", "enero.txt", f"{A}\n{B}\n{C}\n")
    registry_drop(drop_dir, "cl_no_molestar", "export.txt", f"{A}\n")
    drop_csv(drop_dir, "suppressions", "manual.csv", f"phone\n{A}\n")
    load_registries(warehouse, drop_dir)
    load(warehouse, drop_dir)
    registry_drop(drop_dir, "ar_no_llame", "febrero.txt", f"{B}\n")  # a partial export: A and C kept
    assert load_registries(warehouse, drop_dir).total().already_active == 1
    registry_drop(drop_dir, "ar_no_llame", "bajas.csv", f"telefono;accion\n{A};remove\n{C};REMOVE\n{D};remove\n")
    total = load_registries(warehouse, drop_dir).total()
    assert (total.ended, total.added) == (2, 0)
    assert active(warehouse) == {
        (B, "all", "registry:ar_no_llame"),
        (A, "all", "registry:cl_no_molestar"),
        (A, "all", "manual"),
    }


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\n\x08\x06\x00\x00\x00\x1f\xf3\xffa\n"
POISON = {
    "binary (gzip)": (gzip.compress(b"5491155551234\n" * 50, mtime=0), "the header contains a NUL character: not a text CSV"),
    "binary (a PNG: no NUL in its first line)": (PNG, "row(s) is usable (each was rejected): not a list of phones"),
    "not text in any encoding we read": (bytes(range(1, 256)) * 8, "the header is not valid cp1252 text"),
    "header only": (b"telefono\n", "the file lists nothing: it has no rows after its header"),
    "empty": (b"", "the file is empty"),
    "no phone-like column": (
        b"Nombre;Apellido;Ciudad\nAna;P\xe9rez;C\xf3rdoba\n",
        "no phone column: the header has 3 column(s) (Nombre, Apellido, Ciudad)",
    ),
    "two phone-like columns": (
        b"Telefono Fijo,Celular\n1,2\n",
        "more than one column could hold the phone (Telefono Fijo, Celular)",
    ),
}


@pytest.mark.parametrize("poison", list(POISON))
def test_a_poison_export_fails_alone_and_the_next_file_loads(warehouse, drop_dir, poison):
    data, reason = POISON[poison]
    registry_drop(drop_dir, "ar_no_llame", "a-poison.csv", data)
    registry_drop(drop_dir, "ar_no_llame", "b-good.txt", f"{A}\n{B}\n")
    stats = load_registries(warehouse, drop_dir).by_registry["ar_no_llame"]
    assert (stats.files, stats.failed, stats.added) == (1, 1, 2)
    failed = file_of(warehouse, "a-poison.csv")
    assert failed["state"] == "failed" and reason in failed["error"], failed["error"]
    assert failed["rows_valid"] == 0 and failed["rows_rejected"] == 0
    assert active(warehouse) == {(A, "all", "registry:ar_no_llame"), (B, "all", "registry:ar_no_llame")}
    assert warehouse.count(schema.drop_rejects) == 0 and warehouse.count(schema.suppression_staging) == 0
    assert [p.name.endswith("a-poison.csv") for p in (drop_dir / "suppressions/registries/ar_no_llame/failed").iterdir()] == [True]


def test_hostile_registry_folders_are_skipped_with_an_error_and_never_followed(warehouse, drop_dir, tmp_path, caplog):
    base = drop_dir / "suppressions" / "registries"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text(f"{C}\n")
    for name in ("Mayúsculas", "a" * 41, "dos puntos:x", ".hidden", "con espacio", "x\nINJECTED log line"):
        (base / name).mkdir(parents=True)
        (base / name / "x.csv").write_text(f"{D}\n")
    (base / "enlace").symlink_to(elsewhere, target_is_directory=True)
    (base / "suelto.csv").write_text(f"{D}\n")
    registry_drop(drop_dir, "ar_no_llame", "ok.txt", f"{A}\n")
    with caplog.at_level("ERROR"):
        loads = load_registries(warehouse, drop_dir)
    assert list(loads.by_registry) == ["ar_no_llame"] and loads.folders_refused == 8
    assert active(warehouse) == {(A, "all", "registry:ar_no_llame")}
    assert (elsewhere / "x.csv").exists() and sorted(p.name for p in elsewhere.iterdir()) == ["x.csv"]
    assert all((base / n / "x.csv").exists() for n in ("Mayúsculas", ".hidden"))
    assert "INJECTED log line" not in "".join(r.getMessage().replace("\\n", "") for r in caplog.records if "\n" in r.getMessage())
    assert not any("\n" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError):
        lists.registry_folder(drop_dir, "../../etc")


def test_a_registries_folder_that_is_a_symlink_is_not_followed(warehouse, drop_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ar").mkdir(parents=True)
    (elsewhere / "ar" / "x.csv").write_text(f"{C}\n")
    (drop_dir / "suppressions").mkdir()
    (drop_dir / "suppressions" / "registries").symlink_to(elsewhere, target_is_directory=True)
    loads = load_registries(warehouse, drop_dir)
    assert loads.by_registry == {} and loads.folders_refused == 1
    assert (elsewhere / "ar" / "x.csv").exists() and warehouse.count(S) == 0


def test_two_runs_at_once_never_insert_a_phone_twice(warehouse, drop_dir):
    """Two runs claim the files of one folder between them, every file listing the same phones: each
    file is loaded once and each phone has one active entry (the claims, and the partial unique index
    under ``ON CONFLICT DO NOTHING`` when two files with the same phone are applied at once)."""
    phones = [f"54911{40000000 + i:08d}" for i in range(3000)]
    for index in range(6):
        body = "".join(f"{p}\n" for p in phones[index * 100 :] + phones[: index * 100])  # other order, same phones
        registry_drop(drop_dir, "ar_no_llame", f"parte-{index}.txt", body)
        drop_csv(drop_dir, "suppressions", f"lista-{index}.csv", "phone\n" + body)
    barrier = threading.Barrier(4)
    results: list[lists.ListStats] = []
    errors: list[BaseException] = []

    def run(job) -> None:
        try:
            barrier.wait()
            results.append(job())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    jobs = [
        lambda: lists.load_registry(warehouse, drop_dir, "ar_no_llame", region="AR"),
        lambda: lists.load_registry(warehouse, drop_dir, "ar_no_llame", region="AR"),
        lambda: load(warehouse, drop_dir),
        lambda: load(warehouse, drop_dir),
    ]
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert [str(e)[:300] for e in errors] == [] and len(results) == 4
    assert sum(r.files for r in results) == 12 and sum(r.failed + r.duplicates for r in results) == 0
    assert sum(r.added for r in results) == 2 * len(phones)
    assert sum(r.already_active for r in results) == 10 * len(phones)
    rows = warehouse.rows(sa.select(S.c.phone, S.c.source, sa.func.count().label("n")).group_by(S.c.phone, S.c.source))
    assert len(rows) == 2 * len(phones) and {r["n"] for r in rows} == {1}
    assert warehouse.count(schema.suppression_staging) == 0


def test_a_file_that_fails_mid_way_leaves_no_suppression(warehouse, drop_dir, monkeypatch):
    """The first 10,000 rows are staged, then a field over the csv module's limit fails the file: the
    staged rows are discarded with it and nothing is suppressed."""
    staged: list[int] = []
    original = type(warehouse).bulk_insert_new

    def spy(self, conn, table, rows, *, keys):
        if table is schema.suppression_staging:
            staged.append(len(rows))
        return original(self, conn, table, rows, keys=keys)

    monkeypatch.setattr(type(warehouse), "bulk_insert_new", spy)
    good = "".join(f"54911{50000000 + i:08d}\n" for i in range(10_050))
    registry_drop(drop_dir, "ar_no_llame", "cortado.txt", good + "9" * (1 << 22 + 1) + "\n" + f"{A}\n")
    stats = load_registries(warehouse, drop_dir).total()
    assert staged and staged[0] == 10_000  # the first chunk was staged before the file failed
    assert (stats.failed, stats.added, stats.files) == (1, 0, 0)
    failed = file_of(warehouse, "cortado.txt")
    assert failed["state"] == "failed" and "cannot be parsed as CSV after row 10050" in failed["error"]
    assert warehouse.count(S) == 0 and warehouse.count(schema.suppression_staging) == 0
    assert warehouse.count(schema.drop_rejects) == 0
    # the corrected export loads whole
    registry_drop(drop_dir, "ar_no_llame", "completo.txt", good + f"{A}\n")
    assert load_registries(warehouse, drop_dir).total().added == 10_051


# ---- end to end: a listed phone never reaches the vendor --------------------------------------------------
def test_a_phone_listed_in_a_registry_export_is_never_sent(run_dag, warehouse, wavy_hook, wavy_server, drop_dir):
    """Through the DAGs: a registry export lists a phone already pending (it becomes ``suppressed`` at its
    claim) and one a later drop names (rejected at ingest); the simulator never sees either."""
    from latam_messaging.sending.pipeline import ingest_drops
    from latam_messaging.wavy.send import WavyAdapter
    from tests.helpers.simulators import sim_state

    pending, later, other = "5511987650001", "5511987650002", "5511987650003"
    drop_csv(drop_dir, "wavy_sms", "campaña-1.csv", f"phone,message\n{pending},hola\n{other},hola\n")
    ingest_drops(WavyAdapter(), warehouse, drop_dir, region="AR", timezone="UTC")  # pending, not yet sent
    registry_drop(drop_dir, "br_nao_perturbe", "lista.txt", "+55 11 98765-0001\n+55 (11) 98765 0002\n")
    assert run_dag("suppression_lists").state == "success"
    sha = file_of(warehouse, "lista.txt")["file_sha256"]
    drop_csv(drop_dir, "wavy_sms", "campaña-2.csv", f"phone,message\n{later},hola\n{other},chau\n")
    assert run_dag("wavy_sms_send").state == "success"

    T = schema.outbound_messages
    sent = {r["phone"]: r for r in warehouse.rows(sa.select(T))}
    assert {phone: r["state"] for phone, r in sent.items()} == {pending: "suppressed", other: "accepted"}
    assert sent[pending]["error"] == f"suppressed: registry:br_nao_perturbe (drop_files {sha} row 1)"
    [reject] = warehouse.rows(sa.select(schema.drop_rejects).where(schema.drop_rejects.c.reason.like("suppressed%")))
    assert reject["reason"] == f"suppressed: registry:br_nao_perturbe (drop_files {sha} row 2)"
    messages = sim_state(wavy_server)["messages"]
    assert [m for m in messages if m["phone"] in (pending, later)] == []
    assert sorted(m["phone"] for m in messages) == [other, other]


@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)  # a PostgreSQL planner trap: SQLite plans by its indexes
def test_removes_right_after_a_big_load_are_applied_by_index_on_postgresql(warehouse):
    """Right after a big load, PostgreSQL's statistics still call ``suppressions`` empty: a plain
    ``UPDATE … FROM`` then rescans the file's rows for each suppression (minutes for these sizes). The
    removes must be applied one index lookup each. The guard is against that plan, not a speed check:
    the removes' statements must end within 60 s (the trap's plan runs for minutes; about a second here
    on a quiet machine); the first load runs unguarded, so a busy machine cannot fail it."""
    assert warehouse.dialect == "postgresql"

    def stage(sha: str, rows: list[tuple[str, str]]) -> None:
        staged = [
            {"file_sha256": sha, "row_number": n, "phone": p, "scope": "all", "action": a, "reason": None}
            for n, (p, a) in enumerate(rows, start=1)
        ]
        with warehouse.begin() as conn:
            warehouse.bulk_insert_new(conn, schema.suppression_staging, staged, keys=["file_sha256", "row_number"])

    def apply(sha: str, guard_ms: int = 0) -> lists.Applied:
        with warehouse.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {guard_ms}")
            return lists.apply_file(conn, warehouse, sha, source="registry:x", ends=("registry:x",), now=pendulum.now("UTC"))

    phones = [f"54911{60000000 + i:08d}" for i in range(200_000)]
    stage("a" * 64, [(p, "add") for p in phones])
    assert apply("a" * 64).added == 200_000
    stage("b" * 64, [(p, "remove" if i < 2000 else "add") for i, p in enumerate(phones) if i % 2 == 0])
    assert apply("b" * 64, guard_ms=60_000) == lists.Applied(added=0, already_active=99_000, ended=1000)
    assert warehouse.count(S, S.c.ended_at.is_(None)) == 199_000
