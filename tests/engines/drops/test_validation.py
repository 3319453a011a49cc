"""Unit tests of drop parsing and row validation (no servers)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from latam_messaging.drops.csvfile import UnreadableDropError, canonical_column, read_layout, read_rows
from latam_messaging.drops.folder import DropFolder, fingerprint
from latam_messaging.drops.validation import RowRejected, ValidationContext, message_key
from latam_messaging.itd.send import ItdRowValidator
from latam_messaging.sending.window import SendWindow
from latam_messaging.teleprom.send import TelepromRowValidator
from latam_messaging.wavy.send import WavyRowValidator

TEMPLATES = [
    {
        "template_id": 24,
        "name": "shipping",
        "account_id": 39,
        "status": "Accepted",
        "parameter_count": 1,
        "active": True,
    },
    {
        "template_id": 26,
        "name": "reminder",
        "account_id": 39,
        "status": "Accepted",
        "parameter_count": 2,
        "active": True,
    },
    {
        "template_id": 30,
        "name": "reminder",
        "account_id": 41,
        "status": "Accepted",
        "parameter_count": 2,
        "active": True,
    },
    {"template_id": 28, "name": "promo", "account_id": 41, "status": "Rejected", "parameter_count": 1, "active": True},
    {"template_id": 25, "name": "gone", "account_id": 39, "status": "Accepted", "parameter_count": 0, "active": False},
]


def context(**kwargs) -> ValidationContext:
    return ValidationContext("ab" * 32, "AR", "America/Argentina/Buenos_Aires", TEMPLATES, **kwargs)


def reason(validator, raw) -> str:
    with pytest.raises(RowRejected) as caught:
        validator.validate(1, raw)
    return str(caught.value)


def test_columns_are_canonical_with_spanish_aliases():
    assert [
        canonical_column(c) for c in ["Teléfono", " PLANTILLA ", "Parámetro 1", "parametro_2", "Mensaje", "Fecha envío"]
    ] == [
        "phone",
        "template",
        "param_1",
        "param_2",
        "message",
        "send_at",
    ]


@given(
    st.integers(min_value=1, max_value=999),
    st.sampled_from(["param", "Parametro", "PARÁMETRO", "var"]),
    st.sampled_from(["_", " ", ""]),
)
def test_parameter_columns_any_spelling(number, word, sep):
    assert canonical_column(f"{word}{sep}{number}") == f"param_{number}"


def test_teleprom_rows():
    v = TelepromRowValidator(context())
    row = v.validate(7, {"phone": "+54 9 351 672-3999", "template": "shipping", "param_1": "3", "param_2": ""})
    assert row["message_key"] == message_key("ab" * 32, 7) and row["phone"] == "5493516723999"
    assert (row["template_id"], row["account_id"], row["params"]) == (24, 39, ["3"])
    assert (
        v.validate(8, {"phone": "5493516723998", "template": "26", "param_1": "a", "param_2": "b"})["template_id"] == 26
    )
    assert (
        v.validate(
            9, {"phone": "5493516723997", "template": "reminder", "account": "41", "param_1": "a", "param_2": "b"}
        )["template_id"]
        == 30
    )
    assert "exists in accounts 39, 41" in reason(
        v, {"phone": "5493516723996", "template": "reminder", "param_1": "a", "param_2": "b"}
    )
    assert "is Rejected, not Accepted" in reason(v, {"phone": "5493516723996", "template": "promo", "param_1": "a"})
    assert "no longer exists" in reason(v, {"phone": "5493516723996", "template": "gone"})
    assert "belongs to account 39, not 41" in reason(
        v, {"phone": "5493516723996", "template": "24", "account": "41", "param_1": "a"}
    )
    assert "takes 2 parameter(s), the row has 1" in reason(
        v, {"phone": "5493516723996", "template": "26", "param_1": "a"}
    )
    assert "takes 1 parameter(s), the row has 2" in reason(
        v, {"phone": "5493516723996", "template": "24", "param_1": "a", "param_2": "b"}
    )
    assert "param_1 is empty" in reason(v, {"phone": "5493516723996", "template": "26", "param_1": "", "param_2": "b"})
    assert "does not exist" in reason(v, {"phone": "5493516723996", "template": "nope"})
    assert "not a valid number" in reason(v, {"phone": "12", "template": "24", "param_1": "a"})
    assert "send_at 'mañana'" in reason(
        v, {"phone": "5493516723996", "template": "24", "param_1": "a", "send_at": "mañana"}
    )


def test_duplicates_in_a_file_are_rejected_with_the_first_row():
    v = TelepromRowValidator(context())
    v.validate(1, {"phone": "5493516723999", "template": "24", "param_1": "3"})
    with pytest.raises(RowRejected, match="duplicate of row 1"):
        v.validate(2, {"phone": "+54 9 351 672 3999", "template": "shipping", "param_1": "3"})
    v.validate(3, {"phone": "5493516723999", "template": "24", "param_1": "4"})  # other content: fine


def test_send_at_naive_is_local_time():
    v = WavyRowValidator(context())
    row = v.validate(1, {"phone": "5511987654321", "message": "hola", "send_at": "2026-12-01T09:30"})
    assert row["send_at"].isoformat() == "2026-12-01T12:30:00+00:00"  # Buenos Aires is UTC-3


def test_itd_and_wavy_rules():
    itd = ItdRowValidator(context())
    assert (
        itd.validate(1, {"phone": "+56 9 6123 4567", "content_type": "text", "content": "hola"})["content_type"]
        == "TEXT"
    )
    assert "must be one of TEXT, IMAGE, LINK, FILE" in reason(
        itd, {"phone": "+56961234567", "content_type": "VIDEO", "content": "x"}
    )
    assert "must be an http(s) URL" in reason(
        itd, {"phone": "+56961234567", "content_type": "FILE", "content": "doc.pdf"}
    )
    assert "caption must be blank for TEXT" in reason(
        itd, {"phone": "+56961234567", "content_type": "TEXT", "content": "x", "caption": "c"}
    )
    wavy = WavyRowValidator(context())
    assert "at most 1280" in reason(wavy, {"phone": "5511987654321", "message": "x" * 1281})
    assert wavy.validate(1, {"phone": "5511987654321", "message": "x" * 1280})["content"] == "x" * 1280


def test_messy_csv_layouts(tmp_path):
    semicolon = tmp_path / "a.csv"
    semicolon.write_bytes("\ufeffTeléfono;Mensaje\n+5511987654321;olá\n".encode("utf-8"))
    windows = tmp_path / "b.csv"
    windows.write_bytes("telefono,mensaje\n5511987654321,canción\n".encode("cp1252"))
    for path in (semicolon, windows):
        fp = fingerprint(path)
        layout = read_layout(path, fp.encoding, {"phone", "message"})
        [[row]] = list(read_rows(path, layout))
        assert row.number == 1 and row.values["phone"].endswith("5511987654321") and row.problem is None
    assert fingerprint(semicolon).encoding == "utf-8-sig" and fingerprint(windows).encoding == "cp1252"
    assert [r.values["message"] for r in next(read_rows(windows, read_layout(windows, "cp1252", set())))] == ["canción"]


def test_a_row_with_too_many_fields_is_kept_and_rejected(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("phone,message\n5511987654321,hola\n5511987654322,a,b\n\n5511987654323,chau\n")
    layout = read_layout(path, "utf-8-sig", {"phone", "message"})
    rows = [r for chunk in read_rows(path, layout) for r in chunk]
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert rows[1].problem.startswith("row has 3 fields but the header has 2") and rows[1].raw == ["5511987654322", "a", "b"]
    assert [r.problem for r in (rows[0], rows[2], rows[3])] == [None, None, None]
    v = WavyRowValidator(context())
    assert reason(v, rows[2].values) == "row is empty"


def test_unreadable_files_say_why(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(UnreadableDropError, match="empty"):
        read_layout(empty, "utf-8-sig", {"phone"})
    wrong = tmp_path / "w.csv"
    wrong.write_text("nombre,apellido\nA,B\n")
    with pytest.raises(UnreadableDropError, match="required column\\(s\\) missing: message, phone"):
        read_layout(wrong, "utf-8-sig", {"phone", "message"})


def test_claim_skips_part_files_and_takes_crash_leftovers(tmp_path):
    folder = DropFolder(tmp_path, "wavy_sms")
    folder.ensure()
    (folder.path / "a.csv.part").write_text("x")
    (folder.path / "b.csv").write_text("x")
    (folder.claimed / "left.csv").write_text("x")  # the flat layout of an older version
    dead = folder.claimed / "host-1-dead"  # a run that died: its lease file is gone
    dead.mkdir()
    (dead / "dead.csv").write_text("x")
    alive = DropFolder(tmp_path, "wavy_sms", lease_s=60)
    with alive.leased():
        (alive.mine / "busy.csv").write_text("x")  # a live run's file is never taken
        claimed = [p.name for p in folder.claim_ready()]
    assert claimed == ["dead.csv", "left.csv", "b.csv"]
    assert all(p.parent == folder.mine for p in folder.mine.iterdir())
    assert (folder.path / "a.csv.part").exists() and not (folder.path / "b.csv").exists()
    assert not dead.exists()  # swept once its files were taken over
    assert (alive.mine / "busy.csv").exists()


def test_send_window():
    window = SendWindow.parse("09:00-21:00", "America/Argentina/Buenos_Aires")
    import pendulum

    assert window.contains(pendulum.datetime(2026, 1, 1, 12, 0, tz="UTC"))  # 09:00 local
    assert not window.contains(pendulum.datetime(2026, 1, 1, 11, 59, tz="UTC"))
    assert not window.contains(pendulum.datetime(2026, 1, 2, 0, 0, tz="UTC"))  # 21:00 local
    night = SendWindow.parse("22:00-06:00", "UTC")
    assert night.contains(pendulum.datetime(2026, 1, 1, 23, 0, tz="UTC")) and not night.contains(
        pendulum.datetime(2026, 1, 1, 12, tz="UTC")
    )
    with pytest.raises(ValueError, match="09:00-21:00"):
        SendWindow.parse("9 to 5", "UTC")


@pytest.mark.parametrize(
    "value",
    ["=HYPERLINK(\"http://x\",\"ok\")", "=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "+SUM(A1:A3)", "-A1!B2",
     "-A1+HYPERLINK(\"http://x\",\"y\")", "+A1&WEBSERVICE(\"http://x\")", "-(A1)+cmd|' /C calc'!A0",
     '+"a"&HYPERLINK("http://x")', "+$B$2*2+cmd|x!A0"],
)
def test_a_field_that_a_spreadsheet_would_run_is_rejected(value):
    """CSV injection: a value an export would hand a spreadsheet as a formula never enters the ledger."""
    wavy = WavyRowValidator(context())
    assert reason(wavy, {"phone": "5511987654321", "message": value}) == "looks like a spreadsheet formula (column message)"
    teleprom = TelepromRowValidator(context())
    raw = {"phone": "5493516723999", "template": "shipping", "param_1": value}
    assert reason(teleprom, raw) == "looks like a spreadsheet formula (column param_1)"
    raw = {"phone": "5493516723999", "template": "shipping", "param_1": "3", "tracking_id": value}
    assert reason(teleprom, raw) == "looks like a spreadsheet formula (column tracking_id)"


@pytest.mark.parametrize("value", ["-20% hoy", "+info en la web", "+info (ver web)", "-5", "hola = chau", "a@b.com", "(+54) llamanos",
     "+50% de descuento hoy!", "-A1 es tu asiento", "+3 cuotas (sin interés)"])
def test_texts_that_only_start_like_a_formula_stay_valid(value):
    row = WavyRowValidator(context()).validate(1, {"phone": "5511987654321", "message": value})
    assert row["content"] == value
    # the phone column is the phone's own check: "+54 9 …" is a number, not a formula
    assert TelepromRowValidator(context()).validate(2, {"phone": "+54 9 351 672-3999", "template": "24", "param_1": value})
