//! The whole-store sweep (`aggregate --full`, and a destination's first run): one listing → the
//! builds that are complete and not yet processed for the destination.
//!
//! A build is complete once its `context.json` exists (upload writes it last) and nothing was
//! added to it for the settle time: parallel stages of one Jenkins build each upload their own
//! files and rewrite `context.json`, so the first `context.json` does not mean the last stage is
//! done. Builds without it are still uploading and wait; builds with a `done` marker are skipped,
//! and files that arrive after a build's `done` marker are reported as late.

use super::ledger::{self, Destination};
use crate::arrivals;
use crate::layout::{self, BuildId, ARRIVALS_PREFIX, CONTEXT_FILE, RESERVED_PREFIX};
use crate::store::ObjectInfo;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// The objects of one build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildObjects {
    pub context: Option<ObjectInfo>,
    /// Result files (everything but `context.json`), in key order.
    pub files: Vec<ObjectInfo>,
}

/// A store listing, sorted out.
#[derive(Debug, Default)]
pub struct Listing {
    pub builds: BTreeMap<BuildId, BuildObjects>,
    /// Builds recorded for the destination (or by the first version, for every destination),
    /// with when their `done` marker was written.
    pub done: BTreeMap<BuildId, Option<OffsetDateTime>>,
    /// Keys of first-version publish intents not marked complete, oldest first.
    pub intents: Vec<String>,
    /// Late files already reported for the destination (their keys).
    pub late_reported: std::collections::BTreeSet<String>,
    /// Arrival keys, by build.
    pub arrivals: BTreeMap<String, BuildId>,
    /// Keys outside the reserved prefix that do not fit `job/branch/build/file`.
    pub stray: Vec<String>,
}

impl BuildObjects {
    /// Sorts a listing of one build's prefix.
    pub fn from_listing(objects: Vec<ObjectInfo>) -> BuildObjects {
        let mut build = BuildObjects::default();
        for object in objects {
            if object.key.rsplit('/').next() == Some(CONTEXT_FILE) {
                build.context = Some(object);
            } else {
                build.files.push(object);
            }
        }
        build
    }

    /// When the newest of the build's objects was written.
    pub fn newest(&self) -> Option<OffsetDateTime> {
        self.context
            .iter()
            .chain(&self.files)
            .filter_map(|o| o.last_modified)
            .max()
    }
}

impl Listing {
    /// Sorts a listing of the whole store, for `dest`.
    pub fn new(objects: Vec<ObjectInfo>, dest: &Destination) -> Listing {
        let mut listing = Listing::default();
        let done_prefixes = [dest.done_prefix(), ledger::legacy_done_prefix()];
        let late_prefix = dest.late_prefix();
        let intents_prefix = ledger::legacy_intents_prefix();
        let mut intents = Vec::new();
        for object in objects {
            if object.key.starts_with(RESERVED_PREFIX) {
                let done = done_prefixes
                    .iter()
                    .find_map(|p| ledger::parse_build_key(p, &object.key));
                if let Some(id) = done {
                    listing.done.entry(id).or_insert(object.last_modified);
                } else if let Some(file) = object.key.strip_prefix(&late_prefix) {
                    listing.late_reported.insert(file.to_string());
                } else if object.key.starts_with(&intents_prefix) {
                    intents.push(object.key);
                }
                continue;
            }
            if object.key.starts_with(ARRIVALS_PREFIX) {
                if let Some((_, id)) = arrivals::parse(&object.key) {
                    listing.arrivals.insert(object.key, id);
                }
                continue;
            }
            match layout::parse_key(&object.key) {
                Ok((id, file)) => {
                    let entry = listing.builds.entry(id).or_default();
                    if file == CONTEXT_FILE {
                        entry.context = Some(object);
                    } else {
                        entry.files.push(object);
                    }
                }
                Err(_) => listing.stray.push(object.key),
            }
        }
        let complete: std::collections::BTreeSet<&String> = intents.iter().collect();
        listing.intents = intents
            .iter()
            .filter(|k| {
                !k.ends_with(".done") && !complete.contains(&ledger::legacy_intent_done_key(k))
            })
            .cloned()
            .collect();
        listing.intents.sort();
        listing
    }

