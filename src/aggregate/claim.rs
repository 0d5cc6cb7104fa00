//! Claims: how exactly one worker takes a build for a destination, however many run.
//!
//! A worker creates the claim object with a conditional write that fails if it exists. A claim
//! whose lease ran out (judged by the store's `Last-Modified` against the store's clock, never the
//! worker's), or that its owner released, is taken over with `If-Match` on the ETag the worker
//! read: of several workers racing for it, one wins. The holder rewrites its claim (again with
//! `If-Match`) to `publishing` just before it sends metrics: if that fails, another worker took the
//! build over, and this one sends nothing.

use super::ledger::{Claim, ClaimState, IntentBuild};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// The store's clock, read once and then advanced by the local monotonic clock.
#[derive(Debug, Default)]
pub struct Clock {
    read: Mutex<Option<(OffsetDateTime, Instant)>>,
}

/// Read the store's clock again after this long.
const CLOCK_REFRESH: Duration = Duration::from_secs(300);

impl Clock {
    pub async fn now(&self, store: &Store) -> Result<OffsetDateTime, StoreError> {
        let mut read = self.read.lock().await;
        match *read {
            Some((at, when)) if when.elapsed() < CLOCK_REFRESH => Ok(at + when.elapsed()),
            _ => {
                let at = store.now().await?;
                *read = Some((at, Instant::now()));
                Ok(at)
            }
        }
    }
}

/// A claim this worker holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub key: String,
    etag: String,
    pub claim: Claim,
    /// The claim this one replaced, when it was taken over.
    pub previous: Option<Claim>,
}

/// What trying to claim gave.
#[derive(Debug)]
pub enum Claimed {
    Mine(Box<Held>),
    /// Another worker's live claim.
    Busy {
        owner: String,
    },
}

/// Whether a claim written at `modified` (store clock) with `lease` has run out at `now` (store
/// clock). Pure, for tables.
pub fn expired(claim: &Claim, modified: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    if claim.state == ClaimState::Released {
        return true;
    }
    match modified {
        Some(modified) => now - modified > Duration::from_secs(claim.lease_seconds),
        // No time to judge by: never take it (a second publish is worse than a late one).
        None => false,
    }
}

