//! Units in fanout's messages: byte counts as people read them. A foundation module, so the
//! progress bar and the reports can use it without reaching into memory accounting.

/// Human form of a byte count, for messages.
pub(crate) fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn byte_counts_read_as_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(2048), "2 KiB");
        assert_eq!(human(600 << 20), "600 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
