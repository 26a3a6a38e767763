#!/usr/bin/env python3
"""gen_files.py OUTDIR -- write the test bed's files (small PNG images, stdlib only) into OUTDIR.

import.sh uploads them with maintenance/importImages.php, so the wiki has File: pages (ns 6)
with real image info (URL, size, SHA-1, MIME type). Byte-identical on every run.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

#: name -> (width, height, RGB colour)
FILES: dict[str, tuple[int, int, tuple[int, int, int]]] = {
    "Holocron.png": (16, 16, (40, 90, 200)),
    "Kyber crystal.png": (8, 24, (120, 220, 255)),
    "Death Star plans.png": (32, 20, (90, 90, 90)),
    "Jedi Temple.png": (24, 12, (210, 180, 120)),
    "Lightsaber hilt.png": (4, 30, (180, 180, 190)),
}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, (width, height, rgb) in FILES.items():
        (out / name).write_bytes(png(width, height, rgb))


if __name__ == "__main__":
    main()
