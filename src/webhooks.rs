//! Webhooks: the registry's events delivered to receivers, as Azure Container Registry delivers
//! them, so that a receiver written for ACR works unchanged; signed, filtered by action and
//! scope, queued after the origin's success and delivered by the queue consumer with retries, and
//! logged per webhook. Pure: the records, the payload, the signature, the scope and the retry
//! policy. `handlers::webhooks` queues and delivers; `handlers::manage` manages them.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a webhook can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Push,
    Delete,
    /// A Helm chart pushed as an OCI artifact (its config is Helm's).
    ChartPush,
    ChartDelete,
    /// Pulls of a manifest, counted and sent in batches; opt-in.
    Pull,
    /// A replica received content (geo-replication).
    Replicated,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Push,
        Action::Delete,
        Action::ChartPush,
        Action::ChartDelete,
        Action::Pull,
        Action::Replicated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Delete => "delete",
            Action::ChartPush => "chart_push",
            Action::ChartDelete => "chart_delete",
            Action::Pull => "pull",
            Action::Replicated => "replicated",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a webhook action: push, delete, chart_push, chart_delete, pull \
                     or replicated"
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Enabled,
    Disabled,
}

/// A webhook, as the KV namespace keeps it (`webhooks/<name>`). The service URI and the custom
/// headers' values are secrets: the API never lists them back (`get-config` names the headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    pub name: String,
    pub service_uri: String,
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub status: Status,
    pub actions: Vec<Action>,
    /// `repository:tag` patterns with `*` wildcards; empty: every repository.
    #[serde(default)]
    pub scope: String,
    /// Signs every delivery (`X-Registry-Signature`); shown once, when the webhook is created.
    pub secret: String,
    /// Unix seconds.
    pub created: u64,
}

/// A webhook name: 5 to 50 letters and digits, as ACR's.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (5..=50).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a webhook name: 5 to 50 letters and digits"
        ))
    }
}

/// A service URI: `https`, with a public host (no IP literal of a loopback, private, link-local
/// or otherwise special network, no `localhost`, no single-label or `.internal`/`.local` name, none
/// of `refused`: the edge's own, its origin's and its upstreams' hosts), without credentials in it
/// (they go in a custom header). `local` (`WEBHOOK_ALLOW_HTTP`, for development) allows `http`
/// and local receivers.
pub fn check_uri(uri: &str, local: bool, refused: &[String]) -> Result<url::Url, String> {
    let url = url::Url::parse(uri).map_err(|e| format!("service URI {uri:?}: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err(
                "the service URI must be https (WEBHOOK_ALLOW_HTTP=true allows http, for local \
                 receivers)"
                    .into(),
            );
        }
        other => return Err(format!("the service URI's scheme {other:?} is not https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the service URI carries credentials: put them in a custom header \
             (--header 'Authorization=Bearer ...')"
                .into(),
        );
    }
    let host = match url.host() {
        Some(host) => host,
        None => return Err("the service URI has no host".into()),
    };
    if local {
        return Ok(url);
    }
    let why = match &host {
        url::Host::Ipv4(ip) => (ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_documentation()
            || ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1])
            || ip.octets()[0] >= 224)
            .then_some("an address of a local or special network"),
        url::Host::Ipv6(ip) => (ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || (ip.segments()[0] & 0xfe00) == 0xfc00
            || (ip.segments()[0] & 0xffc0) == 0xfe80
            || ip.to_ipv4_mapped().is_some())
        .then_some("an address of a local or special network"),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost"
                || name.ends_with(".localhost")
                || name.ends_with(".internal")
                || name.ends_with(".local")
                || !name.contains('.')
            {
                Some("not a public host name")
            } else if refused.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
                Some("the edge's own, its origin's or an upstream's host")
            } else {
                None
            }
        }
    };
    match why {
        Some(why) => Err(format!(
            "the service URI's host {host} is {why}: webhooks deliver to public receivers \
             (WEBHOOK_ALLOW_HTTP=true allows local ones, for development)"
        )),
        None => Ok(url),
    }
}

/// Headers a webhook may not set: the edge's own, and what the transport owns.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "x-registry-signature",
    "transfer-encoding",
    "connection",
];

pub fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in headers {
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(format!("the header {name} is named twice"));
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("{name:?} is not a header name"));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("the header {name} is the edge's own to set"));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(format!("the value of header {name} is not a header value"));
        }
    }
    Ok(())
}

/// Whether `scope` (ACR's: `repository:tag` patterns, `*` matching anything, separated by spaces
/// or commas; a pattern without `:` is `<pattern>:latest`; empty: everything) covers `repository`
/// with `tag` (empty for an event without one, which a `:*` pattern covers).
pub fn in_scope(scope: &str, repository: &str, tag: Option<&str>) -> bool {
    let patterns: Vec<&str> = scope.split([' ', ',']).filter(|p| !p.is_empty()).collect();
    if patterns.is_empty() {
        return true;
    }
    let subject = format!("{repository}:{}", tag.unwrap_or(""));
    patterns.iter().any(|p| {
        let pattern = if p.contains(':') {
            (*p).to_owned()
        } else {
            format!("{p}:latest")
        };
        glob(&pattern, &subject)
    })
}

