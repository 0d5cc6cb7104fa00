//! Uploads one build's result files, then its `context.json`, through a [`crate::store::Store`]
//! with PutObject only (placeholder until the upload lands).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum UploadError {
    #[error("no file matched {patterns:?}")]
    NoFiles { patterns: Vec<String> },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl UploadError {
    pub fn exit_code(&self) -> u8 {
        match self {
            UploadError::NoFiles { .. } => crate::error::exit::EMPTY,
            UploadError::Store(_) => crate::error::exit::PUBLISH,
        }
    }
}
