//! Where to cut a flat listing in two. A store lists one prefix page after page, each page
//! waiting for the one before it; keys past a cut can be listed at the same time by a listing
//! that starts after it (S3's `start-after`, GCS's `startOffset`, Azure's `startFrom`). The
//! cut is guessed from the keys seen: they are read as numbers, one digit per character, each
//! position in the smallest alphabet that holds its characters (digits, letters, digits and
//! letters, printable ASCII), so `part-00999` after `part-00000` reads as decimal and the
//! listing that keeps going is handed the keys from about `part-08991` on. A guess only
//! decides who lists what: the two ranges always cover exactly the keys the one did.

/// Positions valued, from a few before the first where the keys seen differ.
const WINDOW: usize = 16;
/// Positions before the first difference that are valued too, so that a carry has room.
const BACK: usize = 4;
/// How many pages' worth of keys (at the rate seen) the listing that cuts keeps for itself.
const KEEP_PAGES: u128 = 8;

const DIGITS: &[u8] = b"0123456789";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS_LOWER: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const DIGITS_UPPER: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PRINTABLE: &[u8] = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/// The smallest alphabet (each in byte order) holding every one of `chars`.
fn alphabet(chars: &[u8]) -> &'static [u8] {
    [
        DIGITS,
        UPPER,
        LOWER,
        DIGITS_LOWER,
        DIGITS_UPPER,
        ALNUM,
        PRINTABLE,
    ]
    .into_iter()
    .find(|a| chars.iter().all(|c| a.contains(c)))
    .unwrap_or(PRINTABLE)
}

/// A key's digit in `alphabet`: the last character not above it (0 below all of them, or past
/// its end), so that the value never decreases as the key grows.
fn digit(alphabet: &[u8], c: Option<u8>) -> u128 {
    let Some(c) = c else { return 0 };
    alphabet
        .iter()
        .take_while(|&&a| a <= c)
        .count()
        .saturating_sub(1) as u128
}

/// Positions `start..start + WINDOW` of keys read as one mixed-radix number.
struct Window {
    start: usize,
    alphabets: Vec<&'static [u8]>,
}

impl Window {
    fn value(&self, key: &[u8]) -> u128 {
        self.alphabets.iter().enumerate().fold(0, |v, (i, a)| {
            v * a.len() as u128 + digit(a, key.get(self.start + i).copied())
        })
    }

    /// One past the largest value.
    fn top(&self) -> u128 {
        self.alphabets.iter().map(|a| a.len() as u128).product()
    }

    /// The characters of `value`, without the trailing lowest ones (a shorter key).
    fn chars(&self, mut value: u128) -> Vec<u8> {
        let mut out = vec![0u8; self.alphabets.len()];
        for (i, a) in self.alphabets.iter().enumerate().rev() {
            let radix = a.len() as u128;
            out[i] = a[(value % radix) as usize];
            value /= radix;
        }
        while out.len() > 1 && out.last() == self.alphabets.get(out.len() - 1).map(|a| &a[0]) {
            out.pop();
        }
        out
    }
}

