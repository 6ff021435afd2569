//! Upstream registries: the `UPSTREAMS` list, validated with errors that name the entry, and how
//! a repository name the edge is asked for maps to an upstream and the name there (this file,
//! pure); talking to an upstream with its credentials (`client`); reads through an upstream as a
//! content source beside the storage layout (`content`).
//!
//! Three client conventions name an upstream repository:
//! - the namespace in the path: `docker.io/library/nginx` (and `docker.io/nginx`, which Docker
//!   Hub serves as `library/nginx`);
//! - containerd's `?ns=docker.io` beside an unprefixed `nginx`;
//! - Docker's `registry-mirrors`, which sends unprefixed names: served by the default upstream,
//!   after the edge's own repositories (the caller looks there first).

pub mod client;
pub mod content;
pub mod fill;

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::auth::Pattern;
use crate::reference::Name;

/// Docker Hub's registry host, whose single-component names live under `library/`.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

/// How long a tag is answered from the edge before one upstream `HEAD` revalidates it.
pub const DEFAULT_TAG_TTL_SECONDS: u64 = 300;

/// A mirror's copies go in parts of 64 MiB: a 5 GiB layer is 80 parts, each an upstream `Range`
/// request and an upload of its own.
pub const DEFAULT_PART_BYTES: u64 = 64 << 20;
/// S3's smallest part (but the last), and its largest.
pub const MIN_PART_BYTES: u64 = 5 << 20;
pub const MAX_PART_BYTES: u64 = 5 << 30;

/// How long one upstream request may take before the read fails over (to stale content, or a 504).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// What was fetched is copied into the edge's storage.
    Mirror,
    /// What was fetched is kept in the edge's cache only.
    #[default]
    Proxy,
}

/// One upstream registry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The namespace it is served under (`docker.io`), or empty for the edge's own origin.
    pub prefix: String,
    pub url: Url,
    /// Its credentials (read from the secrets the entry names), when it takes any: sent as Basic
    /// to the upstream itself, or to a token realm `realm_allowed` admits.
    pub credentials: Option<Credentials>,
    /// Only these repositories (upstream names) are served; every one when empty.
    pub allow: Vec<Pattern>,
    pub tag_ttl_seconds: u64,
    pub mode: Mode,
    /// A mirror copies blobs into storage in parts of this many bytes (the last one shorter),
    /// each one upstream `Range` request and one part of a multipart upload.
    pub part_bytes: u64,
    /// Hosts besides the upstream's own whose token realm may receive its credentials
    /// (Docker Hub's `auth.docker.io`).
    pub realm_hosts: Vec<String>,
    /// Serves unprefixed names (Docker's `registry-mirrors`), after the edge's own repositories.
    /// The upstream with the empty prefix (the edge's own origin, fronted) is the default.
    pub default: bool,
    /// How long one request to it may take.
    pub timeout: Duration,
}

/// A user name and password, read from secrets; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ..)", self.username)
    }
}

/// An upstream repository a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub upstream: &'a Upstream,
    /// The repository's name at the upstream.
    pub name: String,
    /// The request named the upstream's namespace (`docker.io/...`); otherwise the name came to
    /// the default upstream, which serves it only after the edge's own repositories.
    pub prefixed: bool,
    /// The entry's allow list lets the edge serve it. A name under a namespace that the list
    /// does not allow is still the upstream's (never the edge's own, never writable): unknown.
    pub allowed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    prefix: String,
    url: String,
    #[serde(default)]
    username_secret: Option<String>,
    #[serde(default)]
    password_secret: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    tag_ttl_seconds: Option<u64>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    realm_hosts: Vec<String>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    part_bytes: Option<u64>,
}

/// The upstreams of `UPSTREAMS` (a JSON list), each checked, their credentials read through
/// `secret`; an error names the entry.
pub fn parse(json: &str, secret: impl Fn(&str) -> Option<String>) -> Result<Vec<Upstream>, String> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| format!("UPSTREAMS is not a JSON list of upstreams: {e}"))?;
    let mut upstreams: Vec<Upstream> = Vec::new();
    for (i, value) in entries.into_iter().enumerate() {
        let prefix = value
            .get("prefix")
            .and_then(|p| p.as_str())
            .map(|p| format!(" (prefix {p:?})"))
            .unwrap_or_default();
        let upstream = entry(value, &secret).map_err(|e| format!("UPSTREAMS[{i}]{prefix}: {e}"))?;
        if upstreams.iter().any(|u| u.prefix == upstream.prefix) {
            return Err(format!(
                "UPSTREAMS[{i}]{prefix}: another upstream has this prefix"
            ));
        }
        if upstream.default && upstreams.iter().any(|u| u.default) {
            return Err(format!(
                "UPSTREAMS[{i}]{prefix}: only one upstream may be the default"
            ));
        }
        upstreams.push(upstream);
    }
    Ok(upstreams)
}

