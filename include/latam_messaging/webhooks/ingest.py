"""The parse loop: stored webhook bodies into status events and inbound messages (the ``webhook_ingest`` DAG).

Storing bodies is ``webhooks/raw.py``'s job, storing inbound messages ``webhooks/inbound.py``'s,
applying status events ``status.py``'s; this module reads, parses and writes in batches.

Pending events are taken in id order, in batches; each batch's results and its events' new
``parse_state`` commit together, so a crash re-parses at most one batch, and re-parsing is
idempotent. Isolation, so that no single body or item ever stops ingestion:

* a body that cannot be read (too large, too deep, not JSON, not a known shape) is ``error`` with
  the reason; a body some of whose items cannot be used is ``partial`` (the reasons listed), the
  rest of it lands;
* before anything is written, each row is checked against the columns it goes to (NUL characters,
  lengths the PostgreSQL columns would refuse): a row that would not fit is an item error;
* when a batch's write still fails, the batch is written again body by body, and a body whose own
  write fails is marked ``error`` with the database's reason; the rest of the batch commits.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.common.write_behind import WriteBehind
from latam_messaging.consent.replies import ConsentRules
from latam_messaging.status import StatusEvent, apply_status_events
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse, update_each
from latam_messaging.webhooks.inbound import check_inbound, fit_value, store_inbound, value_problem
from latam_messaging.webhooks.parsers import Parsed, UnparseableEvent, VendorParser, parse_body
from latam_messaging.webhooks.raw import RAW_EVENTS, ParseState, body_bytes

log = logging.getLogger(__name__)
BATCH = 1000
REASON_CHARS = 1000


@dataclass
class WebhookIngestStats:
    events: int = 0
    parsed: int = 0
    partial: int = 0
    errors: int = 0
    statuses: int = 0
    inbound: int = 0


# ---- guards before writes -------------------------------------------------------------------------
def _id_problem(name: str, value: Any) -> str | None:
    problem = value_problem(schema.message_status_events, "vendor_message_id", value)
    return problem.replace("vendor_message_id", name, 1) if problem else None


def _event_problem(event: StatusEvent) -> str | None:
    """Why an event cannot be stored: no id that fits its column (no event is better than one filed
    under a changed id). Ids that do not fit are dropped from those tried while another one fits, with
    a note; the event's texts are made to fit instead (:func:`fit_event_texts`)."""
    if event.message_key is not None and (problem := _id_problem("message_key", event.message_key)):
        return problem
    candidates = list(
        dict.fromkeys([*([event.vendor_message_id] if event.vendor_message_id else []), *event.vendor_ids])
    )
    usable = [c for c in candidates if not _id_problem("id", c)]
    if candidates and not usable:
        return _id_problem("vendor_message_id", event.vendor_message_id or candidates[0])
    if len(usable) < len(candidates):
        dropped = len(candidates) - len(usable)
        event.vendor_ids = [c for c in event.vendor_ids if c in usable]
        if event.vendor_message_id not in usable:
            event.vendor_message_id = usable[0]
        note = f"{dropped} vendor id(s) that do not fit the column left out (full ids in the raw body)"
        event.note = "; ".join(t for t in (event.note, note) if t)
    return None


def fit_event_texts(event: StatusEvent) -> None:
    """An event's texts (the vendor's status text, reason, note) and cost fields made to fit their
    columns (NUL removed, invalid Unicode replaced, cut to length), with a note; the full values stay
    in the raw body."""
    events = schema.message_status_events
    done = []
    for name, column in (("raw_status", "raw_text"), ("reason", "reason")):
        value = getattr(event, name)
        if isinstance(value, str) and value_problem(events, column, value):
            fitted, note = fit_value(events, column, value)
            setattr(event, name, fitted)
            done.append(note.replace(column, name, 1))
    if event.cost is not None:
        fitted_cost = {}
        for column, value in event.cost.columns().items():
            if isinstance(value, str) and value_problem(events, column, value):
                fitted_cost[column], note = fit_value(events, column, value)
                done.append(note)
        if fitted_cost:
            event.cost = dataclasses.replace(event.cost, **fitted_cost)
    if isinstance(event.note, str) and value_problem(events, "note", event.note):
        event.note, _ = fit_value(events, "note", event.note)
    if done:
        event.note = "; ".join(t for t in (event.note, f"{'; '.join(done)} (full value in the raw body)") if t)


