"""`kiosk scan` (the live loop, headless) and `kiosk bench` (its measured cost).

`scan --headless` prints one JSON line each time the verdict changes and a summary at the end.
`bench` runs the same loop on the demo clip as fast as it goes and reports the median cost of
each stage next to the bare interpreter invoke of the int8 and float models; cold start and
peak memory come from a separate `kiosk scan` process, so they are what a kiosk pays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from kiosk.cli.common import (
    add_config_argument,
    add_model_argument,
    add_source_arguments,
    add_threads_argument,
    default_lens,
    positive_int,
)
from kiosk.errors import CameraError, ModelError, RuntimeUnavailableError

HEADLESS_POLL_S = 0.02


def build_pipeline(args: argparse.Namespace, config: Any = None):
    from kiosk.cases.model_updates import open_active_classifier
    from kiosk.config import KioskConfig
    from kiosk.live.camera import resilient_source
    from kiosk.live.pipeline import LivePipeline
    from kiosk.live.triage import Triage

    # The installed release (what `kiosk run` scans with), unless --model says otherwise.
    classifier, _ = open_active_classifier(
        config or KioskConfig(), getattr(args, "model", None), num_threads=args.threads
    )
    source = resilient_source(args.source, fps=args.fps or None)
    lens = getattr(args, "lens", None) or default_lens(args.source)
    return LivePipeline(source, classifier, Triage(classifier.thresholds), lens=lens)


def _verdict_line(snapshot, started: float) -> dict[str, Any]:
    v = snapshot.verdict
    row: dict[str, Any] = {"t": round(time.monotonic() - started, 3)}
    if v is None or v.decision is None:
        row |= {"label": None, "confidence": None, "urgency": None, "abstained": None}
    else:
        row |= {
            "label": v.label,
            "confidence": round(v.confidence, 4),
            "urgency": str(v.urgency),
            "abstained": v.abstained,
        }
    row |= {
        "stable": bool(v and v.stable and not v.quality),  # a rejected frame is never steady
        "quality": list(v.quality) if v else [],
        "hints": list(snapshot.hints),
        "camera": snapshot.source.state,
    }
    return row


def run_headless(pipeline, frames: int | None, out=sys.stdout, observers=()) -> dict[str, Any]:
    """Print verdict changes until `frames` frames were processed (None: until interrupted).
    Each of `observers` (callables) sees every snapshot: the systemd watchdog, telemetry."""
    started = time.monotonic()
    last_key = None
    snapshot = pipeline.snapshot()
    try:
        with pipeline:
            while frames is None or snapshot.frames_seen < frames:
                time.sleep(HEADLESS_POLL_S)
                snapshot = pipeline.snapshot()
                for observe in observers:
                    observe(snapshot)
                row = _verdict_line(snapshot, started)
                key = tuple((k, str(v)) for k, v in row.items() if k not in ("t", "confidence"))
                if key != last_key:
                    print(json.dumps(row), file=out, flush=True)
                    last_key = key
    except KeyboardInterrupt:
        pass
    elapsed = time.monotonic() - started
    final = _verdict_line(snapshot, started)
    return {
        "summary": {
            "frames": snapshot.frames_seen,
            "gated": snapshot.frames_gated,
            "dropped": pipeline.dropped_frames,
            "seconds": round(elapsed, 3),
            "fps": round(snapshot.frames_seen / elapsed, 2) if elapsed else None,
            "final": {k: final[k] for k in ("label", "confidence", "urgency", "abstained")},
            "stable": final["stable"],
            "stage_ms": {k: round(v, 3) for k, v in pipeline.times.medians().items()},
        }
    }


# --------------------------------------------------------------------------- scan


def scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--headless", action="store_true", help="no screen: print JSON lines")
    add_source_arguments(parser)
    parser.add_argument("--frames", type=int, default=None, help="stop after N frames")
    parser.add_argument(
        "--lens",
        choices=("auto", "dermoscopic", "clinical", "off"),
        help="dermoscope lens: detect it (auto; default for cameras), say it is on or off, or "
        "never ask (off; default for replays)",
    )
    add_model_argument(parser)
    add_threads_argument(parser)
    add_config_argument(parser)


def run_scan(args: argparse.Namespace) -> int:
    from kiosk.config import ConfigError, load_config
    from kiosk.fleet.link import FleetLink

    if not args.headless:  # the touchscreen kiosk, as `kiosk run`
        from kiosk.ui.launch import run_ui

        return run_ui(args)
    try:
        config = load_config(args.config)
        pipeline = build_pipeline(args, config)
    except (ConfigError, ModelError, RuntimeUnavailableError, CameraError) as e:
        print(f"kiosk: error: {e}", file=sys.stderr)
        return 2
    # systemd (READY / WATCHDOG while frames flow) and MQTT, each a no-op when not configured.
    with FleetLink(config, pipeline) as fleet:
        summary = run_headless(pipeline, args.frames, observers=fleet.observers)
    summary["summary"]["model_version"] = pipeline.classifier.metadata.version  # which ran
    print(json.dumps(summary), flush=True)
    return 0


# --------------------------------------------------------------------------- bench


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--frames", type=int, default=300, help="frames through the live loop")
    parser.add_argument(
        "--fps",
        type=float,
        default=30.0,
        help="replay rate (a camera's; 0: as fast as decoding goes, which then competes with "
        "the model for the CPU)",
    )
    parser.add_argument("--invokes", type=int, default=100, help="bare invokes per model")
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="bare-invoke and in-loop measurements, interleaved; medians are reported",
    )
    add_threads_argument(parser)
    add_model_argument(parser)


def _median_invoke_ms(classifier, image, n: int) -> float:
    for _ in range(5):  # warm-up: first invokes allocate and pack weights
        classifier.predict(image)
    return statistics.median(classifier.predict(image).invoke_ms for _ in range(n))


def _capture_ms(n: int) -> float:
    """Decode cost of the demo clip per frame, alone (the capture thread's work)."""
    from kiosk.live.camera import ReplaySource, demo_clip_path

    source = ReplaySource(demo_clip_path(), fps=None)
    source.open()
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            source.read()
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        source.close()
    return statistics.median(times)


def _cold_start(args: argparse.Namespace, frames: int = 60) -> dict[str, float]:
    """A fresh `kiosk scan` process: seconds to its first verdict, and its peak memory."""
    cmd = [
        sys.executable,
        "-m",
        "kiosk",
        "scan",
        "--headless",
        "--source",
        "demo",
        "--fps",
        "0",
        "--frames",
        str(frames),
        "--threads",
        str(args.threads),
    ]
    if args.model:
        cmd += ["--model", args.model]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first_verdict = None
    assert proc.stdout is not None
    for line in proc.stdout:
        row = json.loads(line)
        if first_verdict is None and row.get("label") is not None:
            first_verdict = time.monotonic() - started
    if proc.wait() != 0 or first_verdict is None:
        raise RuntimeError(f"cold-start run failed: {' '.join(cmd)}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {"cold_start_s": first_verdict, "peak_rss_mb": peak_kb / 1024}


def _predecoded_frame_ms(pipeline, frames) -> dict[str, float]:
    """The same per-frame work on frames decoded beforehand, on this thread: no replay decode
    competes for the CPU (a camera's frames come from its ISP, not the CPU)."""
    from kiosk.live.pipeline import StageTimes

    pipeline.times = StageTimes()
    pipeline.reset()
    for frame in frames:
        pipeline.process(frame)
    return pipeline.times.medians()


def _clip_frames(n: int) -> list:
    from kiosk.live.camera import ReplaySource, demo_clip_path

    source = ReplaySource(demo_clip_path(), fps=None)
    source.open()
    try:
        return [source.read() for _ in range(n)]
    finally:
        source.close()


def run_bench(args: argparse.Namespace) -> int:
    import numpy as np

    from kiosk.live.camera import ReplaySource, ResilientSource, demo_clip_path
    from kiosk.live.pipeline import LivePipeline
    from kiosk.live.triage import Triage
    from kiosk.model.classifier import Classifier

    try:
        int8 = Classifier.open(args.model, num_threads=args.threads)
        flt = Classifier(int8.metadata, "float", num_threads=args.threads)
    except (ModelError, RuntimeUnavailableError) as e:
        print(f"kiosk: error: {e}", file=sys.stderr)
        return 2
    side = int8.input_side
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    clip = str(demo_clip_path())
    fps = args.fps or None
    decoded = _clip_frames(args.frames)

    # Rounds interleave the bare invokes with the loop, so a neighbour's load on a shared
    # machine falls on both sides of the ratio; medians of the rounds are reported.
    rounds: list[dict[str, Any]] = []
    pipeline = None
    for _ in range(args.rounds):
        invoke_ms = _median_invoke_ms(int8, image, args.invokes)
        float_invoke_ms = _median_invoke_ms(flt, image, args.invokes)
        source = ResilientSource(lambda: ReplaySource(clip, fps=fps), name="bench")
        # Lens off, as the demo clip runs (cropped like a still; no dermoscope look-ups).
        pipeline = LivePipeline(source, int8, Triage(int8.thresholds), lens="off")
        with open(os.devnull, "w") as quiet:  # noqa: PTH123 - a device, not a project file
            summary = run_headless(pipeline, args.frames, out=quiet)["summary"]
        stages = pipeline.times.medians()
        still = _predecoded_frame_ms(pipeline, decoded)
        rounds.append(
            {
                "invoke_ms": invoke_ms,
                "float_invoke_ms": float_invoke_ms,
                "stages": stages,
                "predecoded": still,
                "summary": summary,
            }
        )
    assert pipeline is not None

    def med(get) -> float:
        values = [v for v in (get(r) for r in rounds) if v is not None]
        return statistics.median(values) if values else float("nan")

    invoke_ms = med(lambda r: r["invoke_ms"])
    float_invoke_ms = med(lambda r: r["float_invoke_ms"])
    frame_ms = med(lambda r: r["stages"].get("frame"))
    frame_predecoded_ms = med(lambda r: r["predecoded"].get("frame"))
    keys = {k for r in rounds for k in r["stages"]}
    stages = {k: med(lambda r, k=k: r["stages"].get(k)) for k in sorted(keys)}
    stages["capture"] = _capture_ms(min(args.frames, 100))
    gap = frame_ms - invoke_ms
    summary = rounds[-1]["summary"]
    from kiosk.ui.bench import ui_frame_ms

    ui_ms = ui_frame_ms(pipeline.snapshot())  # the touchscreen's Scan screen, drawn offscreen
    cold = _cold_start(args)
    result = {
        "frame_ms": frame_ms,
        "invoke_ms": invoke_ms,
        "float_invoke_ms": float_invoke_ms,
        "frame_over_invoke": frame_ms / invoke_ms,
        # The same frames decoded beforehand: what the loop costs when no replay decode runs
        # beside it, and the share of the frame-vs-invoke gap the replay's decoding makes.
        "frame_predecoded_ms": frame_predecoded_ms,
        "frame_predecoded_over_invoke": frame_predecoded_ms / invoke_ms,
        "replay_share_of_gap": (frame_ms - frame_predecoded_ms) / gap if gap > 0 else 0.0,
        "rounds": args.rounds,
        "frame_ms_rounds": [r["stages"].get("frame") for r in rounds],
        "invoke_ms_rounds": [r["invoke_ms"] for r in rounds],
        "ui_frame_ms": ui_ms,
        "float_over_int8": float_invoke_ms / invoke_ms,
        "fps": summary["fps"],
        "frames": summary["frames"],
        "gated": summary["gated"],
        "stage_ms": stages,
        "threads": args.threads,
        "runtime": int8.runtime,
        **cold,
    }
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for key in (
            "frame_ms",
            "invoke_ms",
            "float_invoke_ms",
            "frame_over_invoke",
            "frame_predecoded_ms",
            "frame_predecoded_over_invoke",
            "replay_share_of_gap",
            "ui_frame_ms",
            "float_over_int8",
            "fps",
            "cold_start_s",
            "peak_rss_mb",
        ):
            print(f"{key:18s} {result[key]:10.3f}")
        print("stage medians (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    return 0
