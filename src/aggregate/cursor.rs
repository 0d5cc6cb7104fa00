//! The discovery cursor of one destination: how far the arrivals index was read, so a run lists
//! only what arrived since (plus a lookback for late writers), whatever the history.
//!
//! It holds the newest arrival key read (`position`), the arrival keys in the lookback window that
//! are already resolved (`seen`, so re-listing the window costs no per-build request), and the
//! arrivals whose builds are not resolved yet (`pending`: settling, claimed by another worker, or
//! failed), which every run checks again by key wherever they lie. The cursor is only a shortcut:
//! claims and `done` markers decide what is published, so a lost or stale cursor costs requests,
//! never correctness. Runs update it with `If-Match`, re-reading and re-applying their changes when
//! another run wrote it first; merging only ever adds pending work, so no arrival is dropped.

use crate::arrivals;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub version: u32,
    /// The newest arrival key read.
    #[serde(default)]
    pub position: Option<String>,
    /// Resolved arrival keys at most the lookback before `position`.
    #[serde(default)]
    pub seen: BTreeSet<String>,
    /// Arrival keys whose builds are not resolved yet.
    #[serde(default)]
    pub pending: BTreeSet<String>,
}

pub const VERSION: u32 = 1;

/// What one run learnt, to apply to whatever cursor is current when it writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// The newest arrival key listed.
    pub newest: Option<String>,
    /// Arrival keys whose builds are done (or need nothing) for this destination.
    pub resolved: BTreeSet<String>,
    /// Arrival keys whose builds must be looked at again.
    pub unresolved: BTreeSet<String>,
}

impl Cursor {
    /// Where the next listing starts (`StartAfter`): the lookback before `position`.
    pub fn start_after(&self, lookback: Duration) -> String {
        match self.position.as_deref().and_then(arrivals::parse) {
            Some((at, _)) => arrivals::floor_key(at - lookback),
            None => String::new(),
        }
    }

    /// Applies a run's findings. Pending work is only removed when this run resolved it.
    pub fn apply(&mut self, delta: &Delta, lookback: Duration) {
        self.version = VERSION;
        if delta.newest > self.position {
            self.position = delta.newest.clone();
        }
        for key in &delta.unresolved {
            if !self.seen.contains(key) {
                self.pending.insert(key.clone());
            }
        }
        for key in &delta.resolved {
            self.pending.remove(key);
            self.seen.insert(key.clone());
        }
        let floor = self.start_after(lookback);
        self.seen.retain(|k| k.as_str() > floor.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::BuildId;
    use time::macros::datetime;

    fn key(minute: u8, build: u64) -> String {
        let at = datetime!(2026-12-01 06:00 UTC) + Duration::from_secs(60 * u64::from(minute));
        let id = BuildId {
            job: "j".into(),
            branch: "master".into(),
            build,
        };
        arrivals::key(at, &id)
    }

    fn set(keys: &[String]) -> BTreeSet<String> {
        keys.iter().cloned().collect()
    }

    #[test]
    fn advances_remembers_the_window_and_keeps_pending_work() {
        let lookback = Duration::from_secs(5 * 60);
        let mut cursor = Cursor::default();
        assert_eq!(cursor.start_after(lookback), "");
        cursor.apply(
            &Delta {
                newest: Some(key(10, 3)),
                resolved: set(&[key(1, 1), key(9, 2), key(10, 3)]),
                unresolved: set(&[key(2, 4)]),
            },
            lookback,
        );
        assert_eq!(cursor.position, Some(key(10, 3)));
        assert_eq!(
            cursor.seen,
            set(&[key(9, 2), key(10, 3)]),
            "minute 1 left the window"
        );
        assert_eq!(cursor.pending, set(&[key(2, 4)]));
        assert!(cursor.start_after(lookback) < key(5, 0));
        assert!(cursor.start_after(lookback) > key(4, 999));

        // A concurrent run that listed less, found build 4 still busy and build 5 new.
        let mut other = cursor.clone();
        other.apply(
            &Delta {
                newest: Some(key(9, 2)),
                resolved: set(&[key(2, 4)]),
                unresolved: set(&[key(9, 2), key(11, 5)]),
            },
            lookback,
        );
        assert_eq!(other.position, Some(key(10, 3)), "never moves back");
        assert_eq!(
            other.pending,
            set(&[key(11, 5)]),
            "seen wins over a stale busy report"
        );
        assert!(
            !other.seen.contains(&key(2, 4)),
            "outside the window, not remembered"
        );
    }

    #[test]
    fn reads_what_older_runs_wrote() {
        let cursor: Cursor = serde_json::from_str(r#"{"version":1}"#).unwrap();
        assert_eq!(cursor.position, None);
        let json = serde_json::to_string(&cursor).unwrap();
        assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), cursor);
    }
}
