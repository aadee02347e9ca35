//! QR codes of otpauth URIs drawn as text for a terminal: one drawing, shared by the PAM
//! module (the enrollment prompt inside a login) and `twofold enroll`.
//!
//! Two modules per character cell, one above the other: `█` both, `▀` the upper, `▄` the lower,
//! a space neither, with the quiet zone of four modules the standard asks for all around. What
//! a glyph's ink stands for depends on the terminal it will be read on: a scanner needs dark
//! modules darker than light ones, and a terminal draws glyphs in its text colour, blanks in its
//! background colour. A drawing made for one kind of terminal reads inverted on the other,
//! which most scanners (and `zbarimg`) do not decode at all. [`Drawing::BlackOnWhite`] sets both
//! colours itself and reads on either; where escapes cannot be used (an OpenSSH client prints
//! the ESC of a keyboard-interactive prompt as the text `\033`), the drawing is made for one
//! kind: [`Drawing::ForDark`] or [`Drawing::ForLight`].

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

/// Modules of light border around the code (ISO/IEC 18004: four).
const QUIET_ZONE: usize = 4;

/// Black text (SGR 30) on a white background (SGR 47), as google-authenticator's UTF-8 mode.
const BLACK_ON_WHITE: &str = "\x1b[30;47m";
/// Back to the terminal's own colours (SGR 0), at the end of each line: nothing runs past the
/// code, and a scroll never fills a new line with white.
const RESET: &str = "\x1b[0m";

/// For which terminal a QR code is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawing {
    /// Light text on a dark background, no escapes: the glyphs are the light modules (the quiet
    /// zone is drawn), blanks the dark ones. Read on a light terminal, it is inverted.
    ForDark,
    /// Dark text on a light background, no escapes: the glyphs are the dark modules, blanks
    /// (the quiet zone too) the terminal's light background. Read on a dark one, it is inverted.
    ForLight,
    /// Black glyphs on a white background, both set by colour escapes on every line (the
    /// quiet zone is white blanks): reads on dark and light terminals alike, where escapes
    /// reach the terminal.
    BlackOnWhite,
}

/// A QR code drawn as text.
pub struct TextQr {
    /// The lines, joined by `\n`, without a final newline. It encodes the secret: shown to the
    /// user, never logged; wiped when dropped.
    pub text: Zeroizing<String>,
    /// Its width in terminal columns (the escapes of [`Drawing::BlackOnWhite`] take none).
    pub columns: usize,
}

/// The QR code of `data` (error correction L, the smallest code: an otpauth URI fits in 45 to
/// 53 columns), or `None` if it is too long for any QR code.
pub fn draw(data: &str, drawing: Drawing) -> Option<TextQr> {
    let code =
        qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::L).ok()?;
    let n = code.width();
    let modules = Zeroizing::new(
        code.to_colors()
            .into_iter()
            .map(|c| c == qrcode::Color::Dark)
            .collect::<Vec<bool>>(),
    );
    drop(code);
    let side = n + 2 * QUIET_ZONE;
    // Whether the module at (x, y) of the code with its quiet zone is dark; outside (the lower
    // half of the last line when the side is odd) it is not part of the code and gets no ink.
    let dark = |x: usize, y: usize| -> bool {
        x >= QUIET_ZONE
            && y >= QUIET_ZONE
            && x - QUIET_ZONE < n
            && y - QUIET_ZONE < n
            && modules
                .get((y - QUIET_ZONE) * n + (x - QUIET_ZONE))
                .copied()
                .unwrap_or(false)
    };
    let ink = |x: usize, y: usize| -> bool {
        if y >= side {
            return false;
        }
        match drawing {
            Drawing::ForDark => !dark(x, y),
            Drawing::ForLight | Drawing::BlackOnWhite => dark(x, y),
        }
    };
    let lines = side.div_ceil(2);
    let per_line = side * '█'.len_utf8() + BLACK_ON_WHITE.len() + RESET.len() + 1;
    // Sized once, so that no copy of the drawing is left behind by a reallocation.
    let mut text = Zeroizing::new(String::with_capacity(lines * per_line));
    for line in 0..lines {
        if line > 0 {
            text.push('\n');
        }
        if drawing == Drawing::BlackOnWhite {
            text.push_str(BLACK_ON_WHITE);
        }
        let (upper, lower) = (2 * line, 2 * line + 1);
        for x in 0..side {
            text.push(match (ink(x, upper), ink(x, lower)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        if drawing == Drawing::BlackOnWhite {
            text.push_str(RESET);
        }
    }
    Some(TextQr {
        text,
        columns: side,
    })
}

/// The QR code in the enrollment prompt inside a login (`[enrollment] qr`). Colours cannot be
/// used there, so it is drawn for one kind of terminal; the key and the URI are shown beside it
/// in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginQr {
    /// For dark terminals (light text on black): [`Drawing::ForDark`]. The default.
    #[default]
    Dark,
    /// For light terminals (dark text on white, e.g. macOS Terminal's default):
    /// [`Drawing::ForLight`].
    Light,
    /// No QR code: the key and the URI only.
    None,
}

impl LoginQr {
    /// The spelling of policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginQr::Dark => "dark",
            LoginQr::Light => "light",
            LoginQr::None => "none",
        }
    }

    /// How the code is drawn, or `None` for no code.
    pub fn drawing(self) -> Option<Drawing> {
        match self {
            LoginQr::Dark => Some(Drawing::ForDark),
            LoginQr::Light => Some(Drawing::ForLight),
            LoginQr::None => None,
        }
    }
}

