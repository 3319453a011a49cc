"""Drops (``drops/folder.py``) and CSV reading (``drops/csvfile.py``), promise by promise: a file is
claimed by one run only, only regular files are read, every row is accounted for with its true number.

Part of the fast selection that ``make mutants`` runs (no warehouse needed).
"""

from __future__ import annotations

import os
import re
import time

import pytest

from latam_messaging.drops import csvfile
from latam_messaging.drops.csvfile import UnreadableDropError, canonical_column, read_layout, read_rows
from latam_messaging.drops.folder import DropFolder, NotARegularFileError, fingerprint, is_regular, open_regular

REQUIRED = {"phone", "message"}


def write(path, data: bytes | str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# ---- column names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Teléfono", "phone"), (" TELEFONO ", "phone"), ("celular", "phone"), ("Número", "phone"),
        ("Destination", "phone"), ("Plantilla", "template"), ("template_id", "template"), ("Cuenta", "account"),
        ("Mensaje", "message"), ("texto", "message"), ("Tipo Contenido", "content_type"), ("tipo", "content_type"),
        ("Fecha Envío", "send_at"), ("fecha-envio", "send_at"), ("fecha.envio", "send_at"),
        ("Parámetro 1", "param_1"), ("parametro_12", "param_12"), ("param03", "param_3"), ("Variable 2", "param_2"),
        ("var_4", "param_4"), ("parameter_5", "param_5"), ("Horas Máximas", "max_age_hours"),
        ("Seguimiento", "tracking_id"), ("Descripción", "description"), ("miniatura", "url_thumb"),
        ("leyenda", "caption"), ("otra", "otra"), ("param", "param"), ("param_x", "param_x"),
    ],
)
def test_columns_are_recognised_in_spanish_with_accents_case_and_spaces(header, column):
    assert canonical_column(header) == column


# ---- the header ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("phone,message", ","), ("phone;message", ";"), ("phone;message;a,b", ";"), ("phone,message,a;b", ",")],
)
def test_the_delimiter_is_the_more_frequent_of_comma_and_semicolon(tmp_path, header, delimiter):
    path = write(tmp_path / "a.csv", header + "\n")
    layout = read_layout(path, "utf-8-sig", REQUIRED)
    assert layout.delimiter == delimiter and layout.encoding == "utf-8-sig"
    assert layout.columns[:2] == ["phone", "message"]


def test_a_header_with_a_bom_is_read(tmp_path):
    path = write(tmp_path / "a.csv", "\ufeffTeléfono;Mensaje\r\n".encode())
    assert read_layout(path, "utf-8-sig", REQUIRED).columns == ["phone", "message"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty or its first line (the header) is blank"),
        (b"  \n5511,hola\n", "the file is empty or its first line (the header) is blank"),
        (b"phone,mess\x00age\n", "the header contains a NUL character: not a text CSV"),
        (b"phone,mens\xe1je\n", "the header is not valid utf-8-sig text (byte 10)"),
        (b"nombre,apellido\n", "required column(s) missing: message, phone; the header has 2 column(s)"),
        (b"phone,x,y\n", "required column(s) missing: message (found: phone); the header has 3 column(s)"),
        (b"phone,message,telefono\n", "the header names these columns twice: phone"),
        (b"phone,message,param1,parametro_1\n", "the header names these columns twice: param_1"),
        (b"phone,message,a,a,b,b\n", "the header names these columns twice: 2 column(s) not shown"),
        (b"phone,message,a,a,mensaje\n", "the header names these columns twice: message and 1 other column(s) not shown"),
    ],
)
def test_a_header_that_cannot_be_used_fails_the_file_with_a_reason(tmp_path, data, reason):
    path = write(tmp_path / "a.csv", data)
    with pytest.raises(UnreadableDropError) as raised:
        read_layout(path, "utf-8-sig", REQUIRED)
    assert str(raised.value) == reason


