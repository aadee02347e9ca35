"""Drives an interactive command under a pseudo-terminal, as a person at a terminal would.

Usage: pty_enroll.py COLUMNS ANSWERS_JSON -- COMMAND...
Each time the screen shows "Code from the app: ", the next answer is typed; the answer "OATH"
means oathtool's code for the key shown on the screen. The QR code drawn on the screen is turned
back into an image and decoded with zbarimg. Prints a JSON object: screen, key, qr_uri, exit.
"""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
import zlib


def png(path, rows, scale=6):
    """Writes a grayscale PNG of rows (lists of booleans, True = dark)."""
    h, w = len(rows) * scale, len(rows[0]) * scale
    raw = b""
    for r in rows:
        line = b"\x00" + b"".join((b"\x00" if dark else b"\xff") * scale for dark in r)
        raw += line * scale

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def decode_qr(screen):
    """The half-block QR code on the screen (light modules drawn) → the text it encodes."""
    lines = [l for l in screen.split("\n") if l and set(l) <= set("█▀▄ ") and ("█" in l)]
    if not lines:
        return None
    width = max(len(l) for l in lines)
    rows = []
    for l in lines:
        l = l.ljust(width)
        upper = [c in "█▀" for c in l]
        lower = [c in "█▄" for c in l]
        rows.append([not x for x in upper])  # drawn = light; dark = not drawn
        rows.append([not x for x in lower])
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        path = f.name
    png(path, rows)
    out = subprocess.run(["zbarimg", "--nodbus", "--raw", "-q", path], capture_output=True, text=True)
    os.unlink(path)
    return out.stdout.strip() or None


def main():
    cols = int(sys.argv[1])
    answers = json.loads(sys.argv[2])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
        os.execvp(cmd[0], cmd)
    screen = b""
    asked = 0
    key = None
    deadline = time.time() + 60
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        screen += data
        text = screen.decode("utf-8", "replace").replace("\r", "")
        m = re.search(r"enter the key by hand:\s+([A-Z2-7 ]+)\n", text)
        if m:
            key = m.group(1).replace(" ", "")
        while text.count("Code from the app: ") > asked:
            answer = answers[asked] if asked < len(answers) else ""
            if answer == "OATH":
                answer = subprocess.run(
                    ["oathtool", "--totp", "--base32", key], capture_output=True, text=True, check=True
                ).stdout.strip()
            asked += 1
            os.write(fd, (answer + "\n").encode() if answer != "EOF" else b"\x04")
    _, status = os.waitpid(pid, 0)
    text = screen.decode("utf-8", "replace").replace("\r", "")
    print(json.dumps({
        "screen": text,
        "key": key,
        "qr_uri": decode_qr(text),
        "exit": os.waitstatus_to_exitcode(status),
    }))


main()
