//! A local directory as a store, confined to its root.
//!
//! - Every key passes [`super::check_key`], and the joined path must consist of plain names only
//!   (no root, drive prefix, `.` or `..`), so a key cannot point outside the root.
//! - Directories are created one by one below the root; an existing symbolic link on the way is
//!   refused, so a link planted inside the root cannot redirect a write outside it.
//! - Writes are atomic: the body goes to a temporary file (`.ctm-tmp-*`) in the target's
//!   directory, which is then renamed over the target. A reader sees the old file or the whole
//!   new one, never half a file. Listings skip temporary files.
//! - Listings walk the directory without following links and return keys relative to the root,
//!   with `/` separators, sorted. A listing that starts after a key skips whole directories that
//!   sort before it, so a time-ordered index costs what it returns.
//! - Conditional writes: [`LocalStore::put_if_absent`] publishes the new file with a hard link,
//!   which fails if the target exists (atomic, also across processes). [`LocalStore::put_if_match`]
//!   holds an exclusive lock on a hidden per-object lock file while it compares and replaces. The
//!   ETag is the SHA-256 of the content.
//!
//! The file-system work is blocking and runs on Tokio's blocking pool.

use super::{check_key, BodyReader, Meta, ObjectInfo, Stats, StoreError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Temporary files start with this; keys whose last segment does too are refused.
const TEMP_PREFIX: &str = ".ctm-tmp-";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    pub(super) stats: Arc<Stats>,
}

impl LocalStore {
    /// A store rooted at `path`. The directory is created on the first write.
    pub fn open(path: &str) -> Result<LocalStore, StoreError> {
        if path.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: path.into(),
                reason: "the directory is empty".into(),
            });
        }
        Ok(LocalStore {
            root: PathBuf::from(path),
            stats: Arc::default(),
        })
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        Stats::count(&self.stats.puts, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || put(&root, &key, &body, Publish::Replace).map(|_| ())).await
    }

    pub async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
    ) -> Result<Option<String>, StoreError> {
        Stats::count(&self.stats.puts, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || put(&root, &key, &body, Publish::IfAbsent)).await
    }

    pub async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        etag: &str,
    ) -> Result<Option<String>, StoreError> {
        Stats::count(&self.stats.puts, 1);
        let root = self.root.clone();
        let key = key.to_string();
        let etag = etag.to_string();
        blocking(move || put_if_match(&root, &key, &body, &etag)).await
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        Stats::count(&self.stats.gets, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || {
            let path = checked_path(&root, &key)?;
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| io_error(&key, e))
        })
        .await
    }

    pub async fn get_with_meta(&self, key: &str) -> Result<Option<(Bytes, Meta)>, StoreError> {
        Stats::count(&self.stats.gets, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || {
            let path = match checked_path(&root, &key) {
                Ok(path) => path,
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            match std::fs::read(&path) {
                Ok(body) => {
                    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                    let meta = Meta {
                        etag: etag_of(&body),
                        last_modified: modified.map(time::OffsetDateTime::from),
                        size: body.len() as u64,
                    };
                    Ok(Some((Bytes::from(body), meta)))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(&key, e)),
            }
        })
        .await
    }

    /// Like [`LocalStore::get_with_meta`]: the ETag is a content hash, so it reads the file.
    pub async fn head(&self, key: &str) -> Result<Option<Meta>, StoreError> {
        let found = self.get_with_meta(key).await?;
        Ok(found.map(|(_, meta)| meta))
    }

    pub async fn reader(&self, key: &str) -> Result<BodyReader, StoreError> {
        Stats::count(&self.stats.gets, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || {
            let path = checked_path(&root, &key)?;
            let file = std::fs::File::open(&path).map_err(|e| io_error(&key, e))?;
            Ok(Box::new(file) as BodyReader)
        })
        .await
    }

    pub async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, StoreError> {
        Stats::count(&self.stats.gets, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let path = checked_path(&root, &key)?;
            let mut file = std::fs::File::open(&path).map_err(|e| io_error(&key, e))?;
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_error(&key, e))?;
            let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 26));
            file.take(len)
                .read_to_end(&mut body)
                .map_err(|e| io_error(&key, e))?;
            Ok(Bytes::from(body))
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        Stats::count(&self.stats.deletes, 1);
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || {
            let path = match checked_path(&root, &key) {
                Ok(path) => path,
                Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error(&key, e)),
            }
        })
        .await
    }

    pub async fn list(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<ObjectInfo>, StoreError> {
        Stats::count(&self.stats.lists, 1);
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let start_after = start_after.to_string();
        blocking(move || list(&root, &prefix, &start_after)).await
    }

    pub fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Other {
            key: String::new(),
            message: format!("file-system task failed: {e}"),
        })
    })
}