# ---- parsing ---------------------------------------------------------------------------------------
@dataclass
class ParseOutcome:
    raw_id: int
    state: ParseState
    reasons: list[str] = field(default_factory=list)
    format_version: str | None = None
    statuses: list[StatusEvent] = field(default_factory=list)
    inbound: list[dict[str, Any]] = field(default_factory=list)

    def update_row(self) -> dict[str, Any]:
        error = "; ".join(self.reasons)[:REASON_CHARS] if self.reasons else None
        return {"i": self.raw_id, "s": self.state.value, "e": error, "v": self.format_version}


def _parse(item: Mapping[str, Any], parsers: Mapping[str, VendorParser]) -> ParseOutcome:
    """One stored body → what it carries; never raises (a body that cannot be used is an error)."""
    try:
        try:
            text = body_bytes(item["body"]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnparseableEvent("body is not UTF-8 text") from exc
        parsed: Parsed = parse_body(parsers.get(item["vendor"]), item["channel"], text, item["received_at"])
    except UnparseableEvent as exc:
        return ParseOutcome(item["id"], ParseState.ERROR, [str(exc)[:REASON_CHARS]])
    except (RecursionError, MemoryError, Exception) as exc:  # noqa: BLE001 - one body must never stop ingestion
        return ParseOutcome(item["id"], ParseState.ERROR, [f"{type(exc).__name__} while parsing"])
    reasons = list(parsed.errors)
    statuses = []
    for event in parsed.statuses:
        problem = _event_problem(event)
        if problem:
            reasons.append(f"status: {problem}")
        else:
            fit_event_texts(event)
            event.raw_event_id = item["id"]
            statuses.append(event)
    inbound, problems = check_inbound(parsed.inbound)
    reasons.extend(problems)
    if not statuses and not inbound and not reasons:  # a known shape that carried nothing: not "parsed"
        reasons.append("no status or message found in the body")
    if not reasons:
        state = ParseState.PARSED
    elif statuses or inbound:
        state = ParseState.PARTIAL
    else:
        state = ParseState.ERROR
    return ParseOutcome(item["id"], state, reasons, parsed.format_version, statuses, inbound)


def _write(
    warehouse: Warehouse,
    outcomes: Sequence[ParseOutcome],
    stats: WebhookIngestStats,
    consent: ConsentRules | None = None,
) -> None:
    """Everything the outcomes carry and their new parse states, in one transaction."""
    now = pendulum.now("UTC")
    with warehouse.begin() as conn:
        statuses = apply_status_events(warehouse, conn, [e for o in outcomes for e in o.statuses])
        messages = [m for o in outcomes for m in o.inbound]
        inbound = store_inbound(warehouse, conn, messages, "webhook", consent=consent)
        update_each(
            conn,
            [o.update_row() for o in outcomes],
            {"i": sa.Integer(), "s": sa.String(), "e": sa.Text(), "v": sa.String()},
            lambda row: sa.update(RAW_EVENTS)
            .where(RAW_EVENTS.c.id == row["i"])
            .values(
                parse_state=row["s"],
                parse_error=row["e"],
                format_version=sa.func.coalesce(row["v"], RAW_EVENTS.c.format_version),
                parsed_at=now,
            ),
            ("i", RAW_EVENTS.c.id),
        )
    stats.statuses += statuses
    stats.inbound += inbound


def _write_failure(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first_line = (str(orig).strip().splitlines() or [""])[0]
    return f"write failed: {type(orig).__name__}: {first_line}"[:300]


def _write_isolated(
    warehouse: Warehouse,
    outcomes: Sequence[ParseOutcome],
    stats: WebhookIngestStats,
    consent: ConsentRules | None = None,
) -> None:
    """Write the batch; when that fails, body by body, marking a body whose own write fails ``error``."""
    try:
        _write(warehouse, outcomes, stats, consent)
        return
    except sa.exc.OperationalError:
        raise  # the warehouse is away: nothing to isolate, the run fails and retries later
    except Exception as exc:  # noqa: BLE001 - find the body that caused it
        log.warning(
            "a batch of %d webhook bodies did not write (%s): retrying body by body", len(outcomes), type(exc).__name__
        )
    for outcome in outcomes:
        try:
            _write(warehouse, [outcome], stats, consent)
        except sa.exc.OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001
            failed = ParseOutcome(outcome.raw_id, ParseState.ERROR, [*outcome.reasons, _write_failure(exc)])
            failed.format_version = outcome.format_version
            log.warning("raw webhook event %d could not be written: marked error", outcome.raw_id)
            _write(warehouse, [failed], stats)
            outcome.state = ParseState.ERROR


def _write_counted(
    warehouse: Warehouse,
    outcomes: Sequence[ParseOutcome],
    stats: WebhookIngestStats,
    consent: ConsentRules | None,
) -> None:
    """Write one batch (:func:`_write_isolated`), then count it: its bodies' final states are known
    only once written (a body whose own write failed became ``error``)."""
    _write_isolated(warehouse, outcomes, stats, consent)
    stats.events += len(outcomes)
    stats.parsed += sum(1 for o in outcomes if o.state == ParseState.PARSED)
    stats.partial += sum(1 for o in outcomes if o.state == ParseState.PARTIAL)
    stats.errors += sum(1 for o in outcomes if o.state == ParseState.ERROR)


def ingest_pending(
    warehouse: Warehouse,
    parsers: Mapping[str, VendorParser],
    *,
    reparse_errors: bool = False,
    limit: int | None = None,
    consent: ConsentRules | None = None,
) -> WebhookIngestStats:
    """Parse the stored bodies waiting (and, if asked, those that failed before) with each vendor's
    parser (``parsers``: vendor name → parser, from the registry). ``consent``: the rules inbound
    messages are read with, with the send adapters that confirm opt-outs (from the registry; see
    ``webhooks.inbound.store_inbound``).

    Reading and parsing a batch overlaps the writing of the one before: one writer thread takes the
    batches in order, one at a time, each in its own transaction, while this thread reads and parses
    the next (the database works on a write while Python parses; at most two batches are in memory
    and at most two are parsed again after a kill). Every count in the stats is the writer's."""
    stats = WebhookIngestStats()
    consent = consent or ConsentRules.from_settings()  # read once per run, not per batch
    states = [ParseState.PENDING.value]
    if reparse_errors:
        states += [ParseState.ERROR.value, ParseState.PARTIAL.value]
    last_id, read = 0, 0
    with WriteBehind("webhook-ingest-write") as writer:
        while limit is None or read < limit:
            query = sa.select(
                RAW_EVENTS.c.id, RAW_EVENTS.c.vendor, RAW_EVENTS.c.channel, RAW_EVENTS.c.body, RAW_EVENTS.c.received_at
            ).where(
                RAW_EVENTS.c.parse_state.in_(states),
                RAW_EVENTS.c.id > last_id,
                RAW_EVENTS.c.purged_at.is_(None),  # an archived body (maintenance/) is not read again
            )
            batch = warehouse.rows(query.order_by(RAW_EVENTS.c.id).limit(BATCH))
            if not batch:
                break
            last_id, read = batch[-1]["id"], read + len(batch)
            outcomes = [_parse(item, parsers) for item in batch]
            writer.submit(_write_counted, warehouse, outcomes, stats, consent)
    return stats
