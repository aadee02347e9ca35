"""Drives an interactive command under a pseudo-terminal, as a person at a terminal would.

Usage: pty_enroll.py COLUMNS ANSWERS_JSON -- COMMAND...
Each time the screen shows "Code from the app: ", the next answer is typed; the answer "OATH"
means oathtool's code for the key printed on the screen, "OATH_QR" oathtool's code for the
secret of the URI that the QR code on the screen decodes to (as a dark terminal shows it, else
as a light one), "EOF" ends the input. The screen, escapes included, is rendered as a dark and as
a light terminal shows it and decoded with zbarimg (tests/term_qr.py at the workspace's top).
Prints a JSON object: screen, key, qr (dark and light: the decoded text, null when nothing
decodes), exit.
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
import termios
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import term_qr  # noqa: E402


def decode_qr(screen, theme):
    """The text the QR code on `screen` decodes to on a `theme` terminal, or None."""
    return term_qr.decode(screen, theme) or None


def oath(secret):
    return subprocess.run(
        ["oathtool", "--totp", "--base32", secret], capture_output=True, text=True, check=True
    ).stdout.strip()


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
        m = re.search(r"enter the key by hand:\s+([A-Z2-7 ]+)\n", text, re.IGNORECASE)
        if m:
            key = m.group(1).replace(" ", "")
        while text.count("Code from the app: ") > asked:
            answer = answers[asked] if asked < len(answers) else ""
            if answer == "OATH":
                answer = oath(key)
            elif answer == "OATH_QR":
                uri = decode_qr(text, "dark") or decode_qr(text, "light") or ""
                m = re.search(r"[?&]secret=([A-Z2-7]+)", uri)
                answer = oath(m.group(1)) if m else "no-qr-code"
            asked += 1
            os.write(fd, (answer + "\n").encode() if answer != "EOF" else b"\x04")
    _, status = os.waitpid(pid, 0)
    text = screen.decode("utf-8", "replace").replace("\r", "")
    print(json.dumps({
        "screen": text,
        "key": key,
        "qr": {"dark": decode_qr(text, "dark"), "light": decode_qr(text, "light")},
        "exit": os.waitstatus_to_exitcode(status),
    }))


main()
