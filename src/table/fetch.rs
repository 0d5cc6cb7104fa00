//! Reading table files from a store with range GETs (async): a file's footer, then only the
//! column chunks a reader needs, never the whole object.

use super::decode::{self, Ranges, FOOTER_GUESS, TAIL};
use super::TableError;
use crate::store::Store;
use parquet::file::metadata::ParquetMetaData;

/// A file's footer: its metadata, and the fetched tail (to which column chunks are added).
pub struct Footer {
    pub key: String,
    pub ranges: Ranges,
    pub meta: ParquetMetaData,
}

/// Fetches the footer of the `size`-byte file at `key`: one range GET of its last 64 KiB, and a
/// second when the metadata is larger than that.
pub async fn footer(store: &Store, key: &str, size: u64) -> Result<Footer, TableError> {
    let invalid = |message: String| TableError::Invalid {
        key: key.to_string(),
        message,
    };
    if size < TAIL + 4 {
        return Err(invalid(format!(
            "{size} bytes is too short for a Parquet file"
        )));
    }
    let first = FOOTER_GUESS.min(size);
    let tail = store.get_range(key, size - first, first).await?;
    let Some(meta_len) = decode::metadata_len(&tail) else {
        return Err(invalid(
            "it does not end with PAR1: not a Parquet file, or cut short".into(),
        ));
    };
    let mut ranges = Ranges::new(size);
    let need = meta_len + TAIL;
    if need > size {
        return Err(invalid(format!(
            "its footer claims {meta_len} bytes of metadata, more than the file"
        )));
    }
    if need > first {
        let rest = store.get_range(key, size - need, need - first).await?;
        ranges.insert(size - need, rest);
    }
    ranges.insert(size - first, tail);
    let meta = decode::metadata(&ranges).map_err(TableError::parquet(key))?;
    Ok(Footer {
        key: key.to_string(),
        ranges,
        meta,
    })
}

impl Footer {
    /// Fetches the span of `columns` in each of `row_groups` (one range GET per row group).
    pub async fn fetch_columns(
        &mut self,
        store: &Store,
        row_groups: &[usize],
        columns: &[usize],
    ) -> Result<(), TableError> {
        for &rg in row_groups {
            let (start, len) = decode::span(&self.meta, rg, columns);
            if start
                .checked_add(len)
                .is_none_or(|end| end > parquet::file::reader::Length::len(&self.ranges))
            {
                return Err(TableError::Invalid {
                    key: self.key.clone(),
                    message: format!("row group {rg} lies outside the file"),
                });
            }
            let bytes = store.get_range(&self.key, start, len).await?;
            self.ranges.insert(start, bytes);
        }
        Ok(())
    }
}
