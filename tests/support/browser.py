"""A real headless Chromium (Debian's `chromium`, installed by hack/setup.sh) for page tests."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

# No network beyond the page itself, no first-run UI, no GPU; a fresh profile per run.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium not found: hack/setup.sh installs Debian's chromium")
    return found


def _run(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
                                capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def dump_dom(url: str) -> str:
    """The DOM after the page loaded, serialised (what a user's browser built from the page)."""
    return _run(url, "--dump-dom").stdout


def screenshot(url: str, path: Path, width: int = 1280, height: int = 900) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, f"--screenshot={path}", f"--window-size={width},{height}")
    if not path.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    distinct_bytes: int  # in the decompressed image data: a blank page has very few


def read_png(path: Path) -> Png:
    """Size and a measure of content of a PNG, with the standard library only."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    offset, width, height, idat = 8, 0, 0, b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    return Png(width, height, len(set(zlib.decompress(idat))))
