"""The Messaging page's writes: upload a campaign, confirm it, cancel it, release its in-doubt rows.

Every route is behind :func:`security.require_editor` (an editor of the ``Messaging`` view who may start
DAG runs; anti-CSRF for cookie-authenticated requests) and leaves one ``audit_log`` row with the user's
name and the rows it affected (routes under the page app's mount, ``/messaging``; CONTRACT.md):

* ``POST /api/uploads`` (multipart ``folder``, ``file``, optional ``campaign``): the body is streamed to a
  temporary file under ``MESSAGING_UPLOAD_DIR`` (never a name the client chose), capped at
  ``MESSAGING_UPLOAD_MAX_MB`` (413 as soon as it is passed), refused if binary (NUL bytes, neither UTF-8
  nor Windows-1252: 415), kept as ``<uploads>/<campaign_id>.csv`` and previewed (``campaigns.preview``:
  a dry run, nothing queued). The same bytes uploaded again are the same campaign: its state is answered
  and no second file is kept.
* ``POST /api/campaigns/{id}/confirm``: only an ``uploaded`` campaign whose preview has valid rows. One
  transaction moves it ``uploaded → confirmed`` (conditional: of two confirms at once exactly one wins,
  the other is a 409) and hard-links the upload into its drop folder as ``upload-<id>.csv`` (a link never
  replaces a file); then the folder's send DAG is triggered through Airflow and its run id recorded. A
  kill between the link and the commit leaves the file in its folder and the campaign ``uploaded``: the
  send DAG loads it (the campaign becomes ``loaded``), and a second confirm's second copy is a duplicate
  by content (``drop_files``' fingerprint): never a second send.
* ``POST /api/campaigns/{id}/cancel`` → ``{"cancelled": N}`` (``campaigns.records.cancel``).
* ``POST /api/campaigns/{id}/release-unknown`` (``{"checked_with_vendor": true, "outcome": "not_sent" |
  "sent", "batch": optional}``) → ``{"released": N}`` (and the send DAG triggered to send them) or
  ``{"marked_sent": N}``.

``CampaignNotFound`` → 404, ``CampaignError`` and a campaign in the wrong state → 409; errors are JSON
with a ``detail``.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import pendulum
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from latam_messaging import settings as project_settings
from latam_messaging.campaigns import audit, records
from latam_messaging.campaigns.preview import Preview, preview_file
from latam_messaging.campaigns.records import CampaignError, CampaignNotFound, CampaignState, ReleaseOutcome, Source
from latam_messaging.page import security
from latam_messaging.page import trigger as trigger_module
from latam_messaging.page.trigger import TriggerDag, send_dag_id
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
CAMPAIGNS = records.CAMPAIGNS
CampaignId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="the file's SHA-256, first 16 hex digits")]
#: The user ``security.require_editor`` let through (the router's own dependency; FastAPI runs it once).
Editor = Annotated[Any, Depends(security.require_editor)]
#: A send DAG's id is its drop folder's name and ``_send`` (``teleprom_hsm`` → ``teleprom_hsm_send``).
SEND_DAG_SUFFIX = "_send"
#: The name a confirmed upload takes in its drop folder.
DROP_NAME = "upload-{campaign_id}.csv"
#: Form fields other than the file: small, few.
MAX_FIELD_BYTES = 4096
MAX_PARTS = 8
#: Room for the multipart envelope and the small fields beyond the file's own cap.
ENVELOPE_BYTES = 64 * 1024
#: Windows-1252 has no character for these bytes: a file holding one is not text in either encoding.
_CP1252_HOLES = frozenset(b"\x81\x8d\x8f\x90\x9d")


def send_folders() -> dict[str, str]:
    """Drop folder → vendor name, from the registry (the page app is a top: it may read it)."""
    from latam_messaging.vendors import VENDORS

    return {vendor.adapter_class().folder: name for name, vendor in VENDORS.items()}


def _adapter(vendor: str) -> Any:
    from latam_messaging import vendors

    return vendors.adapter(vendor)


# ---- the upload body, streamed ---------------------------------------------------------------------------
class UploadRefused(HTTPException):
    pass


@dataclass
class StoredFile:
    """An upload's file part on disk (a temporary name under the uploads folder) with its SHA-256."""

    path: Path
    sha256: str
    size: int
    encoding: str