def test_a_header_at_the_limits_is_read_and_past_them_fails(tmp_path):
    columns = ["phone", "message"] + [f"c{i}" for i in range(csvfile.MAX_COLUMNS - 2)]
    path = write(tmp_path / "ok.csv", ",".join(columns) + "\n")
    assert len(read_layout(path, "utf-8", REQUIRED).columns) == csvfile.MAX_COLUMNS
    path = write(tmp_path / "wide.csv", ",".join(columns + ["one_more"]) + "\n")
    with pytest.raises(UnreadableDropError, match=rf"^the header has {csvfile.MAX_COLUMNS + 1} columns; at most 256"):
        read_layout(path, "utf-8", REQUIRED)
    long_name = "x" * (csvfile.MAX_HEADER_CHARS - len("phone,message,") - 1)
    path = write(tmp_path / "long_ok.csv", f"phone,message,{long_name}\n")  # the limit, newline included
    assert read_layout(path, "utf-8", REQUIRED).columns[-1] == long_name
    path = write(tmp_path / "long.csv", f"phone,message,{long_name}x\n")
    with pytest.raises(UnreadableDropError, match="^the header line is longer than 16384 characters$"):
        read_layout(path, "utf-8", REQUIRED)


# ---- the rows --------------------------------------------------------------------------------------------
def rows_of(path, encoding="utf-8", chunk_rows=csvfile.CHUNK_ROWS):
    layout = read_layout(path, encoding, REQUIRED)
    return list(read_rows(path, layout, chunk_rows=chunk_rows))


def test_rows_keep_their_true_numbers_and_short_rows_are_padded(tmp_path):
    path = write(tmp_path / "a.csv", 'phone;message;tracking_id\n1;"a;b"\n2;c;t2\n\n3;"multi\nline";t3\n')
    [chunk] = rows_of(path)
    assert [(r.number, r.values, r.problem) for r in chunk] == [
        (1, {"phone": "1", "message": "a;b", "tracking_id": ""}, None),
        (2, {"phone": "2", "message": "c", "tracking_id": "t2"}, None),
        (3, {"phone": "", "message": "", "tracking_id": ""}, None),  # a blank line keeps its number (empty)
        (4, {"phone": "3", "message": "multi\nline", "tracking_id": "t3"}, None),
    ]


def test_rows_come_in_chunks_of_the_given_size(tmp_path):
    path = write(tmp_path / "a.csv", "phone,message\n" + "".join(f"{i},m\n" for i in range(1, 8)))
    chunks = rows_of(path, chunk_rows=3)
    assert [[r.number for r in chunk] for chunk in chunks] == [[1, 2, 3], [4, 5, 6], [7]]
    assert [[r.number for r in chunk] for chunk in rows_of(path, chunk_rows=7)] == [[1, 2, 3, 4, 5, 6, 7]]
    assert rows_of(write(tmp_path / "empty.csv", "phone,message\n")) == []


def test_a_row_that_cannot_be_used_comes_out_with_its_reason_and_raw_fields(tmp_path):
    limit = csvfile.MAX_FIELD_CHARS
    path = write(
        tmp_path / "a.csv",
        "phone,message\n"
        "1,a,extra\n"
        f"2,{'x' * (limit + 1)}\n"
        f"3,{'y' * limit}\n"
        "4,nul\x00here\n"
        "5,ok\n",
    )
    [chunk] = rows_of(path)
    by_number = {r.number: r for r in chunk}
    assert by_number[1].problem == (
        "row has 3 fields but the header has 2: check the delimiter and quoting"
    )
    assert by_number[1].raw == ["1", "a", "extra"] and by_number[1].values == {"phone": "", "message": ""}
    assert by_number[2].problem == f"field message is {limit + 1} characters long; at most {limit} are accepted"
    assert by_number[2].raw == ["2", "x" * limit]
    assert by_number[3].problem is None and by_number[3].values["message"] == "y" * limit
    assert by_number[4].problem == "field message contains a NUL character" and by_number[4].raw == ["4", "nulhere"]
    assert (by_number[5].problem, by_number[5].raw, by_number[5].values) == (None, None, {"phone": "5", "message": "ok"})


