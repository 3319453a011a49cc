"""Reading a drop CSV in chunks: delimiter, header aliases, limits, every row accounted for.

Rows come out numbered from 1 (the first record after the header, or the first line of a file without
one), and the number is the record's true position whatever happens to its neighbours. A row that cannot be used as read (more fields
than the header, a NUL, a field over :data:`MAX_FIELD_CHARS`) is not skipped: it comes out with the
reason, so that it becomes a reject. Limits on the header (its length, its number of columns) fail the
whole file. Error texts never quote the file's content, only the column names we expected (and, when a
list of phones has no phone column, the names its header has: see :func:`read_layout`).

Lists of phones (``any_phone_column``: national do-not-contact registries' exports) come as they are
exported: one phone per line without a header, or a CSV whose phone column has any name (the only
column, or the one whose name looks like a phone column: ``Nro_Linea``, ``MSISDN``, ``celular``…).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from latam_messaging.drops.folder import open_regular

CHUNK_ROWS = 10_000
#: The longest field kept: a WhatsApp text is at most 4,096 characters, an SMS 1,280.
MAX_FIELD_CHARS = 4096
#: The longest header line and the most columns a drop may have.
MAX_HEADER_CHARS = 16_384
MAX_COLUMNS = 256
#: Above this the csv module itself refuses a field (and the file fails): bounds memory per field.
HARD_FIELD_LIMIT = 1 << 22
csv.field_size_limit(HARD_FIELD_LIMIT)

HEADER_ALIASES = {
    "telefono": "phone",
    "celular": "phone",
    "movil": "phone",
    "numero": "phone",
    "destino": "phone",
    "destination": "phone",
    "plantilla": "template",
    "template_id": "template",
    "hsm": "template",
    "cuenta": "account",
    "ruteo": "account",
    "account_id": "account",
    "mensaje": "message",
    "texto": "message",
    "message_text": "message",
    "contenido": "content",
    "tipo_contenido": "content_type",
    "tipo": "content_type",
    "leyenda": "caption",
    "titulo": "caption",
    "descripcion": "description",
    "miniatura": "url_thumb",
    "seguimiento": "tracking_id",
    "id_seguimiento": "tracking_id",
    "tracking": "tracking_id",
    "fecha_envio": "send_at",
    "enviar_el": "send_at",
    "programado": "send_at",
    "antiguedad_maxima_horas": "max_age_hours",
    "horas_maximas": "max_age_hours",
    "accion": "action",
    "operacion": "action",
    "motivo": "reason",
    "razon": "reason",
    "alcance": "scope",
    "ambito": "scope",
}
#: Words (of a column name, split at ``_``) that say the column holds a phone number, the strong ones
#: first: a registry export names its column as it likes (``Nro_Linea``, ``MSISDN``, ``Celular``).
PHONE_WORDS = (
    frozenset({
        "phone", "telephone", "telefono", "tel", "fono", "celular", "cel", "movil", "mobile", "cell", "msisdn",
        "whatsapp", "wa", "linea", "line", "destino", "destinatario",
    }),
    frozenset({"numero", "nro", "num", "number", "nr"}),
)
#: Words that say a column is not a phone even if it names a number (``numero_documento``).
NOT_PHONE_WORDS = frozenset(
    {"documento", "doc", "dni", "rut", "cuit", "cuil", "cpf", "cnpj", "id", "cliente", "orden", "pedido", "fecha"}
)
#: A field that is a phone number as written (digits, spaces, dashes, dots, parentheses, a leading +):
#: what tells a list without a header from one with.
_PHONE_TEXT = re.compile(r"\+?[0-9 ().\-]*[0-9][0-9 ().\-]*")
_MIN_PHONE_DIGITS = 6
#: How many of the header's names an error names at most.
NAMED_COLUMNS = 12
_PARAM = re.compile(r"^(?:param|parametro|parameter|variable|var)_?(\d+)$")


class UnreadableDropError(ValueError):
    """The file as a whole cannot be read as a drop CSV; the message says why, for a person."""


def canonical_column(name: str) -> str:
    """``Teléfono`` → ``phone``, ``Parámetro 1`` → ``param_1``: accents, case, spaces and aliases."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().strip().lower()
    text = re.sub(r"[\s\-.]+", "_", text)
    match = _PARAM.match(text)
    if match:
        return f"param_{int(match.group(1))}"
    return HEADER_ALIASES.get(text, text)