/// `*` matches any run of characters (`/` and `:` included).
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// `X-Registry-Signature`: `t=<unix seconds>,sha256=<hex HMAC-SHA256 of "<t>.<body>">` with the
/// webhook's secret. A receiver recomputes it and refuses an old `t` (a replay).
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the request that caused an event was (ACR's `request`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub id: String,
    pub host: String,
    pub method: String,
    pub useragent: String,
}

/// An event's subject (ACR's `target`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
    /// A chart's name and version (chart events).
    pub chart: Option<(String, String)>,
    /// Pulls counted into one event (pull events).
    pub count: Option<u64>,
}

/// The largest payload sent; a larger one (never the edge's own, which are small) is refused.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;

/// ACR's payload: `id`, `timestamp` (RFC 3339), `action`, `target`, `request`, and the edge's
/// `actor`.
pub fn payload(
    id: &str,
    now: u64,
    action: &str,
    target: &Target,
    request: &RequestInfo,
    actor: &str,
) -> Value {
    let mut t = serde_json::Map::new();
    if let Some(media_type) = &target.media_type {
        t.insert("mediaType".into(), json!(media_type));
    }
    if let Some(size) = target.size {
        t.insert("size".into(), json!(size));
    }
    if let Some(digest) = &target.digest {
        t.insert("digest".into(), json!(digest));
    }
    if let Some(size) = target.size {
        t.insert("length".into(), json!(size));
    }
    t.insert("repository".into(), json!(target.repository));
    if let Some(tag) = &target.tag {
        t.insert("tag".into(), json!(tag));
    }
    if let Some((name, version)) = &target.chart {
        t.insert("name".into(), json!(name));
        t.insert("version".into(), json!(version));
    }
    if let Some(count) = target.count {
        t.insert("count".into(), json!(count));
    }
    json!({
        "id": id,
        "timestamp": rfc3339(now),
        "action": action,
        "target": Value::Object(t),
        "request": {
            "id": request.id,
            "host": request.host,
            "method": request.method,
            "useragent": request.useragent,
        },
        "actor": { "name": actor },
    })
}

/// ACR's ping: what `webhook ping` sends.
pub fn ping(id: &str, now: u64, host: &str) -> Value {
    json!({
        "id": id,
        "timestamp": rfc3339(now),
        "action": "ping",
        "request": { "id": id, "host": host, "method": "POST", "useragent": "registry-edge" },
    })
}

fn rfc3339(now: u64) -> String {
    jiff::Timestamp::from_second(now as i64)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Helm's config media type: a manifest with it is a chart.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// 2xx.
    Ok,
    /// Worth another attempt: a 408, 429 (after `Retry-After` seconds, when it says), 5xx, or no
    /// answer.
    Again(Option<u32>),
    /// A refusal another attempt would repeat (any other 4xx).
    Refused,
}

/// The receiver's answer, judged (`now`: Unix seconds, for a `Retry-After` that is a date).
pub fn judge(status: Option<u16>, retry_after: Option<&str>, now: u64) -> Delivered {
    match status {
        Some(200..=299) => Delivered::Ok,
        Some(429) => Delivered::Again(retry_after.and_then(|v| wait(v, now))),
        Some(408) | Some(500..=599) | None => Delivered::Again(None),
        Some(_) => Delivered::Refused,
    }
}

/// A `Retry-After`'s wait in seconds: a number, or an HTTP date (RFC 9110's IMF-fixdate),
/// at most 12 hours (the queue's longest delay).
fn wait(value: &str, now: u64) -> Option<u32> {
    let value = value.trim();
    let seconds = match value.parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => {
            let at = jiff::fmt::rfc2822::parse(value)
                .ok()?
                .timestamp()
                .as_second();
            (at.max(0) as u64).saturating_sub(now)
        }
    };
    Some(seconds.min(12 * 3600) as u32)
}

/// One line of a webhook's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryEntry {
    pub event_id: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The receiver's status; none when it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    pub attempt: u32,
    /// The first bytes of the answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub response: String,
    /// Unix seconds.
    pub timestamp: u64,
    /// The last attempt failed too: the event is given up (and sent to the dead-letter queue,
    /// when one is bound).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gave_up: bool,
}

/// Deliveries kept per webhook.
pub const LOG_ENTRIES: usize = 50;
/// Bytes of an answer kept in the log.
pub const LOG_RESPONSE_BYTES: usize = 256;

/// `log` with `entry` in front, at most `LOG_ENTRIES` long.
pub fn logged(mut log: Vec<DeliveryEntry>, entry: DeliveryEntry) -> Vec<DeliveryEntry> {
    log.insert(0, entry);
    log.truncate(LOG_ENTRIES);
    log
}

