//! Lists (tags, repositories): their cache entries and their pages.

use crate::handlers::{decode_lines, encode_lines, next_link, paginate};
use crate::route::Page;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn line_entries_round_trip() {
    for names in [strings(&[]), strings(&["a"]), strings(&["a/b", "c", "1.0"])] {
        assert_eq!(decode_lines(&encode_lines(&names)), Some(names));
    }
}

#[test]
fn pages() {
    let all = strings(&["a", "b", "c", "d"]);
    let gt = |e: &str, l: &str| e > l;
    let p = |n: Option<usize>, last: Option<&str>| Page {
        n,
        last: last.map(str::to_owned),
    };
    let cases = [
        ((None, None, None), (0..4, None)),
        ((Some(2), None, None), (0..2, Some("b"))),
        ((Some(2), Some("b"), None), (2..4, None)),
        ((Some(2), Some("bb"), None), (2..4, None)),
        ((None, Some("a"), Some(1)), (1..2, Some("b"))),
        ((Some(0), None, None), (0..0, None)),
        ((Some(9), Some("d"), None), (4..4, None)),
    ];
    for ((n, last, default_n), (entries, next)) in cases {
        assert_eq!(
            paginate(&all, &p(n, last), default_n, gt),
            (&all[entries], next.map(str::to_owned)),
            "n={n:?} last={last:?} default_n={default_n:?}"
        );
    }
    assert_eq!(
        next_link("/v2/a/tags/list", "b/c", 2),
        "</v2/a/tags/list?last=b%2Fc&n=2>; rel=\"next\""
    );
}
