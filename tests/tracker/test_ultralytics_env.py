"""configure_ultralytics: offline, no run-time installs, settings kept out of the user's home.

Each case runs in a fresh interpreter: Ultralytics reads its switches once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHECK = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from pathlib import Path
    from actwatch.tracker.ultralytics_env import configure_ultralytics

    calls = []
    def no_subprocess(*args, **kwargs):
        calls.append(args)
        raise AssertionError("ultralytics tried to run a subprocess (pip install?)")

    if sys.argv[1] == "import-late":
        import ultralytics  # imported before configuration, e.g. by a notebook
    cfg = configure_ultralytics(Path(sys.argv[2]))
    import ultralytics.utils as uu
    import ultralytics.utils.checks as checks
    from ultralytics.utils.events import events
    subprocess.check_output = no_subprocess
    subprocess.run = no_subprocess
    ok = checks.check_requirements("actwatch-surely-missing-package-xyz>=1.0")
    print(json.dumps({
        "settings_file": str(uu.SETTINGS.file),
        "online": uu.ONLINE,
        "checks_online": checks.ONLINE,
        "autoinstall": checks.AUTOINSTALL,
        "events_enabled": events.enabled,
        "requirements_ok": ok,
        "subprocess_calls": len(calls),
        "cfg": str(cfg),
    }))
    """
)


def _run(mode: str, tmp_path: Path) -> dict[str, object]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "ULTRALYTICS_", "XDG_", "PYTEST_"))}
    env["HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, mode, str(tmp_path / "cfg")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["home_files"] = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    return result


def test_configured_before_import(tmp_path: Path) -> None:
    r = _run("configure-first", tmp_path)
    assert r["settings_file"] == str(tmp_path / "cfg" / "Ultralytics" / "settings.json")
    assert (tmp_path / "cfg" / "Ultralytics" / "settings.json").is_file()
    assert r["home_files"] == []  # nothing written under the user's home
    assert r["online"] is False and r["autoinstall"] is False and r["events_enabled"] is False
    assert r["requirements_ok"] is True and r["subprocess_calls"] == 0


def test_configured_after_an_early_import_still_blocks_installs(tmp_path: Path) -> None:
    r = _run("import-late", tmp_path)
    assert r["checks_online"] is False and r["autoinstall"] is False and r["events_enabled"] is False
    assert r["requirements_ok"] is True and r["subprocess_calls"] == 0


def test_an_unwritable_settings_folder_is_a_user_error(tmp_path: Path) -> None:
    """Run as an unprivileged user under a root-owned folder: a message that says what to set, no traceback."""
    from actwatch.errors import ActwatchError
    from actwatch.tracker.ultralytics_env import configure_ultralytics

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")  # fails for root too, unlike a chmod
    with pytest.raises(ActwatchError, match=r"cannot create Ultralytics' settings folder .*ACTWATCH_CACHE_DIR"):
        configure_ultralytics(blocker / "ultralytics")