@dataclass(frozen=True)
class CsvLayout:
    encoding: str
    delimiter: str
    columns: list[str]  # canonical names, in file order
    #: False: the first line is already a record (a list of phones exported without a header).
    has_header: bool = True


@dataclass(frozen=True)
class CsvRow:
    """One record: its true number, its values by column, and why it cannot be used (if so)."""

    number: int
    values: dict[str, str]
    problem: str | None = None
    raw: list[str] | None = None  # the fields as read, for a reject


def _text(path: Path, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(open_regular(path), encoding=encoding, errors="strict", newline="")


def _header_line(path: Path, encoding: str) -> str:
    try:
        with _text(path, encoding) as handle:
            header_line = handle.readline(MAX_HEADER_CHARS + 1)
    except UnicodeDecodeError as exc:
        raise UnreadableDropError(f"the header is not valid {encoding} text (byte {exc.start})") from None
    if len(header_line) > MAX_HEADER_CHARS:
        raise UnreadableDropError(f"the header line is longer than {MAX_HEADER_CHARS} characters")
    if not header_line.strip():
        raise UnreadableDropError("the file is empty or its first line (the header) is blank")
    if "\x00" in header_line:
        raise UnreadableDropError("the header contains a NUL character: not a text CSV")
    return header_line


def _check_duplicates(columns: list[str], expected: set[str]) -> None:
    counts = Counter(columns)
    duplicates = sorted(c for c, n in counts.items() if n > 1)
    if duplicates:
        named = [c for c in duplicates if c in expected or c.startswith("param_")]
        others = len(duplicates) - len(named)
        parts = [", ".join(named)] if named else []
        if others:
            parts.append(f"{others} {'other ' if named else ''}column(s) not shown")
        detail = " and ".join(parts)
        raise UnreadableDropError(f"the header names these columns twice: {detail}")


def read_layout(path: Path, encoding: str, required: set[str], *, any_phone_column: bool = False) -> CsvLayout:
    """Delimiter (``,`` or ``;``) and header, checked for the vendor's required columns.

    ``any_phone_column``: the file is a list of phones (:func:`phone_list_layout`); ``required`` then
    names the other columns it may have (``action``, ``reason``), kept by name when present.
    """
    header_line = _header_line(path, encoding)
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = next(csv.reader([header_line], delimiter=delimiter))
    if len(header) > MAX_COLUMNS:
        raise UnreadableDropError(f"the header has {len(header)} columns; at most {MAX_COLUMNS} are read")
    if any_phone_column:
        return phone_list_layout(header, encoding, delimiter, set(required))
    columns = [canonical_column(c) for c in header]
    expected = set(required)
    _check_duplicates(columns, expected)
    missing = sorted(expected - set(columns))
    if missing:
        found = sorted(expected & set(columns))
        raise UnreadableDropError(
            f"required column(s) missing: {', '.join(missing)}"
            + (f" (found: {', '.join(found)})" if found else "")
            + f"; the header has {len(columns)} column(s)"
        )
    return CsvLayout(encoding, delimiter, columns)


def looks_like_phone(field: str) -> bool:
    """``+54 9 351 672-3999``, ``(011) 4555-1234``, ``5493516723999``: a phone as written, not a name."""
    text = field.strip()
    return bool(_PHONE_TEXT.fullmatch(text)) and sum(c.isdigit() for c in text) >= _MIN_PHONE_DIGITS


def _phone_rank(column: str) -> int | None:
    """0 for a column named like a phone (``nro_linea``, ``celular``), 1 for a bare number
    (``numero``), None for anything else (``numero_documento`` included)."""
    words = set(column.split("_"))
    if column == "phone":
        return 0
    if words & NOT_PHONE_WORDS:
        return None
    for rank, vocabulary in enumerate(PHONE_WORDS):
        if words & vocabulary:
            return rank
    return None


def _named(columns: list[str]) -> str:
    shown = [c[:40] for c in columns[:NAMED_COLUMNS]]
    more = len(columns) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def phone_list_layout(first: list[str], encoding: str, delimiter: str, optional: set[str]) -> CsvLayout:
    """The layout of a list of phones whose first record is ``first``.

    * No header: the first line holds a phone number (``looks_like_phone``). The first such field is
      ``phone``; any other field is ``column_<n>`` (its position), so it is never mistaken for an action.
    * A header: its phone column is the only column, or the one column named ``phone`` (or an alias), or
      else the one named like a phone (:data:`PHONE_WORDS`; a bare ``numero``/``nro`` only when no column
      has a stronger name). ``optional`` columns (e.g. ``action``) are kept by name; every other is
      ``column_<n>``. No such column, or two equally likely ones, fails the file naming the header's columns.
    """
    positional = [f"column_{i + 1}" for i in range(len(first))]
    phones = [i for i, field in enumerate(first) if looks_like_phone(field)]
    if phones:
        positional[phones[0]] = "phone"
        return CsvLayout(encoding, delimiter, positional, has_header=False)
    names = [canonical_column(c) for c in first]
    written = [c.strip() for c in first]  # the header as written, for an error (never a row's content)
    if len(names) == 1:
        index = 0
    else:
        ranks = {i: r for i, name in enumerate(names) if (r := _phone_rank(name)) is not None}
        if not ranks:
            raise UnreadableDropError(
                f"no phone column: the header has {len(names)} column(s) ({_named(written)}) and none is named "
                "like a phone number (phone, telefono, celular, movil, numero, nro, msisdn, linea, ...); "
                "name it phone"
            )
        best = min(ranks.values())
        likely = [i for i, r in ranks.items() if r == best]
        if len(likely) > 1:
            raise UnreadableDropError(
                f"more than one column could hold the phone ({_named([written[i] for i in likely])}); "
                "name the one to read phone"
            )
        [index] = likely
    columns = [
        "phone" if i == index else name if name in optional and name != "phone" else positional[i]
        for i, name in enumerate(names)
    ]
    _check_duplicates(columns, optional | {"phone"})
    return CsvLayout(encoding, delimiter, columns)


def _problem(fields: list[str], columns: list[str]) -> str | None:
    if len(fields) > len(columns):
        return f"row has {len(fields)} fields but the header has {len(columns)}: check the delimiter and quoting"
    if max(map(len, fields), default=0) <= MAX_FIELD_CHARS and "\x00" not in "".join(fields):
        return None  # the usual case, checked at C speed; below, which field is wrong
    for name, value in zip(columns, fields, strict=False):
        if len(value) > MAX_FIELD_CHARS:
            return f"field {name} is {len(value)} characters long; at most {MAX_FIELD_CHARS} are accepted"
        if "\x00" in value:
            return f"field {name} contains a NUL character"
    return None


def read_rows(path: Path, layout: CsvLayout, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[CsvRow]]:
    """Chunks of :class:`CsvRow`; memory holds one chunk (and at most one over-long field) at a time."""
    columns = layout.columns
    width = len(columns)
    number = 0
    chunk: list[CsvRow] = []
    try:
        with _text(path, layout.encoding) as handle:
            reader = csv.reader(handle, delimiter=layout.delimiter)
            if layout.has_header:
                next(reader, None)  # the header, read and checked by read_layout
            for fields in reader:
                number += 1
                problem = _problem(fields, columns)
                if problem:
                    raw = [f[:MAX_FIELD_CHARS].replace("\x00", "") for f in fields]
                    chunk.append(CsvRow(number, dict.fromkeys(columns, ""), problem, raw))
                else:
                    if len(fields) < width:
                        fields = fields + [""] * (width - len(fields))
                    chunk.append(CsvRow(number, dict(zip(columns, fields, strict=True))))
                if len(chunk) >= chunk_rows:
                    yield chunk
                    chunk = []
    except UnicodeDecodeError:
        # the decoder reads ahead of the parser: the bad byte is in this row or a later one
        raise UnreadableDropError(f"the file is not valid {layout.encoding} text at or after row {number + 1}") from None
    except csv.Error as exc:
        raise UnreadableDropError(f"the file cannot be parsed as CSV after row {number}: {exc}") from None
    if chunk:
        yield chunk
