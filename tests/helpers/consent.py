"""Consent in the warehouse, made by the consent code itself: suppressions of every source, files with
rows skipped at ingest and at claim, rows under a consent exemption (the reporting views' and the page's
tests count them)."""

from __future__ import annotations

import pendulum

from latam_messaging.warehouse import schema

FILE_ITD, FILE_WAVY = "a1" * 32, "b2" * 32
OPTED_OUT_CL, OPTED_OUT_BR, OPTED_IN_AR = "56961234567", "5511922222222", "5493513333333"
BLOCKED_WAVY, ENDED_MANUAL = "5511944444444", "5511955555555"
REGISTRY = ["5491100000001", "5491100000002", "5491100000003"]


def reply(vendor: str, message_id: str, phone: str, text: str, at: pendulum.DateTime) -> dict:
    return {"vendor": vendor, "vendor_message_id": message_id, "from_phone": phone, "text": text, "received_at": at}


def seed_consent(warehouse, day1: pendulum.DateTime) -> None:
    """Suppressions from every source, made by the consent code itself (the reasons are its own), a file
    per vendor with rows rejected at ingest and rows suppressed when claimed, and exempt rows.

    ``day1`` and the day after (``day2``): replies "Baja." (itd, Chile) and "SAIR" (wavy, Brazil); Wavy's opt-out status (scope wavy);
    a manual entry of scope sms. Day 2 (the files are claimed then): "¡baja!" (teleprom), "BAJA" again from the Chilean phone (already
    suppressed: nothing new), "ALTA" ending the teleprom one, "no gracias" (not a keyword), three
    registry phones, the manual entry removed."""
    from latam_messaging.consent import suppressions
    from latam_messaging.consent.keywords import DEFAULT_KEYWORDS, Keywords
    from latam_messaging.consent.replies import ConsentRules, read_replies
    from latam_messaging.consent.suppressions import Source, Suppression
    from latam_messaging.sending.ledger import Ledger, MessageState, SendOutcome

    day2 = day1.add(days=1)
    rules = ConsentRules(keywords=Keywords(DEFAULT_KEYWORDS))
    replies = [
        reply("itd", "in-1", OPTED_OUT_CL, "Baja.", day1),
        reply("wavy", "in-2", OPTED_OUT_BR, "SAIR", day1.add(minutes=5)),
        reply("teleprom", "in-3", OPTED_IN_AR, "¡baja! ", day2),
        reply("itd", "in-4", OPTED_OUT_CL, "BAJA", day2.add(minutes=1)),
        reply("teleprom", "in-5", OPTED_IN_AR, "ALTA", day2.add(hours=1)),
        reply("teleprom", "in-6", OPTED_IN_AR, "no gracias", day2.add(hours=2)),
    ]

    def item(phone, scope, source, evidence, since):
        return Suppression(phone, scope, source, evidence, since, created_by="test", reason="test")

    with warehouse.begin() as conn:
        outcome = read_replies(warehouse, conn, replies, rules, created_by="test", now=day2)
        assert (len(outcome.opt_outs), outcome.opt_ins) == (3, 1)
        added = suppressions.add(
            warehouse,
            conn,
            [
                item(BLOCKED_WAVY, "wavy", Source.VENDOR_STATUS, "message_status_events 17", day1),
                item(ENDED_MANUAL, "sms", Source.MANUAL, f"drop_files {'c3' * 32} row 1", day1),
                *(
                    item(p, suppressions.ALL, Source.registry("no_llame"), f"row {n}", day2)
                    for n, p in enumerate(REGISTRY)
                ),
            ],
            day2,
        )
        assert len(added) == 5
        assert suppressions.end(conn, ENDED_MANUAL, sources=[Source.MANUAL], at=day2, by="test", evidence="row 2") == 1

        # the files: ITD's rejects its opted-out phone and one registry phone at ingest (and a bad phone)
        files = [(FILE_ITD, "itd", "itd_whatsapp", "/drops/itd_whatsapp/archive/campaña (1) 'x' <b>.csv")]
        files.append((FILE_WAVY, "wavy", "wavy_sms", "/drops/wavy_sms/archive/otp.csv"))
        conn.execute(
            schema.drop_files.insert(),
            [
                {
                    "file_sha256": sha,
                    "vendor": v,
                    "folder": f,
                    "path": p,
                    "rows_total": 9,
                    "state": "done",
                    "claimed_at": day2,
                }
                for sha, v, f, p in files
            ],
        )
        blocked = suppressions.screen(
            conn, [OPTED_OUT_CL, REGISTRY[0], "56977777777"], suppressions.scopes_of("itd", "whatsapp")
        )
        assert set(blocked) == {OPTED_OUT_CL, REGISTRY[0]}
        rejects = [(1, blocked[OPTED_OUT_CL]), (2, blocked[REGISTRY[0]]), (3, "phone missing")]
        conn.execute(
            schema.drop_rejects.insert(),
            [
                {"file_sha256": FILE_ITD, "row_number": n, "reason": r, "raw_row": "{}", "rejected_at": day2}
                for n, r in rejects
            ],
        )
        pending = [
            # itd: a registry phone (suppressed at claim), a clean one, a phone suppressed for wavy only
            ("k-itd-1", "itd", REGISTRY[1], FILE_ITD, None),
            ("k-itd-2", "itd", "56977777777", FILE_ITD, None),
            ("k-itd-3", "itd", BLOCKED_WAVY, FILE_ITD, None),
            # wavy: Wavy's opt-out status, the Brazilian reply, the ended manual entry, the re-opted-in phone,
            # and an exempt row to the opted-out Brazilian phone
            ("k-wavy-1", "wavy", BLOCKED_WAVY, FILE_WAVY, None),
            ("k-wavy-2", "wavy", OPTED_OUT_BR, FILE_WAVY, None),
            ("k-wavy-3", "wavy", ENDED_MANUAL, FILE_WAVY, None),
            ("k-wavy-4", "wavy", OPTED_IN_AR, FILE_WAVY, None),
            ("k-wavy-5", "wavy", OPTED_OUT_BR, FILE_WAVY, "run manual__1 by ops: OTP codes are transactional"),
            # an opt-out confirmation (no file), exempt
            ("k-wavy-6", "wavy", OPTED_OUT_BR, None, "opt-out confirmation"),
        ]
        conn.execute(
            schema.outbound_messages.insert(),
            [
                {
                    "message_key": key,
                    "vendor": vendor,
                    "phone": phone,
                    "file_sha256": sha,
                    "consent_exempt": exempt,
                    "state": "pending",
                    "created_at": day2,
                    "updated_at": day2,
                }
                for key, vendor, phone, sha, exempt in pending
            ],
        )
    itd, wavy = Ledger(warehouse, "itd", "whatsapp"), Ledger(warehouse, "wavy", "sms")
    claimed_itd, claimed_wavy = itd.claim("run-itd", 100), wavy.claim("run-wavy", 100)
    assert (claimed_itd.suppressed, claimed_wavy.suppressed) == (1, 2)
    assert [r.message_key for r in claimed_wavy] == ["k-wavy-3", "k-wavy-4", "k-wavy-5", "k-wavy-6"]
    wavy.record(
        [
            SendOutcome("k-wavy-5", MessageState.ACCEPTED, vendor_message_id="w-5"),
            SendOutcome("k-wavy-6", MessageState.REJECTED, vendor_answer="refused"),
        ],
        day2,
        "run-wavy",
    )
