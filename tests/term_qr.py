"""Renders captured terminal text as a terminal of a given theme shows it, and decodes the QR
codes in the picture with zbarimg: what a phone pointed at that screen would read.

Usage: term_qr.py THEME FILE   (THEME: dark or light; FILE: the captured text, UTF-8)
Prints exactly what `zbarimg --raw` decodes (nothing when no code is found) and exits 0.

The rendering, cell by cell: a character cell is two square modules tall and one wide. The
block glyphs █ ▀ ▄ paint their halves in the cell's foreground colour and the rest in its
background colour; a space is background only; any other printable character is background
with a blob of foreground in its middle (text is not blank). Colours follow SGR escapes:
0 (reset), 7/27 (reverse on/off), 30-37 and 90-97 (foreground), 40-47 and 100-107
(background), 38;5;N / 48;5;N (256 colours), 38;2;R;G;B / 48;2;R;G;B, 39 and 49 (default); other
SGR parameters (bold, underline, ...) change no colour. Other escape sequences are skipped.
`\\r` goes back to the start of the line, `\\n` down one line, a tab to the next multiple of 8.
The theme gives the default colours: dark is light grey text on black, light is black text on
white. The screen around the text, to the width of its longest line and a margin of two cells,
is the default background.
"""

import os
import subprocess
import sys
import tempfile
import struct
import zlib

# xterm's 16 colours.
PALETTE16 = [
    (0x00, 0x00, 0x00), (0xCD, 0x00, 0x00), (0x00, 0xCD, 0x00), (0xCD, 0xCD, 0x00),
    (0x00, 0x00, 0xEE), (0xCD, 0x00, 0xCD), (0x00, 0xCD, 0xCD), (0xE5, 0xE5, 0xE5),
    (0x7F, 0x7F, 0x7F), (0xFF, 0x00, 0x00), (0x00, 0xFF, 0x00), (0xFF, 0xFF, 0x00),
    (0x5C, 0x5C, 0xFF), (0xFF, 0x00, 0xFF), (0x00, 0xFF, 0xFF), (0xFF, 0xFF, 0xFF),
]

THEMES = {
    # (default foreground, default background)
    "dark": ((0xD0, 0xD0, 0xD0), (0x00, 0x00, 0x00)),
    "light": ((0x00, 0x00, 0x00), (0xFF, 0xFF, 0xFF)),
}

SCALE = 4  # pixels per module
MARGIN = 2  # cells of background around the text


def color256(n):
    if n < 16:
        return PALETTE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return (v, v, v)