def test_a_file_that_is_not_its_encoding_fails_naming_the_row(tmp_path):
    good = "".join(f"{i},hola\n" for i in range(1, 3001)).encode()  # past what the decoder reads ahead
    path = write(tmp_path / "a.csv", b"phone,message\n" + good + b"3001,ol\xe1\n")
    layout = read_layout(path, "utf-8", REQUIRED)
    with pytest.raises(UnreadableDropError, match=r"^the file is not valid utf-8 text at or after row \d+$"):
        list(read_rows(path, layout))
    [chunk] = rows_of(path, encoding="cp1252")  # as the fingerprint would have chosen
    assert (chunk[-1].number, chunk[-1].values["message"]) == (3001, "olá")


def test_a_field_past_the_csv_modules_limit_fails_the_file(tmp_path):
    path = write(tmp_path / "a.csv", "phone,message\n1,ok\n2," + "z" * (csvfile.HARD_FIELD_LIMIT + 1) + "\n")
    layout = read_layout(path, "utf-8", REQUIRED)
    with pytest.raises(UnreadableDropError, match="^the file cannot be parsed as CSV after row 1: "):
        list(read_rows(path, layout))


# ---- opening only regular files -----------------------------------------------------------------------
def test_only_regular_files_are_opened(tmp_path):
    real = write(tmp_path / "real.csv", "x")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with open_regular(real) as handle:
        assert handle.read() == b"x"
    for path in (link, folder, fifo):
        with pytest.raises(NotARegularFileError, match=f"^{path.name} is not a regular file$"):
            open_regular(path)
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing.csv")
    assert [is_regular(p) for p in (real, link, folder, fifo, tmp_path / "missing.csv")] == [
        True, False, False, False, False,
    ]


# ---- fingerprints --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"phone,message\n1,hola\n", "utf-8-sig"),
        ("\ufefftel\u00e9fono\n".encode(), "utf-8-sig"),
        (b"phone,message\n1,ol\xe1\n", "cp1252"),
        (b"phone,message\n1,ol\xc3", "cp1252"),  # a UTF-8 sequence cut at the end
        (b"", "utf-8-sig"),
    ],
)
def test_the_fingerprint_is_the_sha256_size_and_encoding(tmp_path, data, encoding):
    import hashlib

    path = write(tmp_path / "a.csv", data)
    fp = fingerprint(path)
    assert (fp.sha256, fp.size_bytes, fp.encoding) == (hashlib.sha256(data).hexdigest(), len(data), encoding)


def test_the_fingerprint_reads_big_files_block_by_block(tmp_path, monkeypatch):
    import hashlib

    from latam_messaging.drops import folder as folder_module

    monkeypatch.setattr(folder_module, "READ_BLOCK", 4)
    data = "é".encode() * 5 + b"\xe1"  # UTF-8 split across blocks, then a byte that is not UTF-8
    path = write(tmp_path / "a.csv", data)
    fp = fingerprint(path)
    assert (fp.sha256, fp.size_bytes, fp.encoding) == (hashlib.sha256(data).hexdigest(), len(data), "cp1252")
    path = write(tmp_path / "b.csv", "é".encode() * 5)
    assert fingerprint(path).encoding == "utf-8-sig"


# ---- claims ------------------------------------------------------------------------------------------------
def names(paths):
    return sorted(p.name for p in paths)


