//! A local directory as a store, confined to its root (placeholder until the store lands).

use super::{ObjectInfo, StoreError};
use bytes::Bytes;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(path: &str) -> Result<LocalStore, StoreError> {
        Ok(LocalStore {
            root: PathBuf::from(path),
        })
    }
    pub async fn put(&self, key: &str, _body: Bytes) -> Result<(), StoreError> {
        Err(StoreError::Other {
            key: key.into(),
            message: "not implemented".into(),
        })
    }
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        Err(StoreError::NotFound { key: key.into() })
    }
    pub async fn list(&self, _prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        Ok(vec![])
    }
    pub fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
