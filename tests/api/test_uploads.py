"""api/uploads.py: abandoned upload temp files are removed when the API starts.

(Uploads themselves are tested through the API in tests/api/test_assets.py; a SIGTERM to a
real API mid-upload in tests/e2e/test_ops.py.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from api.uploads import FOREIGN_UPLOAD_AGE, sweep_stale_uploads, upload_prefix
from tests.conftest import make_settings


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_abandoned_temp_files_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    live_other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        files = {
            "dead": tmp_path / f".upload-{host}-{_dead_pid()}-abc123.part",
            "mine_before": tmp_path / f"{upload_prefix()}old.part",  # a previous me
            "live": tmp_path / f".upload-{host}-{live_other.pid}-xyz.part",
            "foreign_new": tmp_path / ".upload-otherhost-12-q.part",
            "foreign_old": tmp_path / ".upload-otherhost-13-r.part",
            "not_ours": tmp_path / "notes.part",
        }
        for path in files.values():
            path.write_bytes(b"partial")
        old = time.time() - FOREIGN_UPLOAD_AGE - 10
        os.utime(files["foreign_old"], (old, old))
        removed = sweep_stale_uploads(tmp_path)
        assert set(removed) == {files["dead"], files["mine_before"], files["foreign_old"]}
        assert all(files[k].exists() for k in ("live", "foreign_new", "not_ours"))
    finally:
        live_other.kill()
        live_other.wait()


def test_the_api_sweeps_at_start_up(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    leftover = storage / f".upload-{socket.gethostname()}-{_dead_pid()}-k.part"
    leftover.write_bytes(b"half a file")
    with TestClient(create_app(make_settings(storage))):
        assert not leftover.exists()
