"""The staff accounts file under writers in several processes (the console's workers signing
people out, `skinscan-cloud add-user`): no process may write back a copy that misses another's
change. Real processes, started together; no emulator needed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cloud.console.accounts import StaffAccounts
from tests.cloud_helpers import CLOUD_CLI

PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parents[2]

# One writer: waits until every writer is ready (so they really overlap), then does its part.
# `add:N` adds N users of its own; `revoke:N` signs the shared user out N times; `revoke-until`
# signs out until the stop file appears, and reports how many times it did.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cloud.console.accounts import StaffAccounts

    users, me, job, ready, go = sys.argv[1:6]
    accounts = StaffAccounts(Path(users))
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.001)
    kind, _, count = job.partition(":")
    if kind == "add":
        for i in range(int(count)):
            accounts.add(f"{me}-{i}", "correct horse battery", f"Dr {me} {i}")
    elif kind == "revoke":
        for _ in range(int(count)):
            accounts.revoke_sessions("shared")
    else:
        done = 0
        while not Path(count).exists():
            accounts.revoke_sessions("shared")
            done += 1
        print(done)
    """
)


def _start_writers(tmp_path: Path, users: Path, jobs: list[str]) -> list[subprocess.Popen]:
    go = tmp_path / "go"
    procs = []
    for n, job in enumerate(jobs):
        ready = tmp_path / f"ready-{n}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(users), f"w{n}", job, str(ready), str(go)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in range(len(jobs))):
        assert time.monotonic() < deadline, "writers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    return procs


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(out)
    return outputs


def _entries(users: Path) -> dict[str, dict]:
    return json.loads(users.read_text())


def _shared_user(users: Path) -> None:
    StaffAccounts(users).add("shared", PASSWORD, "Dr Shared")
    assert _entries(users)["shared"]["generation"] == 0


def test_users_added_by_processes_at_once_are_all_kept(tmp_path):
    users = tmp_path / "state" / "staff.json"
    writers, each = 6, 3
    _finish(_start_writers(tmp_path, users, [f"add:{each}"] * writers))
    assert sorted(_entries(users)) == sorted(
        f"w{n}-{i}" for n in range(writers) for i in range(each)
    )
    accounts = StaffAccounts(users)
    assert accounts.verify("w5-2", PASSWORD).name == "Dr w5 2"


def test_sign_outs_by_processes_at_once_all_count(tmp_path):
    users = tmp_path / "staff.json"
    _shared_user(users)
    writers, each = 4, 60
    _finish(_start_writers(tmp_path, users, [f"revoke:{each}"] * writers))
    assert _entries(users)["shared"]["generation"] == writers * each


def test_add_user_from_the_command_line_while_the_console_signs_people_out(tmp_path):
    state = tmp_path / "state"
    users = state / "staff.json"
    _shared_user(users)
    stop = tmp_path / "stop"
    procs = _start_writers(tmp_path, users, [f"revoke-until:{stop}"] * 2)
    env = {**os.environ, "SKINSCAN_CLOUD_STATE_DIR": str(state)}
    added = [f"new.{i}" for i in range(4)]
    try:
        for name in added:
            result = subprocess.run(
                [str(CLOUD_CLI), "add-user", name, "--password-stdin"],
                input=PASSWORD + "\n",
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
    finally:
        stop.touch()
    revoked = sum(int(out) for out in _finish(procs))
    entries = _entries(users)
    assert set(added) <= set(entries)
    assert entries["shared"]["generation"] == revoked


def test_the_lock_file_sits_beside_the_accounts_file_and_both_are_private(tmp_path):
    users = tmp_path / "state" / "staff.json"
    accounts = StaffAccounts(users)
    accounts.add("dr.a", PASSWORD, "Dr A")
    accounts.revoke_sessions("dr.a")
    assert accounts.lock_path == tmp_path / "state" / "staff.json.lock"
    for path in (users, accounts.lock_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in users.parent.iterdir()) == ["staff.json", "staff.json.lock"]
    assert accounts.get("dr.a").generation == 1
