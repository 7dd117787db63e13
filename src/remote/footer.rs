//! An object's parquet footer and weight, read with ranged GETs of its end: never a full
//! download.

use crate::parquet::{self, Footer};

use super::object::Object;
use super::store::stores;

/// How much of an object's end the first read takes (most footers fit).
const FIRST_READ: u64 = 64 << 10;

/// The footer of the listed version of `object`.
pub(crate) fn footer(object: &Object) -> Result<Footer, String> {
    let first = FIRST_READ.min(object.size);
    let tail = stores()
        .read_tail(object, first)
        .map_err(|e| format!("{e:#}"))?;
    match parquet::footer_from_tail(tail, object.size)? {
        Ok(footer) => Ok(footer),
        Err(needed) if (needed as u64) <= object.size && needed as u64 > first => {
            let tail = stores()
                .read_tail(object, needed as u64)
                .map_err(|e| format!("{e:#}"))?;
            parquet::footer_from_tail(tail, object.size)?
                .map_err(|_| "the footer could not be read".to_string())
        }
        Err(_) => Err("the footer could not be read".to_string()),
    }
}

/// An object's memory weight: for parquet the decoded size its footer estimates, else (or
/// when the footer cannot be read) its size.
pub(crate) fn weight(object: &Object) -> u64 {
    if parquet::is_parquet_name(std::path::Path::new(object.url.file_name())) {
        if let Ok(footer) = footer(object) {
            return footer.decoded_bytes.max(1);
        }
    }
    object.size
}
