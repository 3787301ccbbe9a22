"""What the kiosk tells its supervisors: MQTT status for the clinic and systemd's notify socket.

mqtt (availability as last will, retained state, events, commands) with discovery (Home
Assistant config topics); live_bridge turns live-pipeline snapshots into state; sdnotify speaks
READY/WATCHDOG/STOPPING; link ties them to a running command.
"""
