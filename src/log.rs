//! Log lines to stderr, buffered within one turn of the event loop and written once per turn
//! (one write per turn, not per request), and the two clock formats the server prints.
//! Callers must never pass a secret in a log line.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct Log {
    buf: Vec<u8>,
    /// The last time stamp written, and the (seconds, milliseconds) it is for: many lines fall
    /// in the same millisecond under load.
    stamp: String,
    stamp_at: (u64, u32),
}

impl Log {
    /// Queue one line, prefixed with the current UTC time.
    pub fn line(&mut self, args: std::fmt::Arguments<'_>) {
        let now = unix_now();
        if now != self.stamp_at || self.stamp.is_empty() {
            self.stamp = rfc3339(now);
            self.stamp_at = now;
        }
        self.buf.extend_from_slice(self.stamp.as_bytes());
        self.buf.push(b' ');
        let _ = self.buf.write_fmt(args);
        self.buf.push(b'\n');
    }

    /// Write what is queued. A failing stderr must not stop the server, so errors are dropped.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let _ = std::io::stderr().write_all(&self.buf);
        self.buf.clear();
    }
}

/// Print one line at once (start-up and shutdown, outside the loop).
pub fn now(args: std::fmt::Arguments<'_>) {
    let mut l = Log::default();
    l.line(args);
    l.flush();
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn unix_now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_millis())
}

/// `2026-11-22T01:30:00.123Z`
pub fn rfc3339((secs, ms): (u64, u32)) -> String {
    let (y, mo, d, h, mi, s) = split(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `Sun, 22 Nov 2026 01:30:00 GMT`, the HTTP `Date` format.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = split(secs);
    let wd = DAYS[((secs / 86_400) % 7) as usize];
    format!(
        "{wd}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT",
        MONTHS[(mo - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_like_http_and_rfc3339() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_310_400), "Sun, 22 Nov 2026 01:20:00 GMT");
        assert_eq!(split(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