def test_a_claim_takes_each_ready_csv_into_the_runs_own_folder(tmp_path):
    write(tmp_path / "wavy" / "b.csv", "2")
    write(tmp_path / "wavy" / "a.csv", "1")
    write(tmp_path / "wavy" / "c.csv.part", "uploading")
    write(tmp_path / "wavy" / "notes.txt", "not a drop")
    folder = DropFolder(tmp_path, "wavy", owner="run-1")
    with folder.leased():
        claimed = list(folder.claim_ready())
        assert [p.name for p in claimed] == ["a.csv", "b.csv"]  # in name order
        assert all(p.parent == tmp_path / "wavy" / ".claimed" / "run-1" for p in claimed)
        assert names((tmp_path / "wavy").iterdir()) == [".claimed", "archive", "c.csv.part", "failed", "notes.txt"]
        assert list(DropFolder(tmp_path, "wavy", owner="run-2").claim_ready()) == []  # nothing for another run


def test_an_owner_is_unique_and_safe_as_a_file_name():
    owners = {DropFolder("/tmp", "x").owner for _ in range(3)}
    assert len(owners) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+-\d+-[0-9a-f]{12}", owner) for owner in owners)


def test_finished_files_are_stamped_into_archive_or_failed(tmp_path):
    write(tmp_path / "wavy" / "a.csv", "1")
    write(tmp_path / "wavy" / "b.csv", "2")
    folder = DropFolder(tmp_path, "wavy", owner="run-1")
    a, b = folder.claim_ready()
    archived, failed = folder.finish(a, "archive"), folder.finish(b, "failed")
    assert archived.parent == tmp_path / "wavy" / "archive" and failed.parent == tmp_path / "wavy" / "failed"
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}-a\.csv", archived.name) and failed.name.endswith("-b.csv")
    assert archived.read_text() == "1" and not a.exists()


def test_not_regular_entries_are_moved_to_failed_unread(tmp_path):
    write(tmp_path / "wavy" / "ok.csv", "1")
    target = write(tmp_path / "secret.txt", "secret")
    (tmp_path / "wavy" / "link.csv").symlink_to(target)
    (tmp_path / "wavy" / "dir.csv").mkdir()
    folder = DropFolder(tmp_path, "wavy", owner="run-1")
    assert names(folder.claim_ready()) == ["ok.csv"]
    assert folder.not_regular == 2
    failed = list((tmp_path / "wavy" / "failed").iterdir())
    assert sorted(p.name.split("-", 2)[2] for p in failed) == ["dir.csv", "link.csv"]
    assert target.read_text() == "secret"


def test_a_live_runs_claims_are_never_taken_and_a_dead_runs_are(tmp_path):
    write(tmp_path / "wavy" / "a.csv", "1")
    write(tmp_path / "wavy" / "b.csv", "2")
    alive = DropFolder(tmp_path, "wavy", owner="alive", lease_s=60)
    with alive.leased():
        first = next(alive.claim_ready())  # the run holds a.csv ...
        other = DropFolder(tmp_path, "wavy", owner="other", lease_s=60)
        assert names(other.claim_ready()) == ["b.csv"]  # ... another run takes only what is left
    assert first.exists()  # a claimed file left behind stays under its owner until the lease lapses
    assert not (tmp_path / "wavy" / ".claimed" / "alive.lease").exists()
    late = DropFolder(tmp_path, "wavy", owner="late", lease_s=60)
    # both runs ended without finishing their files: no lease file, so their owners are gone
    assert names(late.claim_ready()) == ["a.csv", "b.csv"]
    assert not (tmp_path / "wavy" / ".claimed" / "alive").exists()  # the dead owner is forgotten


def test_a_claim_is_taken_over_only_after_its_lease_lapsed(tmp_path):
    write(tmp_path / "wavy" / "a.csv", "1")
    dead = DropFolder(tmp_path, "wavy", owner="dead", lease_s=5)
    dead.ensure()
    dead.mine.mkdir()
    claimed = next(dead.claim_ready())
    dead.lease_file.touch()
    taker = DropFolder(tmp_path, "wavy", owner="taker", lease_s=5)
    assert list(taker.claim_ready()) == []  # the lease is fresh
    old = time.time() - 6
    os.utime(dead.lease_file, (old, old))
    [taken] = taker.claim_ready()
    assert taken == taker.mine / "a.csv" and not claimed.exists()
    assert not dead.mine.exists() and not dead.lease_file.exists()


