//! Parquet fixtures written at test time, with the crate's own test writer.

use std::path::Path;

/// Writes `id` int64 plus a nullable string column named `col` (null where `None`).
pub fn write_named(path: &Path, col: &str, ids: &[i64], names: &[Option<&str>]) {
    fanout::testing::write_parquet(path, col, ids, names, true);
}

/// `n` rows: ids in the given order, names "n<id>".
pub fn write(path: &Path, ids: &[i64]) {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    let refs: Vec<Option<&str>> = names.iter().map(|s| Some(s.as_str())).collect();
    write_named(path, "name", ids, &refs);
}
