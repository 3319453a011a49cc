"""Sends from a test's side: drops to send, the catalogue they need, a send adapter by vendor name,
waits on the simulator and the leases, and the count at the vendor that proves nothing went twice."""

from __future__ import annotations

import time

import pendulum
import sqlalchemy as sa

from tests.helpers.ledger import ledger_keys, states
from tests.helpers.simulators import sim_state
from tests.helpers.waiting import wait_until


def load_catalog(warehouse, teleprom_hook) -> None:
    from latam_messaging.teleprom.catalog import sync_catalog

    sync_catalog(warehouse, teleprom_hook.get_templates(), teleprom_hook.get_accounts())


def hsm_rows(n: int, start: int = 0) -> str:
    return "phone,template,param_1\n" + "".join(
        f"54935160{i:05d},shipping_confirmation,{i % 9 + 1}\n" for i in range(start, start + n)
    )


def wavy_rows(n: int, start: int = 0) -> str:
    return "phone,message\n" + "".join(f"55119876{i:05d},hola {i}\n" for i in range(start, start + n))


def adapter_for(vendor: str):
    """The vendor's send adapter by name (also what a killable sender process imports)."""
    try:  # the vendor registry, where each vendor package names its send adapter
        from latam_messaging.vendors import VENDORS
    except ImportError:
        from latam_messaging.sending import adapters

        return {"teleprom": adapters.TelepromAdapter, "itd": adapters.ItdAdapter}[vendor]()
    return VENDORS[vendor].adapter_class()()


def settled(server, quiet_s: float, timeout: float = 30.0) -> None:
    """Wait until the simulator has accepted nothing new for ``quiet_s`` (requests a killed run had sent
    are still being answered): a deadline wait on the simulator's own count."""
    seen = {"count": None, "since": time.monotonic()}

    def quiet() -> bool:
        count = sim_state(server)["accepted_messages"]
        if count != seen["count"]:
            seen.update(count=count, since=time.monotonic())
            return False
        return time.monotonic() - seen["since"] >= quiet_s

    wait_until(quiet, timeout=timeout, what=f"the simulator to accept nothing new for {quiet_s}s")


def wait_until_leases_lapse(warehouse, timeout: float = 30.0) -> None:
    """A killed dispatcher's lease stays until it expires (no clock is faked): wait for that."""
    from latam_messaging.warehouse import schema

    def lapsed() -> bool:
        until = warehouse.rows(sa.select(sa.func.max(schema.send_leases.c.lease_until).label("u")))[0]["u"]
        return until is None or until < pendulum.now("UTC")

    wait_until(lapsed, timeout=timeout, what="a send lease to lapse")


def assert_each_row_sent_once(warehouse, server, vendor: str, total: int) -> None:
    """Counted at the vendor: every ledger row accepted once, nothing sent twice, nothing extra."""
    state = sim_state(server)
    assert states(warehouse, vendor) == {"accepted": total}
    assert state["accepted_messages"] == total and state["duplicate_trackings"] == []
    assert {m["tracking"] for m in state["messages"]} == ledger_keys(warehouse, "accepted")