fn body(claim: &Claim) -> Bytes {
    Bytes::from(serde_json::to_vec(claim).unwrap_or_default())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Claims `key` for `owner`.
pub async fn acquire(
    store: &Store,
    clock: &Clock,
    key: &str,
    owner: &str,
    lease: Duration,
) -> Result<Claimed, StoreError> {
    let claim = Claim {
        owner: owner.into(),
        lease_seconds: lease.as_secs().max(1),
        state: ClaimState::Working,
        at: rfc3339(OffsetDateTime::now_utc()),
        build: None,
    };
    // A few rounds: each lost race means someone else wrote the claim, which the next round reads.
    for _ in 0..4 {
        if let Some(etag) = store.put_if_absent(key, body(&claim)).await? {
            return Ok(Claimed::Mine(Box::new(Held {
                key: key.into(),
                etag,
                claim,
                previous: None,
            })));
        }
        let Some((bytes, meta)) = store.get_with_meta(key).await? else {
            continue;
        };
        let current: Option<Claim> = serde_json::from_slice(&bytes).ok();
        let stale = match &current {
            Some(current) => expired(current, meta.last_modified, clock.now(store).await?),
            None => {
                tracing::warn!("{key}: unreadable claim; taking it over");
                true
            }
        };
        if !stale {
            let owner = current.map(|c| c.owner).unwrap_or_default();
            return Ok(Claimed::Busy { owner });
        }
        if let Some(etag) = store.put_if_match(key, body(&claim), &meta.etag).await? {
            if let Some(previous) = &current {
                if previous.state != ClaimState::Released {
                    tracing::info!(
                        "{key}: took over the expired claim of {} ({:?})",
                        previous.owner,
                        previous.state
                    );
                }
            }
            return Ok(Claimed::Mine(Box::new(Held {
                key: key.into(),
                etag,
                claim,
                previous: current,
            })));
        }
    }
    Ok(Claimed::Busy {
        owner: "(several workers at once)".into(),
    })
}

/// Rewrites a held claim to `state` (renewing its lease). `false` when it is no longer ours:
/// another worker took it over.
pub async fn update(
    store: &Store,
    held: &mut Held,
    state: ClaimState,
    build: Option<IntentBuild>,
) -> Result<bool, StoreError> {
    let mut claim = held.claim.clone();
    claim.state = state;
    claim.at = rfc3339(OffsetDateTime::now_utc());
    claim.build = build;
    match store
        .put_if_match(&held.key, body(&claim), &held.etag)
        .await?
    {
        Some(etag) => {
            held.etag = etag;
            held.claim = claim;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Gives a claim back so another worker may take the build at once; failures only delay that
/// until the lease runs out.
pub async fn release(store: &Store, mut held: Held) {
    if let Err(e) = update(store, &mut held, ClaimState::Released, None).await {
        tracing::info!(
            "{}: could not release the claim ({e}); it expires with its lease",
            held.key
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expiry_follows_the_store_clock() {
        let at = datetime!(2026-12-01 06:00 UTC);
        let claim = |state| Claim {
            owner: "w".into(),
            lease_seconds: 600,
            state,
            at: "1970-01-01T00:00:00Z".into(), // the owner's clock: ignored
            build: None,
        };
        let table = [
            (
                ClaimState::Working,
                Some(at),
                at + Duration::from_secs(599),
                false,
            ),
            (
                ClaimState::Working,
                Some(at),
                at + Duration::from_secs(601),
                true,
            ),
            (
                ClaimState::Publishing,
                Some(at),
                at + Duration::from_secs(601),
                true,
            ),
            (
                ClaimState::Publishing,
                Some(at),
                at - Duration::from_secs(3600),
                false,
            ),
            (ClaimState::Released, Some(at), at, true),
            (
                ClaimState::Working,
                None,
                at + Duration::from_secs(86400),
                false,
            ),
        ];
        for (state, modified, now, want) in table {
            assert_eq!(
                expired(&claim(state), modified, now),
                want,
                "{state:?} {now}"
            );
        }
    }

    #[tokio::test]
    async fn one_winner_and_takeover() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
        let clock = Clock::default();
        let lease = Duration::from_secs(600);
        let tries = (0..8).map(|i| {
            let (store, clock) = (&store, &clock);
            async move { acquire(store, clock, "c/k", &format!("w{i}"), lease).await }
        });
        let results = futures::future::join_all(tries).await;
        let mine: Vec<&Held> = results
            .iter()
            .filter_map(|r| match r {
                Ok(Claimed::Mine(h)) => Some(&**h),
                _ => None,
            })
            .collect();
        assert_eq!(mine.len(), 1, "{results:?}");
        let mut held = mine[0].clone();
        assert!(matches!(
            acquire(&store, &clock, "c/k", "late", lease).await.unwrap(),
            Claimed::Busy { .. }
        ));
        // Released claims are taken at once; the old holder then cannot publish.
        let stale = held.clone();
        release(&store, held.clone()).await;
        let Claimed::Mine(next) = acquire(&store, &clock, "c/k", "next", lease).await.unwrap()
        else {
            panic!("a released claim is free");
        };
        assert_eq!(next.previous.unwrap().state, ClaimState::Released);
        held = stale;
        assert!(!update(&store, &mut held, ClaimState::Publishing, None)
            .await
            .unwrap());
        // An expired claim (a zero-second lease, a second later) is taken over.
        let _ = acquire(&store, &clock, "c/short", "a", Duration::from_secs(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let Claimed::Mine(b) = acquire(&store, &clock, "c/short", "b", lease)
            .await
            .unwrap()
        else {
            panic!("an expired claim is taken over");
        };
        assert_eq!(b.previous.unwrap().owner, "a");
    }
}
