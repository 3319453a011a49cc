"""Reading a drop CSV in chunks: delimiter, header aliases, limits, every row accounted for.

Rows come out numbered from 1 (the first record after the header), and the number is the record's
true position whatever happens to its neighbours. A row that cannot be used as read (more fields
than the header, a NUL, a field over :data:`MAX_FIELD_CHARS`) is not skipped: it comes out with the
reason, so that it becomes a reject. Limits on the header (its length, its number of columns) fail the
whole file. Error texts never quote the file's content, only the column names we expected.
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
}
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


@dataclass(frozen=True)
class CsvRow:
    """One record: its true number, its values by column, and why it cannot be used (if so)."""

    number: int
    values: dict[str, str]
    problem: str | None = None
    raw: list[str] | None = None  # the fields as read, for a reject


def _text(path: Path, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(open_regular(path), encoding=encoding, errors="strict", newline="")


def read_layout(path: Path, encoding: str, required: set[str]) -> CsvLayout:
    """Delimiter (``,`` or ``;``) and header, checked for the vendor's required columns."""
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
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = next(csv.reader([header_line], delimiter=delimiter))
    if len(header) > MAX_COLUMNS:
        raise UnreadableDropError(f"the header has {len(header)} columns; at most {MAX_COLUMNS} are read")
    columns = [canonical_column(c) for c in header]
    counts = Counter(columns)
    expected = set(required)
    duplicates = sorted(c for c, n in counts.items() if n > 1)
    if duplicates:
        named = [c for c in duplicates if c in expected or c.startswith("param_")]
        others = len(duplicates) - len(named)
        parts = [", ".join(named)] if named else []
        if others:
            parts.append(f"{others} {'other ' if named else ''}column(s) not shown")
        detail = " and ".join(parts)
        raise UnreadableDropError(f"the header names these columns twice: {detail}")
    missing = sorted(expected - set(columns))
    if missing:
        found = sorted(expected & set(columns))
        raise UnreadableDropError(
            f"required column(s) missing: {', '.join(missing)}"
            + (f" (found: {', '.join(found)})" if found else "")
            + f"; the header has {len(columns)} column(s)"
        )
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
