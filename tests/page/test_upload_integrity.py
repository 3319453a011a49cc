"""The bytes previewed and confirmed are the bytes uploaded, whatever already lies in the uploads folder
(review of issue 24): a stale file or a symlink planted under a campaign's upload name is replaced, never
read, linked into a drop folder or sent."""

from __future__ import annotations

import hashlib

import pytest

from latam_messaging.campaigns.records import campaign_id_of
from latam_messaging.page import actions

API = "/messaging/api"
UPLOADED = "phone,message\n5511987650001,hola 1\n5511987650002,hola 2\n"
PLANTED = "phone,message\n" + "".join(f"55119876599{i:02d},otra cosa\n" for i in range(5))


def bearer() -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="someone", role="admin"))
    return {"Authorization": f"Bearer {jwt}"}


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_what_lies_under_the_upload_name_is_not_what_gets_sent(page_api, warehouse, drop_dir, tmp_path, triggered, planted):
    """A leftover with other bytes (a kill, a hand) would be previewed and confirmed in place of the
    upload; a symlink would make the preview fail. Either is replaced by the uploaded bytes."""
    sha = hashlib.sha256(UPLOADED.encode()).hexdigest()
    campaign_id = campaign_id_of(sha)
    uploads = drop_dir / "_uploads"
    uploads.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text(PLANTED)
    if planted == "symlink":
        (uploads / f"{campaign_id}.csv").symlink_to(elsewhere)
    else:
        (uploads / f"{campaign_id}.csv").write_text(PLANTED)

    answer = page_api.post(
        f"{API}/uploads",
        data={"folder": "wavy_sms"},
        files={"file": ("list.csv", UPLOADED.encode(), "text/csv")},
        headers=bearer(),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["campaign_id"] == campaign_id
    assert answer.json()["preview"]["rows_total"] == 2  # the uploaded file's rows, not the planted one's

    confirmed = page_api.post(f"{API}/campaigns/{campaign_id}/confirm", headers=bearer())
    assert confirmed.status_code == 200, confirmed.text
    dropped = drop_dir / "wavy_sms" / actions.DROP_NAME.format(campaign_id=campaign_id)
    assert not dropped.is_symlink()
    assert hashlib.sha256(dropped.read_bytes()).hexdigest() == sha
    assert elsewhere.read_text() == PLANTED