def test_the_lease_is_renewed_while_the_run_works(tmp_path):
    folder = DropFolder(tmp_path, "wavy", owner="run", lease_s=0.2)
    with folder.leased():
        old = time.time() - 10
        os.utime(folder.lease_file, (old, old))
        time.sleep(0.25)
        assert time.time() - folder.lease_file.stat().st_mtime < 0.2
        assert not folder._owner_gone("run")
    assert folder._owner_gone("run")


def test_files_of_the_old_flat_layout_are_taken(tmp_path):
    write(tmp_path / "wavy" / ".claimed" / "old.csv", "1")
    folder = DropFolder(tmp_path, "wavy", owner="run")
    assert [p.name for p in folder.claim_ready()] == ["old.csv"]


def test_a_name_already_claimed_by_this_run_waits_for_a_later_run(tmp_path):
    folder = DropFolder(tmp_path, "wavy", owner="run")
    write(folder.mine / "a.csv", "first")
    write(tmp_path / "wavy" / "a.csv", "second")
    assert list(folder.claim_ready()) == []
    assert (tmp_path / "wavy" / "a.csv").read_text() == "second"


# ---- owners, folders, stamps, refusals, at their edges --------------------------------------------------
def test_an_owner_starts_with_the_host_name_made_safe_and_short(monkeypatch):
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "Büro Host.example-01_a.b.c.d.e.f.g.h.i")
    owner = DropFolder("/tmp", "x").owner
    assert owner.startswith(f"B_ro_Host.example-01_a.b.c.d.e.f-{os.getpid()}-")
    assert re.fullmatch(r"[0-9a-f]{12}", owner.rsplit("-", 1)[1])


def test_a_drop_folder_is_made_with_its_parents(tmp_path):
    folder = DropFolder(tmp_path / "drops" / "latam", "wavy", owner="run")
    folder.ensure()
    assert sorted(p.name for p in (tmp_path / "drops" / "latam" / "wavy").iterdir()) == [
        ".claimed", "archive", "failed"]


def test_the_stamp_of_a_finished_file_is_the_utc_time_it_finished(tmp_path):
    import pendulum

    write(tmp_path / "wavy" / "a.csv", "1")
    folder = DropFolder(tmp_path, "wavy", owner="run")
    [claimed] = folder.claim_ready()
    before = pendulum.now("UTC").replace(microsecond=0)
    archived = folder.finish(claimed, "archive")
    after = pendulum.now("UTC")
    stamp = pendulum.from_format(archived.name[:15], "YYYYMMDDTHHmmss", tz="UTC")
    assert before <= stamp <= after


def test_a_path_under_a_file_is_not_a_regular_file(tmp_path):
    regular = write(tmp_path / "a.csv", "1")
    with pytest.raises(NotARegularFileError):
        open_regular(regular / "inner.csv")  # ENOTDIR


def test_a_not_regular_entry_is_logged_with_where_it_went(tmp_path, caplog):
    (tmp_path / "wavy").mkdir()
    (tmp_path / "wavy" / "dir.csv").mkdir()
    folder = DropFolder(tmp_path, "wavy", owner="run")
    with caplog.at_level("ERROR", logger="latam_messaging.drops.folder"):
        assert list(folder.claim_ready()) == []
    [moved] = (tmp_path / "wavy" / "failed").iterdir()
    assert caplog.messages == [
        f"dir.csv is not a regular file (symlink, folder or pipe): moved unread to {moved}"]


def test_a_dead_owner_whose_file_cannot_be_taken_yet_is_kept(tmp_path):
    write(tmp_path / "wavy" / ".claimed" / "dead" / "a.csv", "left by the dead run")
    folder = DropFolder(tmp_path, "wavy", owner="run")
    write(folder.mine / "a.csv", "this run's own a.csv")
    assert list(folder.claim_ready()) == []  # same name already here: a later run takes it
    assert (tmp_path / "wavy" / ".claimed" / "dead" / "a.csv").read_text() == "left by the dead run"


