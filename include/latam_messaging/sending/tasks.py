"""The tasks of the three send DAGs (``teleprom_hsm_send``, ``itd_whatsapp_send``, ``wavy_sms_send``).

DAG files only call :func:`send_pipeline`; the work is imported inside the tasks, so parsing a DAG
file stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pendulum
from airflow.sdk import Param, get_current_context, task

from latam_messaging import assets
from latam_messaging.vendors import VENDORS


def send_doc(dag_id: str, folder: str, how: str) -> str:
    """The ``doc_md`` of a send DAG."""
    return f"""
### {dag_id}

Sends the CSV drops of **`{folder}/`** (under `MESSAGING_DROP_DIR`) via {how}.

1. **ingest_drops** claims each ready `*.csv` (never a `.part`), fingerprints it (SHA-256: the same
   content dropped again sends nothing), validates every row (bad rows → `drop_rejects` with the
   reason) and writes `outbound_messages` as `pending` or `scheduled` (`send_at` in the future
   or outside the send window). The file moves to `archive/`, or `failed/` if unreadable.
   A file is all or nothing: its rows become sendable only once the whole file has been read.
2. **plan_sends** releases the `unknown` rows named in `release_unknown` (the run fails if none of
   them is `unknown`) and decides how many `send_due` instances run (`send_instances`).
