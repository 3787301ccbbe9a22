"""MQTT topic names of one kiosk process, under `<topic_prefix>/<kiosk_id>[/<component>]`.

Shared by the client (mqtt) and the Home Assistant discovery messages (discovery), which both
need the names but not each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.config import KioskConfig

MAIN_COMPONENT = "kiosk"


@dataclass(frozen=True)
class Topics:
    base: str  # <prefix>/<kiosk_id>[/<component>]

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def cmd_result(self) -> str:
        return f"{self.base}/cmd_result"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"


def topics_for(config: KioskConfig, component: str = MAIN_COMPONENT) -> Topics:
    base = f"{config.mqtt.topic_prefix.rstrip('/')}/{config.kiosk_id}"
    return Topics(base if component == MAIN_COMPONENT else f"{base}/{component}")
