//! The arrivals index: one tiny object per finished upload, under a time-ordered key, so the
//! aggregator finds new builds by listing only what arrived after its cursor.
//!
//! `upload` writes `_ci-test-metrics-arrivals/{YYYY}/{MM}/{DD}/{HHMMSS.mmm}/{job}/{branch}/{build}`
//! right after `context.json` (every stage of a build writes one). The index lies outside the
//! aggregator's reserved prefix `_ci-test-metrics/`, so the uploaders' PutObject-only policy on
//! `BUCKET/*` covers it; it is a hint, never trusted: the aggregator reads the build's own objects.
//!
//! Keys sort by the uploader's clock, to the millisecond. An uploader whose clock runs behind, or
//! whose PUT takes long, writes a key before a cursor that already passed its time; the aggregator
//! lists a lookback window before its cursor for them, and `aggregate --full` finds the rest.

use crate::layout::{BuildId, ARRIVALS_PREFIX};
use time::OffsetDateTime;

/// The arrival key of a build uploaded (its `context.json` written) at `at`.
pub fn key(at: OffsetDateTime, build: &BuildId) -> String {
    format!(
        "{}/{}/{}/{}",
        floor_key(at),
        build.job,
        build.branch,
        build.build
    )
}

/// A key that sorts before every arrival at or after `at` and after every arrival before it:
/// `StartAfter` for "everything since `at`".
pub fn floor_key(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{ARRIVALS_PREFIX}{:04}/{:02}/{:02}/{:02}{:02}{:02}.{:03}",
        at.year().clamp(0, 9999),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// The time and build an arrival key names; `None` for keys that are not arrivals.
pub fn parse(key: &str) -> Option<(OffsetDateTime, BuildId)> {
    let rest = key.strip_prefix(ARRIVALS_PREFIX)?;
    let mut parts = rest.splitn(5, '/');
    let (year, month, day, clock, build_key) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let (hms, millis) = clock.split_once('.')?;
    if year.len() != 4 || month.len() != 2 || day.len() != 2 || hms.len() != 6 || millis.len() != 3
    {
        return None;
    }
    let num = |s: &str| -> Option<u32> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let date = time::Date::from_calendar_date(
        num(year)? as i32,
        time::Month::try_from(num(month)? as u8).ok()?,
        num(day)? as u8,
    )
    .ok()?;
    let hms = num(hms)?;
    let clock = time::Time::from_hms_milli(
        (hms / 10000) as u8,
        (hms / 100 % 100) as u8,
        (hms % 100) as u8,
        num(millis)? as u16,
    )
    .ok()?;
    let id = BuildId::from_path(build_key).ok()?;
    Some((date.with_time(clock).assume_utc(), id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn id(job: &str, branch: &str, build: u64) -> BuildId {
        BuildId {
            job: job.into(),
            branch: branch.into(),
            build,
        }
    }

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let at = datetime!(2026-12-01 06:12:33.123 UTC);
        let table = [
            (id("a", "master", 1), "_ci-test-metrics-arrivals/2026/12/01/061233.123/a/master/1"),
            (
                id("mxnet-validation/unix-cpu", "feature%2Ffoo", 42),
                "_ci-test-metrics-arrivals/2026/12/01/061233.123/mxnet-validation/unix-cpu/feature%2Ffoo/42",
            ),
        ];
        for (build, want) in table {
            let k = key(at, &build);
            assert_eq!(k, want);
            assert_eq!(parse(&k), Some((at, build)));
            assert!(floor_key(at).as_str() < k.as_str());
            assert!(k.as_str() < floor_key(at + time::Duration::milliseconds(1)).as_str());
        }
        let earlier = key(datetime!(2026-11-30 23:59:59.999 UTC), &id("z", "z", 9));
        assert!(
            earlier < key(at, &id("a", "a", 1)),
            "time orders before names"
        );
        let offset = datetime!(2026-12-01 08:12:33.123 +02:00);
        assert_eq!(floor_key(offset), floor_key(at), "keys are in UTC");
    }

    #[test]
    fn refuses_what_is_not_an_arrival() {
        for k in [
            "j/b/1/context.json",
            "_ci-test-metrics-arrivals/2026/12/01/061233.123/j/1",
            "_ci-test-metrics-arrivals/2026/13/01/061233.123/j/b/1",
            "_ci-test-metrics-arrivals/2026/12/01/061233/j/b/1",
            "_ci-test-metrics-arrivals/2026/12/01/256133.123/j/b/1",
            "_ci-test-metrics-arrivals/2026/12/01/061233.123/j/b/x",
            "_ci-test-metrics-arrivals/2026/12/01/+61233.123/j/b/1",
        ] {
            assert_eq!(parse(k), None, "{k}");
        }
    }
}
