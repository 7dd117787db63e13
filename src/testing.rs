//! What fanout's tests share with the crate: a small parquet writer (the parquet crate's
//! low-level writer, no arrow), so unit and integration tests make their fixtures one way.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Writes `id` int64 and a nullable string column named `col` (null where `None`), with or
/// without column statistics. Panics on any error: it is for tests.
pub fn write_parquet(
    path: &Path,
    col: &str,
    ids: &[i64],
    names: &[Option<&str>],
    statistics: bool,
) {
    let schema = Arc::new(
        parse_message_type(&format!(
            "message m {{ required int64 id; optional binary {col} (UTF8); }}"
        ))
        .expect("schema"),
    );
    let file = File::create(path).expect("create the parquet file");
    let stats = if statistics {
        EnabledStatistics::Page
    } else {
        EnabledStatistics::None
    };
    let props = Arc::new(
        WriterProperties::builder()
            .set_statistics_enabled(stats)
            .build(),
    );
    let mut w = SerializedFileWriter::new(file, schema, props).expect("writer");
    let mut rg = w.next_row_group().expect("row group");
    let mut c = rg.next_column().expect("column").expect("id column");
    c.typed::<Int64Type>()
        .write_batch(ids, None, None)
        .expect("ids");
    c.close().expect("close ids");
    let mut c = rg.next_column().expect("column").expect("string column");
    let values: Vec<ByteArray> = names
        .iter()
        .flatten()
        .map(|s| ByteArray::from(*s))
        .collect();
    let defs: Vec<i16> = names.iter().map(|n| i16::from(n.is_some())).collect();
    c.typed::<ByteArrayType>()
        .write_batch(&values, Some(&defs), None)
        .expect("strings");
    c.close().expect("close strings");
    rg.close().expect("close row group");
    w.close().expect("close file");
}