def test_a_header_with_as_many_semicolons_as_commas_is_comma_separated(tmp_path):
    path = write(tmp_path / "a.csv", "phone;x,message\n")
    assert read_layout(path, "utf-8", set()).delimiter == ","


@pytest.mark.parametrize(
    ("data", "required", "reason"),
    [
        (b"phone,message,telefono,mensaje\n", REQUIRED, "the header names these columns twice: message, phone"),
        (b"phone,message\n", REQUIRED | {"template"},
         "required column(s) missing: template (found: message, phone); the header has 2 column(s)"),
    ],
)
def test_a_header_reason_lists_every_column_it_names(tmp_path, data, required, reason):
    path = write(tmp_path / "a.csv", data)
    with pytest.raises(UnreadableDropError) as raised:
        read_layout(path, "utf-8-sig", required)
    assert str(raised.value) == reason


def test_a_line_break_inside_a_quoted_field_is_kept_as_written(tmp_path):
    path = write(tmp_path / "a.csv", b'phone,message\r\n5511,"line one\r\nline two"\r\n')
    [[row]] = read_rows(path, read_layout(path, "utf-8", REQUIRED))
    assert row.values == {"phone": "5511", "message": "line one\r\nline two"}


def test_a_windows_1252_header_is_read_in_its_encoding(tmp_path):
    path = write(tmp_path / "a.csv", "Teléfono;Mensaje\n".encode("cp1252"))
    assert read_layout(path, "cp1252", REQUIRED).columns == ["phone", "message"]


def test_a_nul_is_reported_even_beside_a_field_at_the_length_limit(tmp_path):
    path = write(tmp_path / "a.csv", "phone,message\n" + "1" * 4096 + ",a\x00b\n")
    [[row]] = read_rows(path, read_layout(path, "utf-8", REQUIRED))
    assert row.problem == "field message contains a NUL character"


def test_a_small_file_not_in_its_encoding_names_its_first_row(tmp_path):
    path = write(tmp_path / "a.csv", b"phone,message\n1,hola\n2,ol\xe1\n")  # decoded in one read
    layout = csvfile.CsvLayout("utf-8", ",", ["phone", "message"])  # as read_layout found the header
    with pytest.raises(UnreadableDropError, match=r"^the file is not valid utf-8 text at or after row 1$"):
        list(read_rows(path, layout))


# ---- lists of phones (registry exports): no header, or any phone column -------------------------------------
LIST_COLUMNS = {"action", "reason"}


def list_layout(tmp_path, data: bytes | str, encoding: str = "utf-8-sig") -> csvfile.CsvLayout:
    return read_layout(write(tmp_path / "a.csv", data), encoding, LIST_COLUMNS, any_phone_column=True)


@pytest.mark.parametrize(
    "field",
    ["+54 9 11 5555-1234", "5491155551234", "(011) 4555-1234", "011.4555.1234", " 123456 ", "+55 (11) 98765 0001"],
)
def test_a_field_written_as_a_phone_looks_like_one(field):
    assert csvfile.looks_like_phone(field)


@pytest.mark.parametrize("field", ["telefono", "12345", "+", "", "5491155551234x", "nro 5491155551234", "1-2-3-4-5"])
def test_a_name_or_a_short_number_does_not_look_like_a_phone(field):
    assert not csvfile.looks_like_phone(field)


def test_a_list_without_a_header_starts_at_its_first_line(tmp_path):
    data = "+54 9 11 5555-1234\n\n5491155551235\n"
    layout = list_layout(tmp_path, data)
    assert (layout.columns, layout.has_header, layout.delimiter) == (["phone"], False, ",")
    [rows] = read_rows(tmp_path / "a.csv", layout)
    assert [(r.number, r.values) for r in rows] == [
        (1, {"phone": "+54 9 11 5555-1234"}),
        (2, {"phone": ""}),
        (3, {"phone": "5491155551235"}),
    ]


