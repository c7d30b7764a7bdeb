//! Text for people: names from untrusted input made safe to print.

use std::fmt::Write;

/// `raw` as one printable line, as `ls -b` and Go's `%q` do without the
/// quotes: control characters (newline, escape, …), DEL and backslash are
/// written as escapes (`\n`, `\x1b`, `\\`), bytes that are not UTF-8 as
/// `\xNN`. Other characters pass through, so ordinary names read as they
/// are and no name can forge a line or reach the terminal as a control
/// sequence.
pub fn escape_bytes(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// [`escape_bytes`] for a string.
pub fn escape(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_invalid_utf8_are_escaped() {
        assert_eq!(escape("usr/bin/ls"), "usr/bin/ls");
        assert_eq!(escape("café ü"), "café ü");
        assert_eq!(
            escape("a\n-rwsr-xr-x 0/0 1 /fake"),
            "a\\n-rwsr-xr-x 0/0 1 /fake"
        );
        assert_eq!(escape("\x1b[2J"), "\\u{1b}[2J");
        assert_eq!(escape("a\\b\t\r\x7f"), "a\\\\b\\t\\r\\u{7f}");
        assert_eq!(escape_bytes(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(escape("\u{9b}x"), "\\u{9b}x");
    }
}
