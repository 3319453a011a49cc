"""Reading a drop CSV in chunks with pandas: delimiter, header aliases, every row accounted for.

Rows come out numbered from 1 (the first row after the header). A row with more fields than the
header is not skipped: it comes out marked, so that validation rejects it with its raw content.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

CHUNK_ROWS = 10_000
#: First-column marker of a row that had more fields than the header.
MALFORMED = "\x00malformed\x00"

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


def read_layout(path: Path, encoding: str, required: set[str]) -> CsvLayout:
    """Delimiter (``,`` or ``;``) and header, checked for the vendor's required columns."""
    with open(path, encoding=encoding, newline="") as handle:
        header_line = handle.readline()
    if not header_line.strip():
        raise UnreadableDropError("the file is empty or its first line (the header) is blank")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = next(csv.reader([header_line], delimiter=delimiter))
    columns = [canonical_column(c) for c in header]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise UnreadableDropError(f"the header names these columns twice: {', '.join(duplicates)}")
    missing = sorted(required - set(columns))
    if missing:
        raise UnreadableDropError(
            f"required column(s) missing: {', '.join(missing)} (header was: {', '.join(h.strip() for h in header)})"
        )
    return CsvLayout(encoding, delimiter, columns)


def read_rows(
    path: Path, layout: CsvLayout, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    """Chunks of ``(row_number, {column: text})``; memory holds one chunk at a time."""
    width = len(layout.columns)

    def keep_malformed(fields: list[str]) -> list[str]:
        return [MALFORMED + json.dumps(fields, ensure_ascii=False)] + [""] * (width - 1)

    reader = pd.read_csv(
        path,
        sep=layout.delimiter,
        encoding=layout.encoding,
        header=0,
        names=layout.columns,
        index_col=False,  # a row with an extra field must not turn the first column into an index
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=False,
        engine="python",
        on_bad_lines=keep_malformed,
        chunksize=chunk_rows,
    )
    try:
        for chunk in reader:
            records = chunk.fillna("").to_dict("records")  # a blank line reads as NaN
            first = int(chunk.index[0]) + 1 if len(chunk.index) else 1
            yield [(first + offset, record) for offset, record in enumerate(records)]
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableDropError(f"the file cannot be parsed as CSV: {exc}") from exc