/// Where a listing of the keys under `prefix` that has gone from `first` to `last` in `pages`
/// pages, and ends at `end` (inclusive; `None`: the prefix's last key), hands the rest past a
/// cut to a new listing: a key strictly between `last` and `end`, or `None` when none is worth
/// it. The listing keeps `(last, cut]`, the new one takes `(cut, end]`.
pub(crate) fn cut(
    prefix: &str,
    first: &str,
    last: &str,
    pages: u32,
    end: Option<&str>,
) -> Option<String> {
    let (f, l) = (first.as_bytes(), last.as_bytes());
    if !first.starts_with(prefix) || !last.starts_with(prefix) || last <= first {
        return None;
    }
    let differ = f.iter().zip(l).take_while(|(a, b)| a == b).count();
    let mut start = differ.saturating_sub(BACK).max(prefix.len());
    while !first.is_char_boundary(start) {
        start -= 1;
    }
    let head = &first[..start];
    let alphabets = (start..start + WINDOW)
        .map(|i| {
            let seen: Vec<u8> = [f.get(i), l.get(i)]
                .into_iter()
                .flatten()
                .copied()
                .collect();
            if seen.is_empty() {
                PRINTABLE
            } else {
                alphabet(&seen)
            }
        })
        .collect();
    let window = Window { start, alphabets };
    let (fv, lv) = (window.value(f), window.value(l));
    // The end, as a value: past the window when it does not share the window's head.
    let ev = match end {
        Some(e) if e.as_bytes().starts_with(head.as_bytes()) => window.value(e.as_bytes()),
        _ => window.top(),
    };
    if ev <= lv {
        return None;
    }
    // Characters outside an alphabet are read as its nearest: a later key may read lower.
    let per_page = lv.saturating_sub(fv) / u128::from(pages.max(1));
    let ahead = per_page.saturating_mul(KEEP_PAGES);
    let at = match lv.checked_add(ahead) {
        Some(at) if ahead > 0 && at < ev => at,
        _ => lv + (ev - lv) / 2,
    };
    if at <= lv {
        return None;
    }
    let mut key = head.to_string();
    key.push_str(std::str::from_utf8(&window.chars(at)).ok()?);
    let inside = key.as_str() > last && end.is_none_or(|e| key.as_str() < e);
    inside.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parts_are_cut_eight_pages_ahead() {
        let at = cut(
            "data/",
            "data/part-00000.parquet",
            "data/part-00999.parquet",
            1,
            None,
        );
        assert_eq!(at.as_deref(), Some("data/part-08991.parquet"));
        // The rate is per page: after three pages of a thousand keys, eight more.
        let at = cut(
            "data/",
            "data/part-00000.parquet",
            "data/part-02999.parquet",
            3,
            None,
        );
        assert!(at.unwrap().starts_with("data/part-10996"));
    }

    #[test]
    fn an_end_too_near_is_halved_toward() {
        let at = cut(
            "data/",
            "data/part-00000.parquet",
            "data/part-00999.parquet",
            1,
            Some("data/part-02000.parquet"),
        )
        .unwrap();
        assert!(
            at.as_str() > "data/part-00999.parquet" && at.as_str() < "data/part-02000.parquet",
            "{at}"
        );
        assert!(at.starts_with("data/part-01"), "{at}");
    }

    #[test]
    fn no_cut_when_nothing_lies_between() {
        assert_eq!(cut("d/", "d/a", "d/a", 1, None), None);
        assert_eq!(cut("d/", "d/a", "d/b", 1, Some("d/b")), None);
        assert_eq!(cut("d/", "d/b", "d/a", 1, None), None);
        assert_eq!(cut("d/", "e/a", "e/b", 1, None), None);
    }

    /// Whatever the keys, a cut lies strictly between the last key and the end, under the
    /// prefix, and is ASCII after the head it shares with the keys.
    #[test]
    fn every_cut_lies_inside_its_range() {
        let names = [
            "a",
            "b",
            "z",
            "0",
            "9",
            "00",
            "0a",
            "Zz",
            "part-1",
            "part-10",
            "part-9.csv",
            "x/y",
            "~",
            "~~",
            " ",
            "é",
            "ü.csv",
            "日本",
            "a b",
            "A",
            "f0e1d2c3",
            "ffff",
            "2024-01-01T00:00:00Z",
            "2024-12-31",
            "\u{7f}",
            "zzzzzzzzzzzzzzzzzzzzzzzz",
        ];
        let mut cuts = 0;
        for f in &names {
            for l in &names {
                for e in names.iter().map(Some).chain([None]) {
                    let (first, last) = (format!("p/{f}"), format!("p/{l}"));
                    let end = e.map(|e| format!("p/{e}"));
                    for pages in [1, 2, 7] {
                        if let Some(at) = cut("p/", &first, &last, pages, end.as_deref()) {
                            cuts += 1;
                            assert!(at.as_str() > last.as_str(), "{at:?} after {last:?}");
                            if let Some(end) = &end {
                                assert!(at.as_str() < end.as_str(), "{at:?} before {end:?}");
                            }
                            assert!(at.starts_with("p/"), "{at:?}");
                        }
                    }
                }
            }
        }
        assert!(cuts > 1000, "only {cuts} cuts");
    }
}
