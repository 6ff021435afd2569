//! The API's handlers, one file per resource. Each is an `impl App` block: names, tags and digests
//! arrive parsed; reads go through the cache into storage, writes to the origin (`forward`); each
//! returns a response or an `Error`.

mod blobs;
mod catalog;
mod forward;
pub(crate) mod index;
mod manage;
pub(crate) mod manifests;
mod referrers;
mod tags;
mod token;
mod uploads;
mod webhooks;

pub(crate) use forward::writes_disabled;

use crate::route::Page;

/// Most entries one page of a list returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 1000;

/// One page of a sorted list: the entries after `last` (by `after`), at most `n` of them, and the
/// value of `last` for the next page when more entries follow.
pub(crate) fn paginate<'a>(
    sorted: &'a [String],
    page: &Page,
    default_n: Option<usize>,
    after: impl Fn(&str, &str) -> bool,
) -> (&'a [String], Option<String>) {
    let start = match &page.last {
        Some(last) => sorted.partition_point(|entry| !after(entry, last)),
        None => 0,
    };
    let rest = &sorted[start..];
    let n = page.n.or(default_n).unwrap_or(rest.len()).min(MAX_PAGE);
    if rest.len() > n {
        let entries = &rest[..n];
        (entries, entries.last().cloned())
    } else {
        (rest, None)
    }
}

/// `Link: <path?last=..&n=..>; rel="next"`, as the spec and distribution write it.
pub(crate) fn next_link(path: &str, last: &str, n: usize) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("last", last)
        .append_pair("n", &n.to_string())
        .finish();
    format!("<{path}?{query}>; rel=\"next\"")
}

/// JSON bytes ending in a newline, as distribution writes its list bodies.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("JSON serializes");
    bytes.push(b'\n');
    bytes
}

/// A list of names (tags, repositories) as a cache entry: one per line (no name holds a newline),
/// which reads back without a JSON parser.
pub(crate) fn encode_lines(names: &[String]) -> Vec<u8> {
    names.join("\n").into_bytes()
}

pub(crate) fn decode_lines(entry: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(entry).ok()?;
    Some(if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    })
}

#[cfg(test)]
mod tests;
