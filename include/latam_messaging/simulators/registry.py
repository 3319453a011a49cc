"""The simulators by vendor name, with the vendor segment of their webhook receiver path."""

from __future__ import annotations

from latam_messaging.simulators.teleprom import TelepromSimulator

SIMULATORS = {
    "teleprom": (TelepromSimulator, "teleprom"),
}
