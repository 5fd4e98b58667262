//! The line framing shared by signify and minisign files: comment lines
//! followed by standard (padded) base64 lines, each ended by a newline.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub(crate) const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
pub(crate) const TRUSTED_PREFIX: &str = "trusted comment: ";

/// signify formats `untrusted comment: ` + comment + `\n` into a
/// 1024-byte buffer (NUL included) and refuses anything longer, so a
/// longer comment would give a file signify cannot write or read back.
pub const UNTRUSTED_COMMENT_MAX: usize = 1024 - UNTRUSTED_PREFIX.len() - 2;

/// minisign reads the trusted comment line (prefix and newline included)
/// into an 8192-byte buffer.
pub const TRUSTED_COMMENT_MAX: usize = 8192 - TRUSTED_PREFIX.len() - 2;

/// Where and why a line of an armored file is unusable.
#[derive(Debug)]
pub(crate) struct LineError {
    pub line: usize,
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> LineError {
    LineError {
        line,
        reason: reason.into(),
    }
}

/// Splits on `\n`, dropping one `\r` before it (files edited on other
/// systems) and the empty piece after a final newline.
pub(crate) fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    if out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// Fails when line `lineno` (1-based) is the last of `bytes` and has no
/// newline: a comment line cut there means the file was truncated.
pub(crate) fn require_newline(bytes: &[u8], lineno: usize) -> Result<(), LineError> {
    let count = lines(bytes).len();
    if count == lineno && !bytes.ends_with(b"\n") {
        return Err(err(lineno, "ends without a newline (truncated file?)"));
    }
    Ok(())
}

/// The text after `prefix` on line number `lineno` (1-based).
pub(crate) fn comment_line(
    line: Option<&[u8]>,
    lineno: usize,
    prefix: &str,
) -> Result<String, LineError> {
    let line = line.ok_or_else(|| err(lineno, format!("missing; expected `{prefix}...`")))?;
    let rest = line
        .strip_prefix(prefix.as_bytes())
        .ok_or_else(|| err(lineno, format!("does not start with `{prefix}`")))?;
    String::from_utf8(rest.to_vec()).map_err(|e| {
        err(
            lineno,
            format!(
                "comment is not UTF-8 (byte {})",
                prefix.len() + e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Decodes a base64 line that must hold exactly `N` bytes.
pub(crate) fn b64_line<const N: usize>(
    line: Option<&[u8]>,
    lineno: usize,
    what: &str,
) -> Result<[u8; N], LineError> {
    let line = line.ok_or_else(|| err(lineno, format!("missing; expected the base64 {what}")))?;
    let trimmed = line.trim_ascii();
    let bytes = STANDARD
        .decode(trimmed)
        .map_err(|e| err(lineno, format!("invalid base64 {what}: {e}")))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        err(
            lineno,
            format!("{what} decodes to {} bytes, expected {N}", bytes.len()),
        )
    })
}

pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Checks that `comment` fits on one line of a file that both signify and
/// minisign read back.
pub(crate) fn check_comment(comment: &str, max: usize) -> Result<(), String> {
    if let Some(c) = comment.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        return Err(format!("contains the control character {c:?}"));
    }
    if comment.len() > max {
        return Err(format!(
            "is {} bytes, at most {max} fit on the line",
            comment.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_handle_crlf_and_final_newline() {
        assert_eq!(lines(b"a\r\nb\n"), vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(lines(b"a\nb"), vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(lines(b"a\n\n"), vec![&b"a"[..], &b""[..]]);
    }

    #[test]
    fn b64_line_checks_length() {
        let e = b64_line::<3>(Some(b"AAAAAA=="), 2, "x").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("4 bytes"), "{}", e.reason);
        assert_eq!(b64_line::<3>(Some(b"AAEC"), 2, "x").unwrap(), [0, 1, 2]);
    }

    #[test]
    fn comments_must_be_one_line() {
        assert!(check_comment("a\nb", 100).is_err());
        assert!(check_comment(&"x".repeat(101), 100).is_err());
        assert!(check_comment("fine", 100).is_ok());
    }
}