fn entry(
    value: serde_json::Value,
    secret: &impl Fn(&str) -> Option<String>,
) -> Result<Upstream, String> {
    let entry: Entry = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if !entry.prefix.is_empty() {
        // A namespace is a name's leading components, so names under it stay valid names.
        entry
            .prefix
            .parse::<Name>()
            .map_err(|_| format!("prefix {:?} is not a repository namespace", entry.prefix))?;
    }
    let url = Url::parse(&entry.url).map_err(|e| format!("url {:?}: {e}", entry.url))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!(
            "url {:?} must be an http(s) URL with a host",
            entry.url
        ));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(format!(
            "url {:?} must be a scheme and host (and port): the API is at its /v2/, and \
             credentials are named by secret",
            entry.url
        ));
    }
    let secret_name = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    };
    let credentials = match (entry.username_secret, entry.password_secret) {
        (None, None) => None,
        (Some(user), Some(password)) if secret_name(&user) && secret_name(&password) => {
            let read = |name: &str| {
                secret(name)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("the secret {name} is not set"))
            };
            Some(Credentials {
                username: read(&user)?,
                password: read(&password)?,
            })
        }
        (Some(_), Some(_)) => {
            return Err("username_secret and password_secret name secrets: A-Z, 0-9 and _".into());
        }
        _ => return Err("username_secret and password_secret go together".into()),
    };
    let allow = entry
        .allow
        .iter()
        .map(|p| p.parse::<Pattern>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("allow: {e}"))?;
    let tag_ttl_seconds = entry.tag_ttl_seconds.unwrap_or(DEFAULT_TAG_TTL_SECONDS);
    if tag_ttl_seconds > 86_400 {
        return Err(format!(
            "tag_ttl_seconds {tag_ttl_seconds} is more than a day: a moved tag would be served \
             stale that long"
        ));
    }
    for host in &entry.realm_hosts {
        let (name, port) = host.split_once(':').unwrap_or((host, ""));
        if name.is_empty()
            || name.contains(['/', '@', ' ', ':'])
            || !(port.is_empty() || port.parse::<u16>().is_ok())
        {
            return Err(format!(
                "realm_hosts: {host:?} is not a host name (with an optional :port)"
            ));
        }
    }
    let mut realm_hosts = entry.realm_hosts;
    if url.host_str() == Some(DOCKER_HUB_REGISTRY)
        && !realm_hosts.iter().any(|h| h == "auth.docker.io")
    {
        // Docker Hub's token service.
        realm_hosts.push("auth.docker.io".into());
    }
    if entry.mode == Mode::Mirror && entry.prefix.is_empty() {
        return Err(
            "mode \"mirror\" needs a prefix: the registry with the empty prefix is the one the \
             edge fronts, and its storage is its own to write"
                .into(),
        );
    }
    let part_bytes = entry.part_bytes.unwrap_or(DEFAULT_PART_BYTES);
    if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&part_bytes) {
        return Err(format!(
            "part_bytes {part_bytes} must be between {MIN_PART_BYTES} (5 MiB) and {MAX_PART_BYTES} \
             (5 GiB)"
        ));
    }
    let timeout = entry.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    if !(1..=300).contains(&timeout) {
        return Err(format!(
            "timeout_seconds {timeout} must be between 1 and 300"
        ));
    }
    Ok(Upstream {
        default: entry.default || entry.prefix.is_empty(),
        prefix: entry.prefix,
        url,
        credentials,
        allow,
        tag_ttl_seconds,
        mode: entry.mode,
        part_bytes,
        realm_hosts,
        timeout: Duration::from_secs(timeout),
    })
}

impl Upstream {
    /// How the upstream is named in messages to clients: its namespace, never its URL or host
    /// (a fronted registry's address is the edge's own business).
    pub fn label(&self) -> &str {
        if self.prefix.is_empty() {
            "this edge fronts"
        } else {
            &self.prefix
        }
    }

