//! The timestamps of unified diff headers, as GNU diff writes them:
//! `%Y-%m-%d %H:%M:%S.%N %z`.
//!
//! `diff -N` marks an absent file by giving it the epoch as modification
//! time, rendered in the local time zone, so recognising a creation or
//! deletion means evaluating the timestamp, not comparing text.

use crate::date::{civil_from_days, days_from_civil};

/// Formats seconds and nanoseconds since the epoch as GNU diff does, in the
/// time zone `tz_offset_minutes` east of UTC.
pub fn format_timestamp(secs: i64, nsec: u32, tz_offset_minutes: i32) -> String {
    let nsec = nsec.min(999_999_999);
    let local = secs.saturating_add(i64::from(tz_offset_minutes) * 60);
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if tz_offset_minutes < 0 { '-' } else { '+' };
    let off = tz_offset_minutes.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{nsec:09} {sign}{:02}{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        off / 60,
        off % 60
    )
}

/// Parses `YYYY-MM-DD HH:MM:SS[.frac] [±HHMM]` (what GNU diff and most
/// other diff writers emit) into seconds and nanoseconds since the epoch,
/// UTC. A missing zone means UTC. `None` for anything else.
pub fn parse_timestamp(text: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(text).ok()?.trim();
    let mut parts = s.split_ascii_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let zone = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let mut dp = date.split('-');
    let y: i64 = num(dp.next()?, 4)?;
    let mo: i64 = num(dp.next()?, 2)?;
    let d: i64 = num(dp.next()?, 2)?;
    if dp.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut tp = hms.split(':');
    let h: i64 = num(tp.next()?, 2)?;
    let mi: i64 = num(tp.next()?, 2)?;
    let sec: i64 = num(tp.next()?, 2)?;
    if tp.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let nsec = match frac {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let v: u32 = f.parse().ok()?;
            let scale = 10u32.checked_pow(9 - f.len() as u32)?;
            v.checked_mul(scale)?
        }
    };
    let offset_secs = match zone {
        None => 0,
        Some(z) => {
            let (sign, digits) = match z.as_bytes().first()? {
                b'+' => (1, z.get(1..)?),
                b'-' => (-1, z.get(1..)?),
                _ => return None,
            };
            if digits.len() != 4 {
                return None;
            }
            let zh: i64 = num(digits.get(..2)?, 2)?;
            let zm: i64 = num(digits.get(2..)?, 2)?;
            sign * (zh * 3600 + zm * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs, nsec))
}

fn num(s: &str, width: usize) -> Option<i64> {
    if s.len() != width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_gnu_diff() {
        assert_eq!(
            format_timestamp(0, 0, 0),
            "1970-01-01 00:00:00.000000000 +0000"
        );
        assert_eq!(
            format_timestamp(0, 0, -300),
            "1969-12-31 19:00:00.000000000 -0500"
        );
        assert_eq!(
            format_timestamp(1_795_344_616, 556_247_006, 0),
            "2026-11-22 10:50:16.556247006 +0000"
        );
        assert_eq!(
            format_timestamp(1_795_344_616, 556_247_006, 330),
            "2026-11-22 16:20:16.556247006 +0530"
        );
    }

    #[test]
    fn parses_every_rendering_of_the_epoch() {
        for t in [
            "1970-01-01 00:00:00.000000000 +0000",
            "1969-12-31 19:00:00.000000000 -0500",
            "1970-01-01 05:30:00 +0530",
            "1970-01-01 00:00:00",
        ] {
            assert_eq!(parse_timestamp(t.as_bytes()), Some((0, 0)), "{t}");
        }
        assert_eq!(
            parse_timestamp(b"2026-11-22 10:50:16.5 +0000"),
            Some((1_795_344_616, 500_000_000))
        );
        assert_eq!(parse_timestamp(b"yesterday"), None);
        assert_eq!(parse_timestamp(b"2026-13-01 00:00:00"), None);
    }

    #[test]
    fn round_trips() {
        for secs in [-86_401i64, 0, 951_782_400, 4_102_444_800] {
            let s = format_timestamp(secs, 7, -90);
            assert_eq!(parse_timestamp(s.as_bytes()), Some((secs, 7)), "{s}");
        }
    }
}
