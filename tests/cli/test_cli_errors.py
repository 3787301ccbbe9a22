"""No traceback reaches a user, and awkward still pictures get a clear answer (issue 12).

Real `kiosk` processes, the shipped model, files made in a temp folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def kiosk(tmp_path: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        SKINSCAN_DATA_DIR=str(tmp_path / "data"),
        SKINSCAN_KIOSK_ID="k1",
        XDG_DATA_HOME=str(tmp_path / "xdg"),
    )
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "kiosk"]
    return subprocess.run(
        command if code else [*command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    # LiteRT's own C++ log line ("INFO: Created TensorFlow Lite XNNPACK delegate") is not ours.
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("INFO: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def skin(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(np.array([190, 140, 120]) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(
        np.uint8
    )


@pytest.mark.parametrize(("h", "w"), [(1, 1), (2, 2), (1, 5000), (40, 300)])
def test_tiny_pictures_are_refused_by_classify_as_by_case_add(tmp_path: Path, h: int, w: int):
    path = tmp_path / f"tiny_{w}x{h}.png"
    Image.fromarray(skin(h, w)).save(path)
    for args in (["classify", "--json", str(path)], ["case", "add", str(path)]):
        result = kiosk(tmp_path, *args)
        assert result.returncode == 1, result.stderr
        if args[0] == "classify":
            row = json.loads(result.stdout)
            assert "at least 64 pixels" in row["error"] and "label" not in row
        else:
            assert "at least 64 pixels" in one_line(result)


def test_grayscale_pictures_are_refused_not_called_other(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.open(sorted(SAMPLES.glob("*.jpg"))[0]).convert("L").save(gray)
    also_gray = tmp_path / "gray_as_rgb.jpg"
    Image.open(gray).convert("RGB").save(also_gray, quality=95)
    result = kiosk(tmp_path, "classify", "--json", str(gray), str(also_gray))
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all("no colour" in row["error"] for row in rows), rows


def test_a_file_name_that_is_not_utf8_is_escaped_in_the_json(tmp_path: Path) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg"
    shutil.copy(sorted(SAMPLES.glob("*.jpg"))[0], raw)
    result = kiosk(tmp_path, "classify", "--json", os.fsdecode(raw))
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["file"].endswith("caf\\xe9.jpg") and row["label"]


def test_config_and_data_dir_problems_are_one_line_exit_2(tmp_path: Path) -> None:
    named_dir = kiosk(tmp_path, "cases", "--config", str(tmp_path))
    assert named_dir.returncode == 2
    assert "is a directory, not a file" in one_line(named_dir)

    (tmp_path / "data").write_text("a file where the data directory should be")
    data_is_file = kiosk(tmp_path, "cases")
    assert data_is_file.returncode == 2
    assert "is a file, not a folder" in one_line(data_is_file)


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_crash_log(
    tmp_path: Path,
) -> None:
    code = (
        "import sys\n"
        "import kiosk.cli.cases as cases\n"
        "def broken(args):\n"
        "    raise RuntimeError('a bug')\n"
        "cases._run_list = broken\n"
        "from kiosk.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = kiosk(tmp_path, "cases", code=code)
    assert result.returncode == 2
    line = one_line(result)
    assert "unexpected RuntimeError in `kiosk cases`: a bug" in line
    log = tmp_path / "data" / "kiosk-errors.log"
    assert str(log) in line
    assert "Traceback" in log.read_text() and "a bug" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"
