//! Query strings, read strictly. A parameter the edge acts on (`digest`, `mount`, `from`, `n`,
//! `last`, `artifactType`, `service`, `tag`, ...) is taken once: a repeated one is refused with 400,
//! because two readers of one query (the edge, then the origin) could each pick a different copy.
//! Values are decoded once, here (`application/x-www-form-urlencoded`); nothing the edge forwards is
//! copied from a raw query string: it is rebuilt from values parsed through this type.

use std::borrow::Cow;

use crate::error::{Error, ErrorCode};

/// The decoded `key=value` pairs of one query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        Query::from_bytes(query.unwrap_or("").as_bytes())
    }

    /// A query or a form body.
    pub fn from_bytes(bytes: &[u8]) -> Query {
        Query {
            pairs: url::form_urlencoded::parse(bytes)
                .map(|(k, v): (Cow<str>, Cow<str>)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The one value of `key`, `None` when absent; an error when it appears more than once.
    pub fn single<'a>(&'a self, key: &'a str) -> Result<Option<&'a str>, Error> {
        let mut values = self.all(key);
        let first = values.next();
        let more = values.count();
        if more > 0 {
            return Err(repeated(key, more + 1));
        }
        Ok(first)
    }

    /// Every value of `key` (for parameters that may repeat, such as `scope`).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// The 400 for a parameter that must appear once.
pub fn repeated(key: &str, times: usize) -> Error {
    Error::new(ErrorCode::BadRequest)
        .with_message(format!(
            "the query parameter {key:?} appears {times} times; the registry takes it once"
        ))
        .with_detail(serde_json::json!({ "parameter": key }))
}

/// A query string of `pairs`, encoded (`None` for no pairs).
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        serializer.append_pair(k, v);
        any = true;
    }
    any.then(|| serializer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_acted_on_are_taken_once() {
        let q = Query::parse(Some("from=a%2Fb&mount=x&from=c&scope=1&scope=2"));
        let err = q.single("from").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.unwrap().contains("\"from\" appears 2 times"));
        assert_eq!(q.single("mount").unwrap(), Some("x"));
        assert_eq!(q.single("digest").unwrap(), None);
        assert_eq!(q.all("scope").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(Query::parse(None), Query::default());
    }

    #[test]
    fn encoding_round_trips() {
        let q = encode([("_state", "a=b&c"), ("digest", "sha256:00")]).unwrap();
        assert_eq!(q, "_state=a%3Db%26c&digest=sha256%3A00");
        let back = Query::parse(Some(&q));
        assert_eq!(back.single("_state").unwrap(), Some("a=b&c"));
        assert_eq!(encode([]), None);
    }
}