class Screen:
    def __init__(self, theme):
        self.default_fg, self.default_bg = THEMES[theme]
        self.reset()
        self.rows = [[]]
        self.col = 0

    def reset(self):
        self.fg = None  # None: the default
        self.bg = None
        self.reverse = False

    def colors(self):
        fg = self.fg or self.default_fg
        bg = self.bg or self.default_bg
        return (bg, fg) if self.reverse else (fg, bg)

    def sgr(self, params):
        ps = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(ps):
            p = ps[i]
            if p == 0:
                self.reset()
            elif p == 7:
                self.reverse = True
            elif p == 27:
                self.reverse = False
            elif 30 <= p <= 37:
                self.fg = PALETTE16[p - 30]
            elif 90 <= p <= 97:
                self.fg = PALETTE16[p - 90 + 8]
            elif 40 <= p <= 47:
                self.bg = PALETTE16[p - 40]
            elif 100 <= p <= 107:
                self.bg = PALETTE16[p - 100 + 8]
            elif p == 39:
                self.fg = None
            elif p == 49:
                self.bg = None
            elif p in (38, 48) and i + 1 < len(ps):
                if ps[i + 1] == 5 and i + 2 < len(ps):
                    c = color256(ps[i + 2] % 256)
                    i += 2
                elif ps[i + 1] == 2 and i + 4 < len(ps):
                    c = tuple(min(v, 255) for v in ps[i + 2:i + 5])
                    i += 4
                else:
                    c = None
                    i += 1
                if p == 38:
                    self.fg = c
                else:
                    self.bg = c
            i += 1

    def put(self, ch):
        row = self.rows[-1]
        while len(row) < self.col:
            row.append((" ", None, None))  # a gap: the terminal's background
        cell = (ch,) + self.colors()
        if self.col < len(row):
            row[self.col] = cell
        else:
            row.append(cell)
        self.col += 1

    def feed(self, text):
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\x1b":
                if i + 1 < len(text) and text[i + 1] == "[":
                    j = i + 2
                    while j < len(text) and not ("\x40" <= text[j] <= "\x7e"):
                        j += 1
                    if j < len(text) and text[j] == "m":
                        self.sgr(text[i + 2:j])
                    i = j + 1
                    continue
                if i + 1 < len(text) and text[i + 1] == "]":  # OSC, to BEL or ST
                    j = i + 2
                    while j < len(text) and text[j] != "\x07" and text[j:j + 2] != "\x1b\\":
                        j += 1
                    i = j + (2 if text[j:j + 2] == "\x1b\\" else 1)
                    continue
                i += 2
                continue
            if c == "\n":
                self.rows.append([])
                self.col = 0
            elif c == "\r":
                self.col = 0
            elif c == "\t":
                self.col = (self.col // 8 + 1) * 8
            elif c == "\b":
                self.col = max(0, self.col - 1)
            elif ord(c) >= 0x20 and c != "\x7f":
                self.put(c)
            i += 1

    def pixels(self):
        """Rows of grey levels (0-255), one module = SCALE pixels."""
        width = max(len(r) for r in self.rows) + 2 * MARGIN
        rows = [[] for _ in range(MARGIN)] + self.rows + [[] for _ in range(MARGIN)]
        s = SCALE
        out = []
        for r in rows:
            cells = [(" ", None, None)] * MARGIN + r
            cells += [(" ", None, None)] * (width - len(cells))
            # A cell is s pixels wide and 2*s tall: two modules, one above the other.
            band = [bytearray() for _ in range(2 * s)]
            for ch, fg, bg in cells:
                fg = grey(fg or self.default_fg)
                bg = grey(bg or self.default_bg)
                if ch == "█":
                    block = [[fg] * s] * (2 * s)
                elif ch == "▀":
                    block = [[fg] * s] * s + [[bg] * s] * s
                elif ch == "▄":
                    block = [[bg] * s] * s + [[fg] * s] * s
                elif ch == " ":
                    block = [[bg] * s] * (2 * s)
                else:  # text: a blob of ink in the middle of the cell
                    inner = [bg] * (s // 4) + [fg] * (s - 2 * (s // 4)) + [bg] * (s // 4)
                    block = [[bg] * s] * (s // 2) + [inner] * s + [[bg] * s] * (s - s // 2)
                for y in range(2 * s):
                    band[y].extend(block[y])
            out.extend(band)
        return out


def grey(rgb):
    r, g, b = rgb
    return (299 * r + 587 * g + 114 * b) // 1000


def write_png(path, rows):
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def decode(text, theme, keep=None):
    """What zbarimg reads from `text` shown by a `theme` terminal ("" when nothing)."""
    screen = Screen(theme)
    screen.feed(text)
    fd, path = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        write_png(path, screen.pixels())
        if keep:
            with open(path, "rb") as src, open(keep, "wb") as dst:
                dst.write(src.read())
        out = subprocess.run(
            ["zbarimg", "--nodbus", "--raw", "-q", path], capture_output=True, text=True
        )
    finally:
        os.unlink(path)
    return out.stdout.strip()


def main():
    theme, path = sys.argv[1], sys.argv[2]
    if theme not in THEMES:
        sys.exit(f"unknown theme {theme!r}: dark or light")
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    keep = os.environ.get("TERM_QR_KEEP_PNG")
    print(decode(text, theme, keep and f"{keep}-{theme}.png"))


if __name__ == "__main__":
    main()
