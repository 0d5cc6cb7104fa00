//! An S3 bucket as a store, through aws-sdk-s3 (placeholder until the store lands).

use super::{ObjectInfo, StoreError};
use bytes::Bytes;

#[derive(Debug, Clone)]
pub struct S3Store {
    url: String,
}

impl S3Store {
    pub async fn open(path: &str) -> Result<S3Store, StoreError> {
        Ok(S3Store {
            url: String::from(path),
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
        self.url.clone()
    }
}