    /// Which registry (and which account) the entry reads, as 16 hex digits: the sha256 of its
    /// URL and user name. What a mirror's copies were vouched by.
    pub fn identity(&self) -> String {
        use sha2::Digest as _;
        let user = self
            .credentials
            .as_ref()
            .map_or("", |c| c.username.as_str());
        let hash = sha2::Sha256::digest(format!("{}\n{user}", self.url).as_bytes());
        hex::encode(&hash[..8])
    }

    fn is_docker_hub(&self) -> bool {
        self.url.host_str() == Some(DOCKER_HUB_REGISTRY)
    }

    /// The name at the upstream of `rest` (the part of the request's name after the prefix):
    /// Docker Hub's official images under `library/`.
    fn upstream_name(&self, rest: &str) -> Option<String> {
        if rest.is_empty() {
            return None;
        }
        Some(if self.is_docker_hub() && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest.to_owned()
        })
    }

    /// Whether the allow list lets the edge serve `name` (a name at the upstream).
    fn allows(&self, name: &str) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|p| p.matches(name))
    }

    /// Whether a token realm at `realm` may receive this upstream's credentials: at the
    /// upstream's own origin (scheme, host and port), or on one of `realm_hosts` (`host`, which
    /// means its default port, or `host:port`), over HTTPS (plain HTTP only on the host of a
    /// plain-HTTP upstream, whose credentials travel in the clear anyway). A challenge naming
    /// anything else
    /// gets no credentials (distribution's proxy sent them anywhere: CVE-2026-33540).
    pub fn realm_allowed(&self, realm: &Url) -> bool {
        let (Some(host), Some(port)) = (realm.host_str(), realm.port_or_known_default()) else {
            return false;
        };
        if realm.origin() == self.url.origin() {
            return true;
        }
        // In the clear only to a port of the plain-HTTP upstream's own host (a local stack).
        let secure = realm.scheme() == "https"
            || (self.url.scheme() == "http" && self.url.host_str() == Some(host));
        secure
            && self.realm_hosts.iter().any(|h| match h.split_once(':') {
                Some((name, p)) => name == host && p.parse() == Ok(port),
                None => h == host && realm.port().is_none(),
            })
    }
}

/// The upstream repository `name` (and containerd's `ns`, if sent) names, if any. The longest
/// prefix wins; an unprefixed name goes to `ns`'s upstream, else the default one.
pub fn resolve<'a>(upstreams: &'a [Upstream], name: &Name, ns: Option<&str>) -> Option<Target<'a>> {
    let name = name.as_str();
    let prefixed = upstreams
        .iter()
        .filter(|u| !u.prefix.is_empty())
        .filter_map(|u| {
            let rest = name.strip_prefix(u.prefix.as_str())?.strip_prefix('/')?;
            Some((u, rest))
        })
        .max_by_key(|(u, _)| u.prefix.len());
    let (upstream, rest, prefixed) = match (prefixed, ns) {
        (Some((upstream, rest)), _) => (upstream, rest, true),
        (None, Some(ns)) => (upstreams.iter().find(|u| u.prefix == ns)?, name, true),
        (None, None) => (upstreams.iter().find(|u| u.default)?, name, false),
    };
    let name = upstream.upstream_name(rest)?;
    let allowed = upstream.allows(&name);
    if !allowed && !prefixed {
        // The default upstream does not serve it: an unprefixed name is the edge's own.
        return None;
    }
    Some(Target {
        upstream,
        name,
        prefixed,
        allowed,
    })
}

/// The edge-cache keys of what the edge keeps from the upstream that serves `name` after its own
/// storage (the fronted origin, the default upstream), to drop after a write to `name` changed
/// it there: the tag, the tag list, the referrers of `subject`, and for a deleted manifest the
/// manifest itself. Empty for the edge's own names and for mirror namespaces (never written).
pub fn written_keys(
    upstreams: &[Upstream],
    name: &Name,
    tag: Option<&crate::reference::Tag>,
    deleted: Option<&crate::reference::Digest>,
    subject: Option<&crate::reference::Digest>,
) -> Vec<String> {
    use crate::cache::key::upstream as key;
    let Some(target) = resolve(upstreams, name, None).filter(|t| !t.prefixed) else {
        return Vec::new();
    };
    let prefix = &target.upstream.prefix;
    let mut keys = vec![key(prefix, "tags", &target.name)];
    if let Some(tag) = tag {
        keys.push(key(prefix, "tag", &format!("{}:{tag}", target.name)));
    }
    if let Some(digest) = deleted {
        keys.push(key(
            prefix,
            "manifest",
            &format!("{}@{digest}", target.name),
        ));
    }
    if let Some(subject) = subject {
        keys.push(key(
            prefix,
            "referrers",
            &format!("{}@{subject}", target.name),
        ));
    }
    keys
}