/// The first bytes of an answer, as text.
pub fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(LOG_RESPONSE_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body() {
        // openssl: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn scopes_match_as_acr_s() {
        assert!(in_scope("", "anything", Some("x")));
        assert!(in_scope("team-a/*:*", "team-a/app/api", Some("1.0")));
        assert!(in_scope("team-a/*:*", "team-a/app", None));
        assert!(!in_scope("team-a/*:*", "team-b/app", Some("1.0")));
        assert!(in_scope("app:release-*", "app", Some("release-2")));
        assert!(!in_scope("app:release-*", "app", Some("dev")));
        assert!(!in_scope("app:release-*", "app-x", Some("release-2")));
        assert!(in_scope("app", "app", Some("latest")));
        assert!(!in_scope("app", "app", Some("1")));
        assert!(in_scope("x:1, app:*", "app", Some("2")));
        assert!(in_scope("*", "a/b", Some("latest")));
    }

    #[test]
    fn names_uris_and_headers_are_checked() {
        assert!(check_name("build1").is_ok());
        assert!(check_name("ab").is_err());
        assert!(check_name("has-dash").is_err());
        let refused = ["registry.example.com".to_owned()];
        assert!(check_uri("https://hooks.example/x", false, &refused).is_ok());
        assert!(check_uri("http://127.0.0.1:9/x", false, &refused).is_err());
        assert!(check_uri("http://127.0.0.1:9/x", true, &refused).is_ok());
        assert!(check_uri("https://u:p@hooks.example/", false, &refused).is_err());
        assert!(check_uri("ftp://hooks.example/", true, &refused).is_err());
        for local in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost/",
            "https://metadata.google.internal/",
            "https://printer.local/",
            "https://intranet/",
            "https://Registry.Example.com./hook",
        ] {
            assert!(check_uri(local, false, &refused).is_err(), "{local}");
        }
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_owned(), "Bearer x".to_owned());
        assert!(check_headers(&headers).is_ok());
        headers.insert("authorization".to_owned(), "Bearer y".to_owned());
        assert!(check_headers(&headers).unwrap_err().contains("named twice"));
        headers.remove("authorization");
        for own in ["X-Registry-Signature", "User-Agent"] {
            let mut forged = headers.clone();
            forged.insert(own.to_owned(), "forged".to_owned());
            assert!(check_headers(&forged).is_err(), "{own}");
        }
    }

    #[test]
    fn the_payload_is_acr_s() {
        let target = Target {
            repository: "hello-world".into(),
            tag: Some("v1".into()),
            digest: Some("sha256:80f0".into()),
            media_type: Some("application/vnd.docker.distribution.manifest.v2+json".into()),
            size: Some(524),
            ..Target::default()
        };
        let request = RequestInfo {
            id: "r1".into(),
            host: "registry.example".into(),
            method: "PUT".into(),
            useragent: "docker/27".into(),
        };
        let p = payload("e1", 1_700_000_000, "push", &target, &request, "token:ci");
        assert_eq!(
            p,
            json!({
                "id": "e1",
                "timestamp": "2023-11-14T22:13:20Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "size": 524,
                    "digest": "sha256:80f0",
                    "length": 524,
                    "repository": "hello-world",
                    "tag": "v1",
                },
                "request": {"id": "r1", "host": "registry.example", "method": "PUT", "useragent": "docker/27"},
                "actor": {"name": "token:ci"},
            })
        );
    }

    #[test]
    fn answers_are_judged() {
        let now = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT
        assert_eq!(judge(Some(204), None, now), Delivered::Ok);
        assert_eq!(
            judge(Some(429), Some("30"), now),
            Delivered::Again(Some(30))
        );
        assert_eq!(
            judge(Some(429), Some("Tue, 14 Nov 2023 22:14:20 GMT"), now),
            Delivered::Again(Some(60))
        );
        assert_eq!(judge(Some(429), Some("soon"), now), Delivered::Again(None));
        assert_eq!(judge(Some(429), None, now), Delivered::Again(None));
        assert_eq!(judge(Some(408), None, now), Delivered::Again(None));
        assert_eq!(judge(Some(503), None, now), Delivered::Again(None));
        assert_eq!(judge(None, None, now), Delivered::Again(None));
        assert_eq!(judge(Some(404), None, now), Delivered::Refused);
        assert_eq!(judge(Some(401), None, now), Delivered::Refused);
        assert_eq!(judge(Some(302), None, now), Delivered::Refused);
    }

    #[test]
    fn the_log_keeps_the_newest() {
        let entry = |n: u32| DeliveryEntry {
            event_id: format!("e{n}"),
            action: "push".into(),
            repository: None,
            tag: None,
            digest: None,
            status: Some(200),
            error: None,
            duration_ms: 1,
            attempt: 1,
            response: String::new(),
            timestamp: 0,
            gave_up: false,
        };
        let mut log = Vec::new();
        for n in 0..60 {
            log = logged(log, entry(n));
        }
        assert_eq!(log.len(), LOG_ENTRIES);
        assert_eq!(log[0].event_id, "e59");
    }
}