def test_a_headerless_line_with_more_fields_keeps_the_first_phone_and_names_the_rest_by_position(tmp_path):
    layout = list_layout(tmp_path, "Ana;+54 9 11 5555-1234;remove\nEva;5491155551235;add\n")
    assert (layout.columns, layout.has_header, layout.delimiter) == (["column_1", "phone", "column_3"], False, ";")


@pytest.mark.parametrize(
    ("header", "columns"),
    [
        ("Abonado", ["phone"]),  # the only column, whatever its name
        ("Nombre;Nro_Linea;Fecha Alta", ["column_1", "phone", "column_3"]),
        ("numero_documento,celular,accion", ["column_1", "phone", "action"]),  # a document number is not a phone
        ("id_cliente;MSISDN;Motivo", ["column_1", "phone", "reason"]),
        ("Nombre,Número,Fecha", ["column_1", "phone", "column_3"]),  # an alias of phone
        ("nombre,nro,whatsapp", ["column_1", "column_2", "phone"]),  # a bare number only without a better name
        ("nombre,nro", ["column_1", "phone"]),
        ("scope,telefono,tracking_id", ["column_1", "phone", "column_3"]),  # only the list's columns by name
    ],
)
def test_the_phone_column_of_a_list_is_found_whatever_its_name(tmp_path, header, columns):
    layout = list_layout(tmp_path, header + "\n")
    assert (layout.columns, layout.has_header) == (columns, True)


def test_a_windows_1252_list_header_with_a_bom_less_utf8_twin(tmp_path):
    assert list_layout(tmp_path, "Teléfono Móvil;Observación\n".encode("cp1252"), "cp1252").columns == [
        "phone",
        "column_2",
    ]
    assert list_layout(tmp_path, "\ufeffTeléfono\r\n5491155551234\r\n".encode()).columns == ["phone"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            "Nombre;Apellido;Ciudad\n",
            "no phone column: the header has 3 column(s) (Nombre, Apellido, Ciudad) and none is named like a phone",
        ),
        ("Telefono Fijo,Celular,x\n", "more than one column could hold the phone (Telefono Fijo, Celular)"),
        ("telefono,accion,action\n", "the header names these columns twice: action"),
        ("".join(f"c{i}," for i in range(20)) + "\n", "(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11 and 9 more)"),
    ],
)
def test_a_list_without_one_phone_column_fails_naming_the_columns_it_found(tmp_path, data, reason):
    with pytest.raises(UnreadableDropError) as raised:
        list_layout(tmp_path, data)
    assert reason in str(raised.value)


def test_other_folders_still_need_their_header(tmp_path):
    """Without ``any_phone_column`` nothing changes: a first line of phone numbers is a bad header."""
    path = write(tmp_path / "a.csv", "5491155551234\n5491155551235\n")
    with pytest.raises(UnreadableDropError, match="required column"):
        read_layout(path, "utf-8", {"phone"})
    assert read_layout(write(tmp_path / "b.csv", "telefono\n1\n"), "utf-8", {"phone"}).has_header


def test_a_folder_takes_the_names_it_is_given_and_never_an_upload(tmp_path):
    write(tmp_path / "reg" / "a.csv", "1")
    write(tmp_path / "reg" / "b.txt", "2")
    write(tmp_path / "reg" / "c.txt.part", "uploading")
    write(tmp_path / "reg" / "d.xlsx", "3")
    folder = DropFolder(tmp_path, "reg", owner="run", patterns=("*.csv", "*.txt"))
    with folder.leased():
        assert [p.name for p in folder.claim_ready()] == ["a.csv", "b.txt"]
    write(tmp_path / "csv-only" / "b.txt", "2")
    with DropFolder(tmp_path, "csv-only", owner="run").leased() as default:
        assert list(default.claim_ready()) == []