@dataclass
class _Sink:
    """Where the file part's bytes go, checked as they come: size cap, NUL bytes, text encodings."""

    folder: Path
    cap: int
    path: Path | None = None
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    utf8: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())
    is_utf8: bool = True
    is_cp1252: bool = True
    _handle: Any = None

    def open(self) -> None:
        if self._handle is not None:
            raise UploadRefused(status_code=422, detail="one file per upload")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".part")
        self.path, self._handle = Path(name), os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap:
            raise UploadRefused(status_code=413, detail=f"the file is larger than {self.cap // (1 << 20)} MB")
        if b"\x00" in data:
            raise UploadRefused(status_code=415, detail="a binary file (it holds NUL bytes), not a CSV text file")
        if self.is_utf8:
            try:
                self.utf8.decode(data)
            except UnicodeDecodeError:
                self.is_utf8 = False
        if self.is_cp1252 and not _CP1252_HOLES.isdisjoint(data):
            self.is_cp1252 = False
        if not (self.is_utf8 or self.is_cp1252):
            raise UploadRefused(status_code=415, detail="not a text file: neither UTF-8 nor Windows-1252")
        self.digest.update(data)
        self._handle.write(data)

    def close(self) -> StoredFile:
        if self._handle is None:
            raise UploadRefused(status_code=422, detail="no file in the upload (field 'file')")
        self._handle.close()
        if self.is_utf8:
            try:
                self.utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.is_utf8 = False
        if not (self.is_utf8 or self.is_cp1252):
            raise UploadRefused(status_code=415, detail="not a text file: neither UTF-8 nor Windows-1252")
        if self.size == 0:
            raise UploadRefused(status_code=422, detail="the file is empty")
        return StoredFile(self.path, self.digest.hexdigest(), self.size, "utf-8-sig" if self.is_utf8 else "cp1252")

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _FormReader:
    """The multipart body read as it arrives (``python-multipart``): the small fields in memory, the
    ``file`` part into a :class:`_Sink`; any other file part is refused."""

    def __init__(self, sink: _Sink):
        self.sink, self.fields, self.client_name = sink, {}, None
        self._name, self._header, self._value, self._disposition = None, b"", b"", b""
        self._is_file, self._data, self._parts = False, bytearray(), 0

    def callbacks(self) -> dict[str, Callable]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "_header", self._header + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_value", self._value + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data_in,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise UploadRefused(status_code=422, detail=f"too many form fields (at most {MAX_PARTS})")
        self._name, self._disposition, self._is_file, self._data = None, b"", False, bytearray()

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file:
            if self._name != "file":
                raise UploadRefused(status_code=422, detail=f"unexpected file field {self._name[:40]!r}")
            self.client_name = options[b"filename"].decode("utf-8", "replace")
            self.sink.open()

    def _data_in(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.sink.write(data[start:end])
            return
        self._data += data[start:end]
        if len(self._data) > MAX_FIELD_BYTES:
            raise UploadRefused(status_code=422, detail=f"form field {self._name[:40]!r} is too long")

    def _end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._data.decode("utf-8", "replace")


async def read_upload(request: Request, sink: _Sink) -> tuple[dict[str, str], str | None]:
    """The form's small fields and the client's file name; the file itself is in ``sink``."""
    content_type = request.headers.get("content-type", "")
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused(status_code=415, detail="send the upload as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > sink.cap + ENVELOPE_BYTES:
        raise UploadRefused(status_code=413, detail=f"the file is larger than {sink.cap // (1 << 20)} MB")
    reader = _FormReader(sink)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise UploadRefused(status_code=422, detail="not a valid multipart/form-data body") from exc
    return reader.fields, reader.client_name


def display_name(client_name: str | None) -> str:
    """The client's file name as shown (its last path segment, cleaned): stored, never used in a path."""
    base = PurePosixPath(str(client_name or "").replace("\\", "/")).name
    return records.clean_name(base)


# ---- the router ------------------------------------------------------------------------------------------
class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checked_with_vendor: Literal[True] = Field(description="the operator checked these rows with the vendor")
    outcome: ReleaseOutcome
    batch: str | None = Field(None, max_length=300)


@contextlib.contextmanager
def _campaign_errors() -> Iterator[None]:
    try:
        yield
    except CampaignNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except CampaignError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except sa.exc.OperationalError as exc:  # the warehouse is down or locked too long
        raise HTTPException(status_code=503, detail=f"warehouse not writable: {type(exc).__name__}") from exc


def router(warehouse: Callable[[], Warehouse], trigger: TriggerDag | None = None) -> APIRouter:
    """The write routes, for ``create_app`` to include; ``warehouse`` gives the app's engine, ``trigger``
    starts a send DAG run (default :func:`latam_messaging.page.trigger.airflow_trigger`)."""
    api = APIRouter(prefix="/api", dependencies=[Depends(security.require_editor)])

    def start_send(folder: str, user: str, note: str) -> tuple[str | None, str | None]:
        """(dag_run_id, None), or (None, why the run could not be started: the next scheduled run sends)."""
        dag_id = send_dag_id(folder)
        try:
            return (trigger or trigger_module.airflow_trigger)(dag_id, user=user, note=note), None
        except Exception as exc:  # the file is in its folder: the DAG's schedule picks it up anyway
            log.exception("could not trigger %s", dag_id)
            return None, f"{dag_id} could not be triggered ({type(exc).__name__}); its next scheduled run sends"

    @api.post("/uploads")
    async def upload(request: Request, user: Editor) -> dict[str, Any]:
        who = security.user_name(user)
        config = project_settings.current()
        sink = _Sink(config.uploads(), config.upload_max_mb << 20)
        try:
            fields, client_name = await read_upload(request, sink)
            stored = sink.close()
        except BaseException:
            sink.discard()
            raise
        try:
            folders = send_folders()
            folder = fields.get("folder", "")
            if folder not in folders:
                raise HTTPException(
                    status_code=422, detail=f"not a send folder: {folder[:60]!r} (one of {', '.join(sorted(folders))})"
                )
            return await run_in_threadpool(
                _keep_and_preview, warehouse(), config, stored, folder, folders[folder], fields, client_name, who
            )
        finally:
            stored.path.unlink(missing_ok=True)

    @api.post("/campaigns/{campaign_id}/confirm")
    def confirm(campaign_id: CampaignId, user: Editor) -> dict[str, Any]:
        who = security.user_name(user)
        with _campaign_errors():
            campaign, target = _confirm(warehouse(), project_settings.current(), campaign_id, who)
        run_id, warning = start_send(campaign["folder"], who, f"campaign {campaign_id} confirmed by {who}")
        if run_id:
            with warehouse().begin() as conn:
                conn.execute(sa.update(CAMPAIGNS).where(CAMPAIGNS.c.campaign_id == campaign_id).values(dag_run_id=run_id))
        log.info("campaign %s confirmed by %s: %s in %s, run %s", campaign_id, who, target.name, campaign["folder"], run_id)
        return {"campaign_id": campaign_id, "dag_run_id": run_id, **({"warning": warning} if warning else {})}

    @api.post("/campaigns/{campaign_id}/cancel")
    def cancel(campaign_id: CampaignId, user: Editor) -> dict[str, Any]:
        with _campaign_errors():
            rows = records.cancel(warehouse(), campaign_id, security.user_name(user))
        return {"campaign_id": campaign_id, "cancelled": rows}

    @api.post("/campaigns/{campaign_id}/release-unknown")
    def release_unknown(
        campaign_id: CampaignId, body: ReleaseBody, user: Editor
    ) -> dict[str, Any]:
        who = security.user_name(user)
        with _campaign_errors():
            rows = records.release_unknown(warehouse(), campaign_id, who, body.outcome, batch=body.batch)
            with warehouse().engine.connect() as conn:
                campaign = records.get(conn, campaign_id)
        if body.outcome is ReleaseOutcome.SENT:
            return {"campaign_id": campaign_id, "marked_sent": rows}
        answer: dict[str, Any] = {"campaign_id": campaign_id, "released": rows}
        folder = campaign["folder"]
        if rows and campaign["state"] != CampaignState.CANCELLED:  # a cancelled campaign's released rows are cancelled
            run_id, warning = start_send(folder, who, f"{rows} in-doubt row(s) of campaign {campaign_id} released by {who}")
            answer |= {"dag_run_id": run_id, **({"warning": warning} if warning else {})}
        return answer

    return api


def _keep_and_preview(
    warehouse: Warehouse,
    config: project_settings.Settings,
    stored: StoredFile,
    folder: str,
    vendor: str,
    fields: dict[str, str],
    client_name: str | None,
    user: str,
) -> dict[str, Any]:
    """Keep the stored upload as ``<uploads>/<campaign_id>.csv`` (unless its campaign exists), preview it,
    record the campaign and the audit line; the answer of ``POST /api/uploads``."""
    campaign_id = records.campaign_id_of(stored.sha256)
    file_name = display_name(client_name)
    with warehouse.engine.connect() as conn:
        existing = conn.execute(sa.select(CAMPAIGNS).where(CAMPAIGNS.c.campaign_id == campaign_id)).mappings().first()
    if existing is not None:
        return _repeat(warehouse, dict(existing), user, file_name)
    kept = config.uploads() / f"{campaign_id}.csv"
    # Our bytes under that name, atomically, whatever was there (a leftover, a symlink): a second name for the
    # stored file renamed over it. An upload of the same bytes at the same moment puts the same content.
    linked = stored.path.with_name(stored.path.name + ".keep")
    os.link(stored.path, linked)
    os.replace(linked, kept)
    adapter = _adapter(vendor)
    try:
        preview = preview_file(
            kept,
            adapter,
            warehouse,
            region=config.default_region,
            timezone=config.timezone,
            prices=config.prices(),
            currency=config.currency,
        )
    except Exception as exc:  # a file the preview cannot read as a CSV: recorded with its error
        log.warning("campaign %s: preview failed (%s)", campaign_id, type(exc).__name__)
        preview = Preview(stored.sha256, error=f"the file cannot be read as a CSV ({type(exc).__name__})")
    name = fields.get("campaign", "").strip() or preview.campaign_name or file_name.removesuffix(".csv")
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        new = records.register(
            conn,
            warehouse,
            sha256=stored.sha256,
            name=name,
            vendor=vendor,
            folder=folder,
            source=Source.UPLOAD,
            file_name=file_name or None,
            created_by=user,
            now=now,
            state=CampaignState.UPLOADED,
            upload_path=str(kept),
            preview=preview.as_dict(),
        )
        if new:
            detail = {"folder": folder, "file_name": file_name, "size_bytes": stored.size, "error": preview.error}
            audit.record(conn, user, audit.Action.UPLOAD, campaign_id, preview.rows_total, detail, now=now)
    if not new:  # a drop or another upload of the same bytes registered it first
        with warehouse.engine.connect() as conn:
            existing = records.get(conn, campaign_id)
        if existing["upload_path"] != str(kept):
            kept.unlink(missing_ok=True)
        return _repeat(warehouse, existing, user, file_name)
    log.info("campaign %s uploaded by %s to %s: %d row(s)", campaign_id, user, folder, preview.rows_total)
    return _answer(campaign_id, CampaignState.UPLOADED, name, folder, vendor, preview.as_dict(), repeat=False)


def _repeat(warehouse: Warehouse, campaign: dict[str, Any], user: str, file_name: str) -> dict[str, Any]:
    """The same bytes again: the campaign they already are (audited, 0 rows: nothing new was stored)."""
    with warehouse.begin() as conn:
        detail = {"repeat": True, "file_name": file_name, "state": campaign["state"]}
        audit.record(conn, user, audit.Action.UPLOAD, campaign["campaign_id"], 0, detail)
    return _answer(
        campaign["campaign_id"],
        campaign["state"],
        campaign["name"],
        campaign["folder"],
        campaign["vendor"],
        campaign["preview"],
        repeat=True,
    )


def _answer(campaign_id, state, name, folder, vendor, preview, *, repeat: bool) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "state": str(state),
        "name": name,
        "folder": folder,
        "vendor": vendor,
        "repeat": repeat,
        "preview": preview,
    }


def _confirm(
    warehouse: Warehouse, config: project_settings.Settings, campaign_id: str, user: str
) -> tuple[dict[str, Any], Path]:
    """``uploaded → confirmed`` and the upload linked into its drop folder, in one transaction (the
    conditional update first: on either database the second of two confirms waits for the first and
    then finds nothing to update)."""
    now = pendulum.now("UTC")
    c = CAMPAIGNS.c
    with warehouse.begin() as conn:
        moved = conn.execute(
            sa.update(CAMPAIGNS)
            .where(c.campaign_id == campaign_id, c.state == CampaignState.UPLOADED)
            .values(state=CampaignState.CONFIRMED, confirmed_by=user[:256], confirmed_at=now)
        ).rowcount
        campaign = records.get(conn, campaign_id)
        if moved != 1:
            raise CampaignError(f"campaign {campaign_id} is {campaign['state']}: only an uploaded campaign can be confirmed")
        preview = campaign["preview"] or {}
        if preview.get("error"):
            raise CampaignError(f"the file cannot be sent: {preview['error']}")
        if not preview.get("rows_valid"):
            raise CampaignError("the file has no valid row: nothing to send")
        if campaign["source"] != Source.UPLOAD or not campaign["upload_path"]:
            raise CampaignError(f"campaign {campaign_id} has no upload to confirm")
        upload = Path(campaign["upload_path"])
        target = enter_drop_folder(upload, config.drop_dir / campaign["folder"], campaign_id)
        audit.record(
            conn, user, audit.Action.CONFIRM, campaign_id, int(preview["rows_valid"]), {"file": target.name}, now=now
        )
    upload.unlink(missing_ok=True)  # its drop-folder link holds the bytes now
    return campaign, target


def enter_drop_folder(upload: Path, folder: Path, campaign_id: str) -> Path:
    """``upload`` enters ``folder`` as a dropped file does: whole, atomically, under a ``.csv`` name with the
    campaign id (a hard link, which never replaces a file; a copy through a ``.part`` name when the
    uploads live on another volume). A link already there from a confirm that was killed is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / DROP_NAME.format(campaign_id=campaign_id)
    try:
        os.link(upload, target)
    except FileExistsError:
        if not os.path.samefile(upload, target):
            raise CampaignError(f"another file is in the way: {target.name} in {folder.name}") from None
    except FileNotFoundError:
        raise CampaignError(f"the upload of campaign {campaign_id} is gone: upload the file again") from None
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: the uploads folder is on another volume
            raise
        part = folder / f".{target.name}.{os.getpid()}.part"
        shutil.copyfile(upload, part)
        try:
            os.link(part, target)
        except FileExistsError:
            raise CampaignError(f"another file is in the way: {target.name} in {folder.name}") from None
        finally:
            part.unlink(missing_ok=True)
    return target