fn io_error(key: &str, e: std::io::Error) -> StoreError {
    match e.kind() {
        ErrorKind::NotFound => StoreError::NotFound { key: key.into() },
        ErrorKind::PermissionDenied => StoreError::AccessDenied {
            key: key.into(),
            message: e.to_string(),
        },
        _ => StoreError::Other {
            key: key.into(),
            message: e.to_string(),
        },
    }
}

/// The path of a checked key; every component below the root must be a plain name.
fn resolve(root: &Path, key: &str) -> Result<PathBuf, StoreError> {
    check_key(key)?;
    let relative = Path::new(key);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let last = key.rsplit('/').next().unwrap_or(key);
    if !plain || last.starts_with(TEMP_PREFIX) {
        return Err(StoreError::InvalidKey {
            key: key.into(),
            reason: "not a plain relative path in this store".into(),
        });
    }
    Ok(root.join(relative))
}

/// Fails when `dir` or a directory between it and the root is a symbolic link or not a
/// directory; with `create`, makes the missing ones.
fn check_dirs(root: &Path, dir: &Path, key: &str, create: bool) -> Result<(), StoreError> {
    if create {
        std::fs::create_dir_all(root).map_err(|e| io_error(key, e))?;
    }
    let Ok(below) = dir.strip_prefix(root) else {
        return Ok(());
    };
    let mut dir = root.to_path_buf();
    for part in below.components() {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(StoreError::InvalidKey {
                    key: key.into(),
                    reason: format!("{} is not a plain directory", dir.display()),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        // Another writer made it meanwhile; check it on the next pass.
                        let m = std::fs::symlink_metadata(&dir).map_err(|e| io_error(key, e))?;
                        if !m.is_dir() {
                            return Err(StoreError::InvalidKey {
                                key: key.into(),
                                reason: format!("{} is not a plain directory", dir.display()),
                            });
                        }
                    }
                    Err(e) => return Err(io_error(key, e)),
                }
            }
            Err(e) => return Err(io_error(key, e)),
        }
    }
    Ok(())
}

/// How [`put`] publishes the finished temporary file.
#[derive(Clone, Copy, PartialEq)]
enum Publish {
    /// rename over the target (replaces a link at the target rather than following it).
    Replace,
    /// hard link to the target, which fails if it exists.
    IfAbsent,
}

/// The path of a key to read, with every directory on the way checked.
fn checked_path(root: &Path, key: &str) -> Result<PathBuf, StoreError> {
    let path = resolve(root, key)?;
    check_dirs(root, path.parent().unwrap_or(root), key, false)?;
    Ok(path)
}

/// The local ETag: the content's SHA-256.
fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

/// Writes `body` to a temporary file beside the target and publishes it; returns the ETag, or
/// `None` when `IfAbsent` found the target already there.
fn put(root: &Path, key: &str, body: &[u8], how: Publish) -> Result<Option<String>, StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let path = resolve(root, key)?;
    let dir = path.parent().unwrap_or(root);
    check_dirs(root, dir, key, true)?;
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(body)?;
        file.sync_all()?;
        match how {
            Publish::Replace => std::fs::rename(&temp, &path),
            Publish::IfAbsent => {
                let linked = std::fs::hard_link(&temp, &path);
                let _ = std::fs::remove_file(&temp);
                linked
            }
        }
    })();
    match written {
        Ok(()) => Ok(Some(etag_of(body))),
        Err(e) if how == Publish::IfAbsent && e.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(io_error(key, e))
        }
    }
}