3. **send_due** (mapped: one or more instances, on any workers) sends due rows concurrently. Each worker claims one request's rows atomically
   (committed as `sending` under this run's lease) before the request leaves, so overlapping runs
   never send a row twice. Rows left `sending` by a run whose lease expired become `unknown`, as do
   rows whose answer was ambiguous (5xx, timeout): they are never re-sent automatically. To release
   unknown rows you checked were not sent, trigger with the param `release_unknown`.

**Consent.** A row whose phone opted out (`suppressions`: a "BAJA" reply, a vendor's opt-out status, a
list or registry file) is rejected at ingest (`suppressed: <source> (<evidence>)`) and, if the opt-out
lands later, becomes `suppressed` when claimed: never sent. Transactional files only: the params
`consent_exempt` (why, who decided) and `consent_exempt_files` (which files) let their rows through,
logged and counted.

Columns: see README (Dropping a file). Connections: the vendor's `*_default` and `messaging_warehouse`.
"""


def send_params() -> dict[str, Param]:
    """Params an operator can set when triggering a run from the UI."""
    return {
        "release_unknown": Param(
            [],
            type=["null", "array"],
            items={"type": "string", "pattern": "^m-[0-9a-f]{16}-[0-9]+$"},
            description="message_key values of 'unknown' rows you confirmed with the vendor were NOT sent: "
            "they go back to pending and are sent in this run.",
        ),
        "consent_exempt": Param(
            None,
            type=["null", "string"],
            minLength=10,
            maxLength=200,
            description="TRANSACTIONAL sends only (one-time codes, service notices): why the files named in "
            "consent_exempt_files may reach phones that opted out, and who decided, e.g. 'OTP codes; approved by "
            "legal (Ana)'. Their rows carry the text, the file and the run id; they are counted on the page. "
            "Leave empty for campaigns.",
        ),
        "consent_exempt_files": Param(
            [],
            type=["null", "array"],
            items={"type": "string", "minLength": 1, "maxLength": 255},
            description="The names of the dropped files (e.g. otp_2026-11-29.csv) the consent exemption covers; "
            "required with consent_exempt. Other files of the run are screened as always.",
        ),
        "send_window": Param(
            None,
            type=["null", "string"],
            pattern="^$|^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$",
            description="Local hours in which to send, e.g. 09:00-21:00 (default: MESSAGING_SEND_WINDOW_<VENDOR>, else any time).",
        ),
        "send_instances": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=16,
            description="Parallel send_due task instances (mapped; they share the pending rows through atomic "
            "claims and split the requests-per-second ceiling). Default per vendor.",
        ),
        "concurrency": Param(
            None, type=["null", "integer"], minimum=1, maximum=64, description="Worker threads (default per vendor)."
        ),
        "requests_per_second": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="Ceiling of requests per second; 0 = none (default per vendor).",
        ),
    }


def _window(vendor: str, params: dict[str, Any]):
    from latam_messaging import settings
    from latam_messaging.sending.window import SendWindow

    return SendWindow.for_vendor(vendor, settings.timezone(), params.get("send_window"))


def sync_prices(warehouse) -> None:
    """``message_prices`` = the settings' ``MESSAGING_PRICES`` (campaign costs); a bad table is reported and
    left as it was: prices never stop a send."""
    from latam_messaging import settings
    from latam_messaging.campaigns import pricing

    current = settings.current()
    try:
        changed = pricing.sync_prices(warehouse, current.prices(), current.currency)
    except pricing.PriceTableError as exc:
        print(f"WARNING prices not updated: {exc}")
        return
    if changed:
        print(f"prices: {changed} price(s) in {current.currency} from MESSAGING_PRICES")


def send_pipeline(vendor: str) -> None:
    """Wire ingest → plan → send (mapped) → reconcile unknown for ``vendor`` (a name of the registry)."""

    @task(retries=2, retry_delay=pendulum.duration(minutes=1))
    def ingest_drops() -> dict[str, int]:
        """Claim the ready CSVs, validate every row, write the ledger and the rejects."""
        from airflow.sdk.exceptions import AirflowFailException

        from latam_messaging import settings
        from latam_messaging.sending.pipeline import ConsentExemption
        from latam_messaging.sending.pipeline import ingest_drops as ingest
        from latam_messaging.warehouse.db import open_warehouse

        context = get_current_context()
        params = context["params"]
        reason = (params.get("consent_exempt") or "").strip()
        files = frozenset(f for f in params.get("consent_exempt_files") or [] if f)
        if bool(reason) != bool(files):
            raise AirflowFailException(
                "consent_exempt and consent_exempt_files go together: a reason, and the names of the files it "
                "covers. Nothing was loaded."
            )
        exemption = ConsentExemption(f"{reason} (run {context['run_id']})", files) if reason else None
        if exemption:
            print(f"WARNING consent exemption for {sorted(files)}: {exemption.reason}")
        warehouse = open_warehouse()
        sync_prices(warehouse)
        stats = ingest(
            VENDORS[vendor].adapter_class()(),
            warehouse,
            settings.drop_dir(),
            region=settings.default_region(),
            timezone=settings.timezone(),
            window=_window(vendor, params),
            exemption=exemption,
        )
        print(f"ingest: {asdict(stats)}")
        return asdict(stats)

    @task(retries=2, retry_delay=pendulum.duration(minutes=1))
    def plan_sends() -> list[int]:
        """Release the ``unknown`` rows an operator named, then one entry per send instance."""
        from airflow.sdk.exceptions import AirflowFailException

        from latam_messaging.sending.ledger import Ledger
        from latam_messaging.warehouse.db import open_warehouse

        params = get_current_context()["params"]
        asked = list(dict.fromkeys(params.get("release_unknown") or []))
        if asked:
            released = Ledger(open_warehouse(), vendor).release_unknown(asked, pendulum.now("UTC"))
            refused = [k for k in asked if k not in set(released)]
            print(f"released {len(released)} of {len(asked)} unknown row(s) back to pending, as asked")
            if refused:
                print(f"not released (not an 'unknown' {vendor} row): {', '.join(refused)}")
            if not released:
                raise AirflowFailException(
                    f"release_unknown: none of the {len(asked)} key(s) is an 'unknown' {vendor} row; nothing was "
                    "released or sent. Check the keys in outbound_messages (state = 'unknown')."
                )
        instances = params.get("send_instances") or VENDORS[vendor].adapter_class().instances
        print(f"sending with {instances} instance(s) sharing the pending rows through atomic claims")
        return list(range(instances))

    @task(
        outlets=[assets.changes(assets.OUTBOUND_MESSAGES)],
        retries=2,
        retry_delay=pendulum.duration(minutes=2),
        pool=VENDORS[vendor].pool,
    )
    def send_due(instance: int) -> dict[str, Any]:
        """Send pending rows (one of N mapped instances: each claims its own rows, so they never
        overlap). A retry never re-sends: rows in flight become 'unknown'."""
        from airflow.sdk.exceptions import AirflowFailException

        from latam_messaging.common.errors import VendorAuthError, VendorNoCreditsError
        from latam_messaging.sending.pipeline import dispatch, unknown_report
        from latam_messaging.warehouse.db import open_warehouse

        context = get_current_context()
        params = context["params"]
        warehouse = open_warehouse()
        adapter = VENDORS[vendor].adapter_class()()
        instances = params.get("send_instances") or adapter.instances
        rate = params.get("requests_per_second")
        rate = adapter.requests_per_s if rate is None else rate
        try:
            stats = dispatch(
                adapter,
                warehouse,
                concurrency=params.get("concurrency"),
                requests_per_s=rate / instances if rate else rate,  # each instance its share of the ceiling
                window=_window(vendor, params),
            )
        except (VendorNoCreditsError, VendorAuthError) as exc:
            # retrying cannot help; the rows not sent stay pending for the next run
            raise AirflowFailException(f"sending stopped: {exc}") from exc
        assets.emit_changes({assets.OUTBOUND_MESSAGES: stats.attempted + stats.marked_unknown}, context)
        unknown = unknown_report(warehouse, vendor)
        if unknown:
            print(f"{len(unknown)} row(s) are 'unknown' and wait for an operator or a callback, e.g. {unknown[:3]}")
        return {"instance": instance, **asdict(stats)}

    sent = send_due.expand(instance=plan_sends())
    ingest_drops() >> sent

    @task(trigger_rule="all_done", pool=VENDORS[vendor].pool)
    def reconcile_unknown() -> int:
        """Rows whose send outcome is unknown, looked up at the vendor where it can be (Wavy: by
        correlationId, our message_key). Runs whatever send_due did."""
        from latam_messaging.warehouse.db import open_warehouse

        spec = VENDORS[vendor]
        adapter = spec.adapter_class()()
        if not adapter.reconciles_unknown:
            print(f"{vendor} sends cannot be looked up by our key here: callbacks or an operator resolve them")
            return 0
        resolved = adapter.reconcile_unknown(open_warehouse(), spec.hook_class()())
        print(f"resolved {resolved} unknown row(s): {vendor} has them")
        return resolved

    @task(trigger_rule="one_failed", retries=0)
    def run_failed() -> None:
        """reconcile_unknown runs whatever send_due did, so the run's outcome is set here: this task
        runs (and fails the run) only when an upstream task failed."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed (see its log); unknown rows were reconciled anyway")

    reconciled = reconcile_unknown()
    sent >> reconciled
    [sent, reconciled] >> run_failed()
