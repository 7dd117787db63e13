//! Parquet fixtures written at test time with the parquet crate's low-level writer (no arrow).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Writes `id` int64 plus a nullable string column named `col` (null where `None`).
pub fn write_named(path: &Path, col: &str, ids: &[i64], names: &[Option<&str>]) {
    let schema = Arc::new(
        parse_message_type(&format!(
            "message m {{ required int64 id; optional binary {col} (UTF8); }}"
        ))
        .unwrap(),
    );
    let file = File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int64Type>().write_batch(ids, None, None).unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    let values: Vec<ByteArray> = names
        .iter()
        .flatten()
        .map(|s| ByteArray::from(*s))
        .collect();
    let defs: Vec<i16> = names.iter().map(|n| n.is_some() as i16).collect();
    c.typed::<ByteArrayType>()
        .write_batch(&values, Some(&defs), None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

/// `n` rows: ids in the given order, names "n<id>".
pub fn write(path: &Path, ids: &[i64]) {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    let refs: Vec<Option<&str>> = names.iter().map(|s| Some(s.as_str())).collect();
    write_named(path, "name", ids, &refs);
}