    /// Complete builds without a `done` marker, oldest upload first, and the builds still
    /// settling (something was written to them less than `settle` before `now`).
    pub fn pending(
        &self,
        now: OffsetDateTime,
        settle: Duration,
    ) -> (Vec<(&BuildId, &BuildObjects)>, Vec<&BuildId>) {
        let (mut ready, mut settling) = (Vec::new(), Vec::new());
        for (id, objects) in &self.builds {
            if objects.context.is_none() || self.done.contains_key(id) {
                continue;
            }
            match objects.newest() {
                Some(newest) if now - newest < settle => settling.push(id),
                _ => ready.push((id, objects)),
            }
        }
        ready.sort_by_key(|(id, objects)| {
            (
                objects.context.as_ref().and_then(|c| c.last_modified),
                (*id).clone(),
            )
        });
        (ready, settling)
    }

    /// Result files written after their build was recorded and not reported yet: a stage that
    /// finished after the aggregator took the build. Their metrics are not in the sink.
    pub fn late_files(&self) -> Vec<&str> {
        let mut late = Vec::new();
        for (id, done) in &self.done {
            let (Some(objects), Some(done)) = (self.builds.get(id), done) else {
                continue;
            };
            late.extend(
                objects
                    .files
                    .iter()
                    .filter(|f| f.last_modified.is_some_and(|m| m > *done))
                    .filter(|f| !self.late_reported.contains(&f.key))
                    .map(|f| f.key.as_str()),
            );
        }
        late
    }

    /// Builds still uploading (no `context.json` yet).
    pub fn incomplete(&self) -> impl Iterator<Item = &BuildId> {
        self.builds
            .iter()
            .filter(|(_, o)| o.context.is_none())
            .map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            last_modified: None,
        }
    }

    #[test]
    fn sorts_a_listing() {
        let dest = Destination::for_sink("cloudwatch", "NS", false);
        let listing = Listing::new(
            vec![
                obj("job/a/master/1/context.json"),
                obj("job/a/master/3/context.json"),
                obj("job/a/master/4/context.json"),
                obj("_ci-test-metrics/dest/cloudwatch-NS/done/job/a/master/3"),
                obj("_ci-test-metrics/dest/emf-NS-1234abcd/done/job/a/master/4"),
                obj("_ci-test-metrics-arrivals/2026/12/01/061233.123/job/a/master/4"),
                obj("job/a/master/1/unit.xml"),
                obj("job/a/master/1/gpu.xml"),
                obj("job/a/master/2/unit.xml"),
                obj("job/a/PR-3/7/context.json"),
                obj("job/a/PR-3/7/unit.xml"),
                obj("_ci-test-metrics/ledger/done/job/a/PR-3/7"),
                obj("_ci-test-metrics/ledger/intents/r-00001.json"),
                obj("_ci-test-metrics/ledger/intents/r-00002.json"),
                obj("_ci-test-metrics/ledger/intents/r-00002.json.done"),
                obj("_ci-test-metrics/summaries/job/a/PR-3/7.json.gz"),
                obj("README.txt"),
                obj("job/a/master/notanumber/x.xml"),
            ],
            &dest,
        );
        let (ready, settling) = listing.pending(OffsetDateTime::now_utc(), Duration::ZERO);
        let ids: Vec<String> = ready.iter().map(|(id, _)| id.to_string()).collect();
        assert_eq!(
            ids,
            vec!["job/a/master/1", "job/a/master/4"],
            "4 is done for another destination only"
        );
        assert_eq!(listing.arrivals.len(), 1);
        assert_eq!(ready[0].1.files.len(), 2);
        assert!(settling.is_empty());
        let incomplete: Vec<String> = listing.incomplete().map(|id| id.to_string()).collect();
        assert_eq!(incomplete, vec!["job/a/master/2"]);
        assert_eq!(
            listing.intents,
            vec!["_ci-test-metrics/ledger/intents/r-00001.json"]
        );
        assert_eq!(
            listing.stray,
            vec!["README.txt", "job/a/master/notanumber/x.xml"]
        );
    }
}