/// Like `written_keys`, for the blob `digest` deleted from `name`: its kept size.
pub fn deleted_blob_keys(
    upstreams: &[Upstream],
    name: &Name,
    digest: &crate::reference::Digest,
) -> Vec<String> {
    resolve(upstreams, name, None)
        .filter(|t| !t.prefixed)
        .map(|t| {
            crate::cache::key::upstream(&t.upstream.prefix, "size", &format!("{}@{digest}", t.name))
        })
        .into_iter()
        .collect()
}

/// Refuses a write to a name under an upstream's namespace: what is there is the upstream's.
pub fn check_writable(upstreams: &[Upstream], name: &Name) -> Result<(), crate::error::Error> {
    match resolve(upstreams, name, None) {
        Some(target) if target.prefixed => Err(crate::error::Error::new(
            crate::error::ErrorCode::Denied,
        )
        .with_message(format!(
            "{name} is read-only: the namespace {} mirrors an upstream registry, and only that \
             registry changes what is there",
            target.upstream.prefix
        ))),
        _ => Ok(()),
    }
}

/// What containerd's `?ns=<registry>` beside a name makes of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Nothing: no `ns`, or it names the registry the name is already under.
    Unchanged,
    /// The request is about the mirror's repository `<ns>/<name>`.
    Renamed(Name),
    /// No upstream serves that registry: the edge has nothing for it (so containerd falls back
    /// to the registry itself, rather than being served another registry's content).
    Unknown,
}

/// The name a request with containerd's `?ns=` addresses: `<ns>/<name>` when `ns` is an
/// upstream's namespace and `name` is not already under one (so auth, locks and the read all see
/// the mirror's own name). `own_host` is the edge's own registry host, whose names are its own.
pub fn with_namespace(
    upstreams: &[Upstream],
    name: &Name,
    ns: &str,
    own_host: Option<&str>,
) -> Namespace {
    if ns.is_empty() || Some(ns) == own_host {
        return Namespace::Unchanged;
    }
    if resolve(upstreams, name, None).is_some_and(|t| t.prefixed) {
        return Namespace::Unchanged;
    }
    if !upstreams
        .iter()
        .any(|u| !u.prefix.is_empty() && u.prefix == ns)
    {
        return Namespace::Unknown;
    }
    match format!("{ns}/{name}").parse() {
        Ok(renamed) => Namespace::Renamed(canonical(upstreams, &renamed).unwrap_or(renamed)),
        Err(_) => Namespace::Unknown,
    }
}

/// The name under its namespace of an unprefixed name the default upstream serves
/// (`library/nginx` is also `docker.io/library/nginx`), whose locks hold for it too; `None` for
/// a name no namespaced upstream serves.
pub fn default_alias(upstreams: &[Upstream], name: &Name) -> Option<Name> {
    let target = resolve(upstreams, name, None).filter(|t| !t.prefixed && t.allowed)?;
    if target.upstream.prefix.is_empty() {
        return None;
    }
    format!("{}/{}", target.upstream.prefix, target.name)
        .parse()
        .ok()
}

