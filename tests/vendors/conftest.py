"""Fixtures of the vendors' tests: a canned vendor (answers what a document prints) behind each vendor's hook."""

from __future__ import annotations

import pytest

from latam_messaging.itd.hook import ItdHook
from latam_messaging.teleprom.hook import TelepromHook
from tests.helpers.connections import set_connection
from tests.helpers.vendor_docs import CannedVendor


@pytest.fixture
def canned():
    vendor = CannedVendor()
    yield vendor
    vendor.close()


@pytest.fixture
def canned_itd(canned, monkeypatch):
    set_connection(monkeypatch, "itd_default", conn_type="itd_chile", host=canned.url, password="itd-demo-token")
    hook = ItdHook()
    hook.backoff_initial_s = hook.backoff_max_s = 0.001
    yield canned, hook
    hook.close()


@pytest.fixture
def canned_teleprom(canned, monkeypatch):
    set_connection(monkeypatch, "teleprom_default", conn_type="teleprom", host=canned.url, login="u", password="p")
    TelepromHook.forget_tokens()
    hook = TelepromHook()
    yield canned, hook
    hook.close()
    TelepromHook.forget_tokens()
