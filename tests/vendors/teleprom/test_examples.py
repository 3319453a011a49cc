"""Teleprom: every documented example of ``tests/fixtures/vendor_docs/teleprom/`` (byte-identical
copies of the document's examples) through the real hook:

* answers: served verbatim by a canned HTTP server and decoded by the hook;
* requests: what the hook sends compared with the printed request.

Expected values are written out from the documents here, never computed with the code under test.
The completeness test and the callbacks are in ``tests/vendors/test_examples.py``.
"""

from __future__ import annotations

import pendulum

from latam_messaging.teleprom.hook import _Token


# ---- Teleprom answers ------------------------------------------------------------------------------
def test_teleprom_auth_answers(canned_teleprom):
    canned, hook = canned_teleprom
    canned.answer("teleprom/auth_200.json")
    token = hook.login()
    assert token.value == "****"
    assert token.expires_at == pendulum.datetime(2022, 5, 6, 17, 35, 25, 172388, tz="UTC")  # -03:00 kept
    canned.answer("teleprom/simswap_auth_200.json")  # no passwordState: accepted
    token = hook.login()
    assert token.value == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."
    assert canned.requests[-1] == ("POST", "/Auth", {"username": "u", "password": "p"})


def test_teleprom_catalogue_answers(canned_teleprom):
    canned, hook = canned_teleprom
    canned.answer("teleprom/get_all_ruteos_200.json")
    hook.login = lambda: _Token("t", pendulum.now("UTC").add(hours=1))  # logged in already
    [account] = hook.get_accounts()
    assert (account.account_id, account.name, account.source_number) == (39, "MaytenCloud", "5493513582830")
    canned.answer("teleprom/get_templates_200.json")
    [template] = hook.get_templates()
    assert (template.template_id, template.name, template.account_id) == (24, "shipping_confirmation", 39)
    assert (template.status, template.category, template.language, template.parameter_count) == (
        "Accepted",
        "SHIPPING_UPDATE",
        "es",
        1,
    )
    assert template.structure.startswith("Your package has been shipped. It will be delivered in {{1}} business days.")