/// The one name of a repository the edge serves under a Docker Hub namespace:
/// `docker.io/nginx` is `docker.io/library/nginx`, so auth, locks and caches see one name. `None`
/// when `name` is already canonical.
pub fn canonical(upstreams: &[Upstream], name: &Name) -> Option<Name> {
    let target = resolve(upstreams, name, None).filter(|t| t.prefixed)?;
    let canonical = format!("{}/{}", target.upstream.prefix, target.name);
    (canonical != name.as_str())
        .then(|| canonical.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    const HUB: &str =
        r#"{"prefix": "docker.io", "url": "https://registry-1.docker.io", "default": true}"#;

    fn secrets(name: &str) -> Option<String> {
        match name {
            "HUB_USER" => Some("me".into()),
            "HUB_TOKEN" => Some("dckr_pat".into()),
            _ => None,
        }
    }

    fn parse(json: &str) -> Result<Vec<Upstream>, String> {
        super::parse(json, secrets)
    }

    #[test]
    fn entries_are_checked_and_errors_name_them() {
        let cases = [
            ("{}", "UPSTREAMS is not a JSON list"),
            (
                r#"[{"prefix": "a"}]"#,
                "UPSTREAMS[0] (prefix \"a\"): missing field `url`",
            ),
            (
                r#"[{"prefix": "Docker.IO", "url": "https://x"}]"#,
                "is not a repository namespace",
            ),
            (
                r#"[{"prefix": "a", "url": "ftp://x"}]"#,
                "must be an http(s) URL",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x/v2/"}]"#,
                "must be a scheme and host",
            ),
            (
                r#"[{"prefix": "a", "url": "https://u:p@x"}]"#,
                "credentials are named by secret",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "username_secret": "U"}]"#,
                "go together",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "username_secret": "u", "password_secret": "P"}]"#,
                "name secrets",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "allow": ["Bad*"]}]"#,
                "allow:",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "realm_hosts": ["auth.example:http"]}]"#,
                "is not a host name (with an optional :port)",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "mode": "copy"}]"#,
                "unknown variant",
            ),
            (
                r#"[{"prefix": "", "url": "https://x", "mode": "mirror"}]"#,
                "mode \"mirror\" needs a prefix",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "mode": "mirror", "part_bytes": 1024}]"#,
                "part_bytes 1024 must be between",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "username_secret": "HUB_USER", "password_secret": "NOPE"}]"#,
                "UPSTREAMS[0] (prefix \"a\"): the secret NOPE is not set",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "timeout_seconds": 0}]"#,
                "timeout_seconds 0",
            ),
            (
                r#"[{"prefix": "", "url": "https://x"}, {"prefix": "b", "url": "https://y", "default": true}]"#,
                "only one upstream may be the default",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "tag_ttl_seconds": 999999}]"#,
                "more than a day",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "colour": 1}]"#,
                "unknown field",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x"}, {"prefix": "a", "url": "https://y"}]"#,
                "UPSTREAMS[1] (prefix \"a\"): another upstream has this prefix",
            ),
            (
                r#"[{"prefix": "a", "url": "https://x", "default": true}, {"prefix": "b", "url": "https://y", "default": true}]"#,
                "only one upstream may be the default",
            ),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
        let hub = &parse(&format!("[{HUB}]")).unwrap()[0];
        assert_eq!(hub.mode, Mode::Proxy);
        assert_eq!(hub.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECONDS));
        assert_eq!(hub.credentials, None);
        let with_secrets = &parse(
            r#"[{"prefix": "a", "url": "https://x", "username_secret": "HUB_USER", "password_secret": "HUB_TOKEN"}]"#,
        )
        .unwrap()[0];
        let credentials = with_secrets.credentials.as_ref().unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("me", "dckr_pat")
        );
        assert!(!format!("{with_secrets:?}").contains("dckr_pat"));
        let front = &parse(r#"[{"prefix": "", "url": "http://127.0.0.1:5000"}]"#).unwrap()[0];
        assert!(front.default, "the empty prefix serves unprefixed names");
        assert_eq!(hub.tag_ttl_seconds, DEFAULT_TAG_TTL_SECONDS);
        assert_eq!(hub.realm_hosts, ["auth.docker.io"]);
        assert!(parse("[]").unwrap().is_empty());
    }

    #[test]
    fn names_map_to_upstreams_as_clients_send_them() {
        let upstreams = parse(&format!(
            r#"[{HUB},
               {{"prefix": "ghcr.io", "url": "https://ghcr.io", "allow": ["acme/*"]}},
               {{"prefix": "ghcr.io/big", "url": "https://big.example"}}]"#
        ))
        .unwrap();
        // (requested name, ?ns=, (upstream prefix, name there)); a name the allow list excludes
        // is marked "!".
        type Case<'a> = (&'a str, Option<&'a str>, Option<(&'a str, &'a str)>);
        let cases: [Case; 10] = [
            // The namespace in the path; Docker Hub's official images under library/.
            (
                "docker.io/nginx",
                None,
                Some(("docker.io", "library/nginx")),
            ),
            (
                "docker.io/library/nginx",
                None,
                Some(("docker.io", "library/nginx")),
            ),
            (
                "docker.io/bitnami/redis",
                None,
                Some(("docker.io", "bitnami/redis")),
            ),
            // The longest prefix wins; the allow list holds.
            ("ghcr.io/acme/tool", None, Some(("ghcr.io", "acme/tool"))),
            // Still the upstream's (never the edge's own), but not served.
            ("ghcr.io/other/tool", None, Some(("ghcr.io", "!other/tool"))),
            ("ghcr.io/big/thing", None, Some(("ghcr.io/big", "thing"))),
            // containerd's ?ns= with an unprefixed name.
            (
                "nginx",
                Some("docker.io"),
                Some(("docker.io", "library/nginx")),
            ),
            ("acme/tool", Some("ghcr.io"), Some(("ghcr.io", "acme/tool"))),
            // Docker's registry-mirrors: unprefixed names go to the default upstream.
            ("alpine", None, Some(("docker.io", "library/alpine"))),
            // A prefix alone names no repository.
            ("docker.ioo/x", Some("quay.io"), None),
        ];
        for (requested, ns, want) in cases {
            let got = resolve(&upstreams, &name(requested), ns).map(|t| {
                let mark = if t.allowed { "" } else { "!" };
                (t.upstream.prefix.clone(), format!("{mark}{}", t.name))
            });
            let want = want.map(|(p, n)| (p.to_owned(), n.to_owned()));
            assert_eq!(got, want, "{requested} ns={ns:?}");
        }
    }

    #[test]
    fn namespaces_and_docker_hub_short_names_have_one_name() {
        let upstreams = parse(&format!(
            r#"[{HUB}, {{"prefix": "ghcr.io", "url": "https://ghcr.io"}}]"#
        ))
        .unwrap();
        let ns = |n: &str, ns: &str| with_namespace(&upstreams, &name(n), ns, Some("edge.example"));
        assert_eq!(
            ns("nginx", "docker.io"),
            Namespace::Renamed(name("docker.io/library/nginx"))
        );
        assert_eq!(
            ns("acme/tool", "ghcr.io"),
            Namespace::Renamed(name("ghcr.io/acme/tool"))
        );
        assert_eq!(ns("ghcr.io/acme/tool", "ghcr.io"), Namespace::Unchanged);
        assert_eq!(ns("team/app", "edge.example"), Namespace::Unchanged);
        assert_eq!(
            ns("acme/tool", "quay.io"),
            Namespace::Unknown,
            "no upstream serves it"
        );
        let long = "a".repeat(250);
        assert_eq!(ns(&long, "ghcr.io"), Namespace::Unknown, "too long a name");
        assert_eq!(
            canonical(&upstreams, &name("docker.io/nginx")),
            Some(name("docker.io/library/nginx"))
        );
        assert_eq!(
            canonical(&upstreams, &name("docker.io/library/nginx")),
            None
        );
        assert_eq!(
            canonical(&upstreams, &name("nginx")),
            None,
            "unprefixed: the edge's own first"
        );
        assert_eq!(canonical(&upstreams, &name("ghcr.io/acme/tool")), None);
    }

    #[test]
    fn credentials_go_only_to_the_upstreams_realms() {
        let upstreams = parse(&format!(
            r#"[{HUB}, {{"prefix": "r", "url": "http://127.0.0.1:5001", "realm_hosts": ["auth.example", "127.0.0.1:8787"]}}]"#
        ))
        .unwrap();
        let (hub, local) = (&upstreams[0], &upstreams[1]);
        let url = |s: &str| Url::parse(s).unwrap();
        let cases = [
            (hub, "https://auth.docker.io/token", true),
            (hub, "https://registry-1.docker.io/token", true),
            (hub, "http://auth.docker.io/token", false),
            (hub, "https://auth.docker.io.evil.example/token", false),
            (hub, "https://evil.example/token", false),
            // The upstream's origin; another port of its host only when listed.
            (local, "http://127.0.0.1:5001/token", true),
            (local, "http://127.0.0.1:5002/token", false),
            (local, "http://127.0.0.1:8787/token", true),
            (local, "https://auth.example/token", true),
            (local, "https://auth.example:8443/token", false),
            (local, "http://auth.example/token", false),
            (local, "http://127.0.0.2:5001/token", false),
            (hub, "https://auth.docker.io:444/token", false),
            (hub, "https://registry-1.docker.io:8443/token", false),
        ];
        for (upstream, realm, want) in cases {
            assert_eq!(upstream.realm_allowed(&url(realm)), want, "{realm}");
        }
    }
}
