"""The simulators by vendor name, with the vendor segment of their webhook receiver path."""

from __future__ import annotations

from latam_messaging.simulators.itd import ItdSimulator
from latam_messaging.simulators.teleprom import TelepromSimulator
from latam_messaging.simulators.wavy import WavySimulator

SIMULATORS = {
    "teleprom": (TelepromSimulator, "teleprom"),
    "itd": (ItdSimulator, "itd"),
    "wavy": (WavySimulator, "wavy"),
}
