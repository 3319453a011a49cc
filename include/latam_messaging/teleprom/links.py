"""Links of a Teleprom campaign's template parameters, shortened per campaign (``api/Shortener``), and
the clicks Teleprom counts on them (``ExportDataClicks``), in ``short_links``.

**Opt-in.** Only when connection ``teleprom_default`` has the extra ``shorten_links`` = true: a link the
sender wrote is replaced by one of Teleprom's only when asked.

**Where.** At ingest, before a chunk of a file's rows is staged (``SendAdapter.prepare_rows``): the rows
enter the ledger already carrying the short URL, so a send never waits for the shortener and never
carries a link other than the one the ledger shows; a file is ingested by one run only (its fingerprint
is claimed), and the links of a re-read file (a run killed mid-file) are found in ``short_links``.

**Once per (campaign, URL).** Each distinct http(s) URL is looked up in ``short_links`` first; a missing
one is shortened and inserted on conflict do nothing, then read back: when two runs race, both use the
row that won (the loser's short link at the vendor goes unused).

**Never loses a row.** A shortener failure leaves the long URL in the rows (logged by the link's hash,
never the URL: it may carry a customer's token); after :data:`MAX_FAILURES` failures in a row the rest of
the chunk keeps its long URLs too, so a shortener outage costs one timeout per link at most three times.

**Clicks.** :func:`import_clicks` sets ``clicks``/``clicks_updated_at`` of our rows from the export, by
short URL (absolute counts: a re-run changes nothing); links we did not make are counted and ignored.
Teleprom answers the same short URL for the same long URL, so two campaigns sending one URL share its
link, and each shows the link's total.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa

from latam_messaging.teleprom.models import LinkClicks
from latam_messaging.warehouse import schema
from latam_messaging.warehouse.db import Warehouse

log = logging.getLogger(__name__)
LINKS = schema.short_links
VENDOR = "teleprom"
#: An http(s) URL inside a parameter; trailing punctuation of the sentence around it is not part of it.
URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
TRAILING = ".,;:!?)]}'\""
#: Consecutive shortener failures after which the rest of a chunk keeps its long URLs.
MAX_FAILURES = 3


def url_sha256(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def urls_in(text: str) -> list[str]:
    """The http(s) URLs in ``text``, in order."""
    return [match.rstrip(TRAILING) for match in URL.findall(text)]


def _replace(text: str, short: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        found = match.group(0)
        url = found.rstrip(TRAILING)
        return short.get(url, url) + found[len(url) :]

    return URL.sub(one, text)


@dataclass
class ShortenStats:
    urls: int = 0
    reused: int = 0
    shortened: int = 0
    failed: int = 0


def _known(warehouse: Warehouse, campaign_id: str, urls: Iterable[str]) -> dict[str, str]:
    by_hash = {url_sha256(u): u for u in urls}
    found: dict[str, str] = {}
    hashes = sorted(by_hash)
    with warehouse.engine.connect() as conn:
        for start in range(0, len(hashes), 500):
            query = sa.select(LINKS.c.url_sha256, LINKS.c.short_url).where(
                LINKS.c.campaign_id == campaign_id, LINKS.c.url_sha256.in_(hashes[start : start + 500])
            )
            for digest, short in conn.execute(query):
                found[by_hash[digest]] = short
    return found


def _keep(warehouse: Warehouse, campaign_id: str, url: str, short: str, now: pendulum.DateTime) -> str:
    """Insert (campaign, url) → short unless a row is there; the row that stands is the answer."""
    digest = url_sha256(url)
    row = {
        "campaign_id": campaign_id,
        "url_sha256": digest,
        "vendor": VENDOR,
        "long_url": url,
        "short_url": short,
        "created_at": now,
        "clicks": 0,
    }
    with warehouse.begin() as conn:
        conn.execute(warehouse.insert(LINKS).on_conflict_do_nothing(index_elements=["campaign_id", "url_sha256"]), row)
        return conn.execute(
            sa.select(LINKS.c.short_url).where(LINKS.c.campaign_id == campaign_id, LINKS.c.url_sha256 == digest)
        ).scalar_one()


def shorten_rows(
    warehouse: Warehouse,
    hook: Any,
    campaign_id: str,
    rows: Sequence[dict[str, Any]],
    now: pendulum.DateTime | None = None,
) -> ShortenStats:
    """Replace each http(s) URL in the rows' ``params`` by the campaign's short link for it (made through
    ``hook.shorten`` once per campaign and URL), in place. Rows whose link could not be shortened keep it."""
    now = now or pendulum.now("UTC")
    stats = ShortenStats()
    wanted = list(
        dict.fromkeys(u for row in rows for p in row.get("params") or [] if isinstance(p, str) for u in urls_in(p))
    )
    stats.urls = len(wanted)
    if not wanted:
        return stats
    short = _known(warehouse, campaign_id, wanted)
    stats.reused = len(short)
    in_a_row = 0
    for url in wanted:
        if url in short:
            continue
        if in_a_row >= MAX_FAILURES:
            stats.failed += 1
            continue
        try:
            made = hook.shorten(url)
        except Exception as exc:  # noqa: BLE001 - the long URL stays: a send never waits on the shortener
            in_a_row += 1
            stats.failed += 1
            log.warning(
                "link %s of campaign %s not shortened (%s): the long URL is sent",
                url_sha256(url)[:12],
                campaign_id,
                type(exc).__name__,
            )
            continue
        in_a_row = 0
        short[url] = _keep(warehouse, campaign_id, url, made, now)
        stats.shortened += 1
    for row in rows:
        params = row.get("params")
        if params:
            row["params"] = [_replace(p, short) if isinstance(p, str) else p for p in params]
    if stats.failed:
        log.warning("campaign %s: %d of %d link(s) not shortened", campaign_id, stats.failed, stats.urls)
    return stats


@dataclass
class ClickImport:
    updated: int = 0
    ignored: int = 0


def import_clicks(
    warehouse: Warehouse, links: Sequence[LinkClicks], now: pendulum.DateTime | None = None
) -> ClickImport:
    """Set ``clicks`` and ``clicks_updated_at`` of our Teleprom short links from ``links`` (the click
    export), in one transaction. A link we did not make is counted in ``ignored``, nothing else."""
    now = now or pendulum.now("UTC")
    stats = ClickImport()
    with warehouse.begin() as conn:
        ours = set(conn.execute(sa.select(LINKS.c.short_url).where(LINKS.c.vendor == VENDOR).distinct()).scalars())
        counts: dict[str, int] = {}
        for link in links:
            if link.short_url in ours:
                counts[link.short_url] = max(link.clicks, counts.get(link.short_url, 0))
            else:
                stats.ignored += 1
        if counts:
            update = (
                LINKS.update()
                .where(LINKS.c.vendor == VENDOR, LINKS.c.short_url == sa.bindparam("link"))
                .values(clicks=sa.bindparam("count"), clicks_updated_at=now)
            )
            conn.execute(update, [{"link": k, "count": v} for k, v in counts.items()])
        stats.updated = len(counts)
    if stats.ignored:
        log.info("%d link(s) of Teleprom's click export are not ours: ignored", stats.ignored)
    return stats
