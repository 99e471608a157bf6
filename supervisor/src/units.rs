//! Human forms of sizes and durations: parsed from the command line with
//! `bytesize` and `humantime`, and bytes written for people by the one
//! formatter every caller uses.

use std::time::Duration;

use bytesize::ByteSize;

/// Parses a byte size the way `bytesize` reads it: SI units are powers of
/// ten and IEC units powers of two (`2GB` and `2G` are 2,000,000,000 bytes,
/// `2GiB` and `2Gi` are 2,147,483,648), case does not matter, a fraction is
/// allowed (`1.5GiB`), and a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("{s:?} is not a size (e.g. 512MiB, 2GB, 1.5GiB)"))
}

/// Parses a duration the way `humantime` reads it: a number and a unit,
/// several in a row (`500ms`, `30s`, `2m`, `1h30m`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}; e.g. 500ms, 30s, 1h30m)"))
}

/// Formats bytes for people, in powers of two with one decimal: `0 B`,
/// `512 B`, `1.5 GiB`. Every byte count docmill shows goes through here, so
/// that the summary, the live display, logs and the report agree.
pub fn format_size(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// A duration for people, as `humantime` writes it (`1h 30m`, `250ms`), the
/// same form the command line accepts.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `text` cut to at most `max` bytes at a character boundary, and whether
/// it was cut (reasons stay one readable line).
pub fn clip(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_si_and_iec() {
        let table: &[(&str, u64)] = &[
            ("512MiB", 512 << 20),
            ("1GiB", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("2GB", 2_000_000_000),
            ("2G", 2_000_000_000),
            ("2Gi", 2 << 30),
            ("64kb", 64_000),
            ("64KiB", 64 << 10),
            ("100", 100),
            ("0", 0),
            (" 1 MiB ", 1 << 20),
        ];
        for (text, bytes) in table {
            assert_eq!(parse_size(text), Ok(*bytes), "{text}");
        }
        for bad in ["lots", "3X", "", "-1G"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn durations_take_several_units() {
        let table: &[(&str, Duration)] = &[
            ("500ms", Duration::from_millis(500)),
            ("3s", Duration::from_secs(3)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h 30m", Duration::from_secs(5400)),
            ("0s", Duration::ZERO),
        ];
        for (text, d) in table {
            assert_eq!(parse_duration(text), Ok(*d), "{text}");
        }
        // A bare number has no unit: seconds or milliseconds would be a guess.
        for bad in ["soon", "3x", "1.5", ""] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn one_format_for_bytes() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(10), "10 B");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(4 << 30), "4.0 GiB");
        assert_eq!(format_size(77 << 20), "77.0 MiB");
    }

    #[test]
    fn durations_read_back() {
        let d = Duration::from_secs(5400);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