impl fmt::Display for LoginQr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that is not a [`LoginQr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid qr {0:?}: expected \"dark\", \"light\" or \"none\"")]
pub struct LoginQrParseError(pub String);

impl FromStr for LoginQr {
    type Err = LoginQrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dark" => Ok(LoginQr::Dark),
            "light" => Ok(LoginQr::Light),
            "none" => Ok(LoginQr::None),
            other => Err(LoginQrParseError(other.to_owned())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/twofold%40host:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=twofold%40host&algorithm=SHA1&digits=6&period=30";

    /// The modules a drawing shows as dark on a terminal with the given background, read back
    /// from the glyphs: on a dark background ink is light, on a light one dark.
    fn read_back(t: &TextQr, ink_is_dark: bool) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in t.text.lines() {
            let line = line.replace(BLACK_ON_WHITE, "").replace(RESET, "");
            let (mut up, mut down) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (u, d) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    _ => (false, false),
                };
                up.push(u == ink_is_dark);
                down.push(d == ink_is_dark);
            }
            rows.push(up);
            rows.push(down);
        }
        rows
    }

    #[test]
    fn the_three_drawings_show_the_same_modules_where_they_are_meant_to_be_read() {
        let dark = draw(URI, Drawing::ForDark).unwrap();
        let light = draw(URI, Drawing::ForLight).unwrap();
        let both = draw(URI, Drawing::BlackOnWhite).unwrap();
        assert_eq!(dark.columns, light.columns);
        assert_eq!(dark.columns, both.columns);
        let side = dark.columns;
        assert_eq!(side % 2, 1, "a QR code's side is odd");
        // The last line's lower half is outside the code; the rest must agree.
        let m = read_back(&dark, false);
        assert_eq!(m.len(), side + 1);
        assert_eq!(m[..side], read_back(&light, true)[..side]);
        assert_eq!(m[..side], read_back(&both, true)[..side]);
        // Quiet zone: four light rows and columns on every side.
        for (y, row) in m[..side].iter().enumerate() {
            assert_eq!(row.len(), side);
            for (x, &is_dark) in row.iter().enumerate() {
                let border = x < 4 || y < 4 || x >= side - 4 || y >= side - 4;
                if border {
                    assert!(!is_dark, "({x},{y}) in the quiet zone");
                }
            }
        }
        // The finder pattern's corner, just inside the quiet zone, is dark.
        assert!(m[4][4] && m[4][side - 5] && m[side - 5][4]);
    }

    #[test]
    fn only_the_black_on_white_drawing_has_escapes_and_each_line_resets() {
        for d in [Drawing::ForDark, Drawing::ForLight] {
            assert!(!draw(URI, d).unwrap().text.contains('\x1b'));
        }
        let t = draw(URI, Drawing::BlackOnWhite).unwrap();
        for line in t.text.lines() {
            assert!(
                line.starts_with(BLACK_ON_WHITE) && line.ends_with(RESET),
                "{line:?}"
            );
            assert_eq!(line.matches('\x1b').count(), 2);
        }
        // Light drawings leave the quiet zone blank: the first line is spaces only.
        let light = draw(URI, Drawing::ForLight).unwrap();
        assert!(light.text.lines().next().unwrap().chars().all(|c| c == ' '));
        let dark = draw(URI, Drawing::ForDark).unwrap();
        assert!(dark.text.lines().next().unwrap().chars().all(|c| c == '█'));
    }

    #[test]
    fn too_long_for_a_qr_code_is_none() {
        assert!(draw(&"x".repeat(3000), Drawing::ForDark).is_none());
    }

    #[test]
    fn login_qr_words() {
        for q in [LoginQr::Dark, LoginQr::Light, LoginQr::None] {
            assert_eq!(q.as_str().parse::<LoginQr>().unwrap(), q);
        }
        assert_eq!(LoginQr::default(), LoginQr::Dark);
        assert_eq!(
            "Dark".parse::<LoginQr>().unwrap_err().to_string(),
            "invalid qr \"Dark\": expected \"dark\", \"light\" or \"none\""
        );
    }
}