/// Compares the current content's ETag and replaces it, under an exclusive lock that every
/// `put_if_match` on the key takes (a hidden lock file beside the object).
fn put_if_match(
    root: &Path,
    key: &str,
    body: &[u8],
    etag: &str,
) -> Result<Option<String>, StoreError> {
    let path = resolve(root, key)?;
    let dir = path.parent().unwrap_or(root);
    check_dirs(root, dir, key, true)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    let lock_path = dir.join(format!("{TEMP_PREFIX}lock-{name}"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(key, e))?;
    lock.lock().map_err(|e| io_error(key, e))?;
    let current = match std::fs::read(&path) {
        Ok(current) => current,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(key, e)),
    };
    if etag_of(&current) != etag {
        return Ok(None);
    }
    let replaced = put(root, key, body, Publish::Replace);
    drop(lock);
    replaced
}

fn list(root: &Path, prefix: &str, start_after: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    // Walk only the deepest directory the prefix names in full; filter the rest by string.
    let dir_key = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    let start = if dir_key.is_empty() {
        root.to_path_buf()
    } else {
        let dir = resolve(root, dir_key)?;
        if check_dirs(root, &dir, dir_key, false).is_err() {
            return Ok(vec![]); // missing, or not a plain directory: nothing to list
        }
        dir
    };
    let mut out = Vec::new();
    let mut stack = vec![(start, dir_key.to_string())];
    while let Some((dir, key_dir)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&key_dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&key_dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!("{}: skipped, the name is not UTF-8", entry.path().display());
                continue;
            };
            // A write in progress elsewhere: its temporary file is not an object, and it may be
            // gone (renamed or linked into place) by the time it is looked at.
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let key = if key_dir.is_empty() {
                name.clone()
            } else {
                format!("{key_dir}/{name}")
            };
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed since the directory was read: no longer there to list.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&key, e)),
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                let below = format!("{key}/");
                // Every key below sorts before start_after when start_after sorts after `below`
                // without extending it: skip the whole directory.
                let skipped = !start_after.is_empty()
                    && start_after > below.as_str()
                    && !start_after.starts_with(&below);
                if !skipped && (key.starts_with(prefix) || prefix.starts_with(&below)) {
                    stack.push((entry.path(), key));
                }
            } else if kind.is_file() && key.starts_with(prefix) && key.as_str() > start_after {
                out.push(ObjectInfo {
                    key,
                    size: meta.len(),
                    last_modified: meta.modified().ok().map(time::OffsetDateTime::from),
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let store = LocalStore::open(root.to_str().unwrap()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn put_get_list() {
        let (_dir, s) = store();
        assert!(
            s.list("", "").await.unwrap().is_empty(),
            "missing root lists empty"
        );
        for key in [
            "j/b/2/r.xml",
            "j/b/1/context.json",
            "j/b/10/r.xml",
            "k/x",
            "_ci-test-metrics/l",
        ] {
            s.put(key, Bytes::from(key.to_string())).await.unwrap();
        }
        s.put("k/x", Bytes::from_static(b"new")).await.unwrap();
        assert_eq!(s.get("k/x").await.unwrap(), Bytes::from_static(b"new"));
        assert!(matches!(
            s.get("k/y").await,
            Err(StoreError::NotFound { .. })
        ));
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list("", "").await.unwrap()),
            [
                "_ci-test-metrics/l",
                "j/b/1/context.json",
                "j/b/10/r.xml",
                "j/b/2/r.xml",
                "k/x"
            ]
        );
        assert_eq!(
            keys(s.list("j/b/1", "").await.unwrap()),
            ["j/b/1/context.json", "j/b/10/r.xml"]
        );
        assert_eq!(
            keys(s.list("j/b/1/", "").await.unwrap()),
            ["j/b/1/context.json"]
        );
        assert_eq!(keys(s.list("j/", "").await.unwrap()).len(), 3);
        assert!(s.list("nothing/here/", "").await.unwrap().is_empty());
        let info = &s.list("k/", "").await.unwrap()[0];
        assert_eq!(info.size, 3);
        assert!(info.last_modified.is_some());
    }

    #[tokio::test]
    async fn never_writes_outside_root() {
        let (dir, s) = store();
        let bad = [
            "../x",
            "../../x",
            "a/../../x",
            "/abs",
            "/etc/passwd",
            "a\\..\\..\\x",
            "..",
            "a//b",
            "a/./b",
            "a\u{0}b",
            "a/\nb",
            "",
            "a/.ctm-tmp-1-1",
        ];
        for key in bad {
            let err = s.put(key, Bytes::from_static(b"x")).await.unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidKey { .. }),
                "{key:?}: {err}"
            );
            assert!(s.get(key).await.is_err(), "{key:?}");
        }
        // Nothing landed beside the root.
        let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(beside.len(), 0, "{beside:?}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn refuses_symlinked_directories() {
        let (dir, s) = store();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        s.put("keep", Bytes::from_static(b"x")).await.unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("root/link")).unwrap();
        let err = s.put("link/x", Bytes::from_static(b"x")).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
        assert!(s.get("link/x").await.is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let keys: Vec<_> = s
            .list("", "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["keep"]);
    }

    #[tokio::test]
    async fn lists_after_a_key() {
        let (_dir, s) = store();
        for key in [
            "t/2026/11/30/x",
            "t/2026/12/01/a",
            "t/2026/12/01/b",
            "t/2026/12/02/c",
            "u/1",
        ] {
            s.put(key, Bytes::new()).await.unwrap();
        }
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        let table: [(&str, &str, &[&str]); 5] = [
            (
                "t/",
                "",
                &[
                    "t/2026/11/30/x",
                    "t/2026/12/01/a",
                    "t/2026/12/01/b",
                    "t/2026/12/02/c",
                ],
            ),
            (
                "t/",
                "t/2026/12/01",
                &["t/2026/12/01/a", "t/2026/12/01/b", "t/2026/12/02/c"],
            ),
            (
                "t/",
                "t/2026/12/01/a",
                &["t/2026/12/01/b", "t/2026/12/02/c"],
            ),
            ("t/", "t/2026/12/02/c", &[]),
            ("", "t/9", &["u/1"]),
        ];
        for (prefix, after, want) in table {
            assert_eq!(
                keys(s.list(prefix, after).await.unwrap()),
                want,
                "{prefix} after {after}"
            );
        }
    }

    #[tokio::test]
    async fn conditional_writes() {
        let (_dir, s) = store();
        let first = s
            .put_if_absent("c/k", Bytes::from_static(b"one"))
            .await
            .unwrap();
        let etag = first.expect("created");
        assert_eq!(
            s.put_if_absent("c/k", Bytes::from_static(b"two"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(s.get("c/k").await.unwrap(), Bytes::from_static(b"one"));
        let meta = s.head("c/k").await.unwrap().expect("exists");
        assert_eq!(meta.etag, etag);
        assert_eq!(s.head("c/none").await.unwrap(), None);
        assert_eq!(s.head("no/such/dir").await.unwrap(), None);
        let second = s
            .put_if_match("c/k", Bytes::from_static(b"two"), &etag)
            .await
            .unwrap();
        assert!(second.is_some());
        assert_eq!(
            s.put_if_match("c/k", Bytes::from_static(b"three"), &etag)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.put_if_match("c/none", Bytes::from_static(b"x"), &etag)
                .await
                .unwrap(),
            None
        );
        assert_eq!(s.get("c/k").await.unwrap(), Bytes::from_static(b"two"));
        assert_eq!(
            keys_of(&s).await,
            ["c/k"],
            "no lock or temporary file is listed"
        );
        // Many writers at once: exactly one exclusive create wins.
        let tries = (0..16u8).map(|i| s.put_if_absent("c/race", Bytes::from(vec![i])));
        let won = futures::future::join_all(tries)
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
        assert_eq!(won, 1);
        let mut body = String::new();
        std::io::Read::read_to_string(&mut s.reader("c/k").await.unwrap(), &mut body).unwrap();
        assert_eq!(body, "two");
    }

    async fn keys_of(s: &LocalStore) -> Vec<String> {
        s.list("", "")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }

    #[tokio::test]
    async fn concurrent_writes_are_whole() {
        let (_dir, s) = store();
        let bodies: Vec<Bytes> = (0..8u8).map(|i| Bytes::from(vec![i; 100_000])).collect();
        let writes = bodies.iter().map(|b| s.put("a/b/same", b.clone()));
        for r in futures::future::join_all(writes).await {
            r.unwrap();
        }
        let got = s.get("a/b/same").await.unwrap();
        assert!(bodies.contains(&got), "the file is one whole body");
        assert_eq!(
            s.list("a/", "").await.unwrap().len(),
            1,
            "no temporary files left"
        );
    }
}
