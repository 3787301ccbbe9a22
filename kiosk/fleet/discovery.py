"""Home Assistant MQTT discovery: one retained config message per sensor and button, so that a
kiosk shows up in Home Assistant as a device without any configuration there.

The sensors read the kiosk's own retained `state` JSON (value templates), the buttons publish to
its `cmd/<name>` topics; availability follows the kiosk's `availability` topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kiosk.config import KioskConfig
from kiosk.fleet.topics import Topics

# key in the state JSON → (Home Assistant component, name, extra fields)
SENSORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "queue_depth": ("sensor", "Cases waiting to upload", {"state_class": "measurement"}),
    "last_sync": ("sensor", "Last sync", {"device_class": "timestamp"}),
    "online": ("binary_sensor", "Reaches Firebase", {"device_class": "connectivity"}),
    "fps": ("sensor", "Camera frames per second", {"state_class": "measurement"}),
    "camera": ("sensor", "Camera", {}),
    "model_version": ("sensor", "Model version", {"entity_category": "diagnostic"}),
    # Above zero: someone wrote reviews or messages without the console's key (or the kiosk
    # lacks review_public_key); nothing of it is shown as the specialist's.
    "unverified_items": (
        "sensor",
        "Unverified specialist items",
        {"state_class": "measurement", "entity_category": "diagnostic"},
    ),
    "uptime_s": (
        "sensor",
        "Uptime",
        {"device_class": "duration", "unit_of_measurement": "s", "entity_category": "diagnostic"},
    ),
}
BUTTONS = {
    "sync_now": "Sync now",
    "reload_model": "Reload model",
    "restart_camera": "Restart camera",
}


def _node_id(kiosk_id: str) -> str:
    # Home Assistant accepts [a-zA-Z0-9_-] in a node id; kiosk ids may also contain '.'.
    return "skinscan_" + re.sub(r"[^A-Za-z0-9_-]", "_", kiosk_id)


def discovery_messages(config: KioskConfig, topics: Topics) -> Iterator[tuple[str, dict]]:
    """(topic, payload) for every entity of this kiosk; payloads are JSON-ready dicts."""
    node = _node_id(config.kiosk_id)
    prefix = config.mqtt.discovery_prefix.rstrip("/")
    device = {
        "identifiers": [node],
        "name": f"Skinscan {config.kiosk_id}",
        "manufacturer": "Skinscan",
        "model": "Screening kiosk",
    }
    common = {
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    for key, (component, name, extra) in SENSORS.items():
        payload = {
            "name": name,
            "unique_id": f"{node}_{key}",
            "state_topic": topics.state,
            **common,
            **extra,
        }
        if component == "binary_sensor":
            payload |= {
                "value_template": f"{{{{ 'ON' if value_json.{key} else 'OFF' }}}}",
            }
        else:
            payload["value_template"] = f"{{{{ value_json.{key} }}}}"
        yield f"{prefix}/{component}/{node}/{key}/config", payload
    for command, name in BUTTONS.items():
        payload = {
            "name": name,
            "unique_id": f"{node}_{command}",
            "command_topic": topics.cmd(command),
            "payload_press": "{}",
            **common,
        }
        yield f"{prefix}/button/{node}/{command}/config", payload
