"""The live path: camera frames in, a smoothed verdict out.

camera (FrameSource: picamera2, OpenCV, replay) → frames (Frame) → vision (guide box crop,
quality gate, dermoscope detection) → the model (kiosk.model) → triage (smoothing over frames,
abstain, urgency, advice) → Verdict. pipeline runs that loop on its own thread and hands out
snapshots; imaging holds the image decoding and resizing that still pictures share with it.
"""
