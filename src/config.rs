//! Typed configuration, parsed once from the worker's variables and secrets (or any lookup
//! function, natively). Every variable is listed in the README's configuration table; a missing or
//! malformed one is reported by name.

use std::time::Duration;

use url::Url;

use crate::auth::jwt::TokenKeys;
use crate::layout::Layout;

/// How a setting reaches the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `[vars]` entry of `wrangler.toml`.
    Var,
    /// `wrangler secret put NAME`.
    Secret,
    /// A binding (`[[r2_buckets]]`, `[[kv_namespaces]]`).
    Binding,
}

/// One variable, secret or binding the edge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as the README states it, when it is a plain value.
    pub default: Option<&'static str>,
}

const fn var(name: &'static str, default: Option<&'static str>) -> Setting {
    Setting {
        name,
        kind: Kind::Var,
        default,
    }
}

const fn secret(name: &'static str) -> Setting {
    Setting {
        name,
        kind: Kind::Secret,
        default: None,
    }
}

/// The R2 binding the edge reads from when `STORAGE_BACKEND=r2`.
pub const R2_BINDING: &str = "REGISTRY_BUCKET";
/// The KV namespace of the registry's records (tokens, scope maps, settings, attributes).
pub const KV_BINDING: &str = "REGISTRY_KV";
/// The queue binding (producer and consumer) of work off the request's path: mirror fills.
pub const QUEUE_BINDING: &str = "REGISTRY_QUEUE";
/// Where jobs go that failed every attempt (a webhook delivery the receiver never took).
pub const DEAD_LETTER_BINDING: &str = "REGISTRY_DLQ";

/// Every variable, secret and binding the edge reads, in one list. `Config::from_lookup` reads
/// only these; the README's configuration table, `wrangler.toml` and `scripts/lib.sh` are checked
/// against it by the tests below.
pub const SETTINGS: &[Setting] = &[
    var("STORAGE_BACKEND", Some("s3")),
    Setting {
        name: R2_BINDING,
        kind: Kind::Binding,
        default: None,
    },
    var("STORAGE_ROOT", None),
    var("S3_ENDPOINT", None),
    var("S3_BUCKET", None),
    var("S3_REGION", Some("us-east-1")),
    var("S3_URL_STYLE", Some("path")),
    secret("S3_ACCESS_KEY_ID"),
    secret("S3_SECRET_ACCESS_KEY"),
    var("PRESIGN_SECONDS", Some("1200")),
    var("STORAGE_TIMEOUT_SECONDS", Some("10")),
    var("BLOB_BASE_URL", None),
    var("TAG_CACHE_SECONDS", Some("5")),
    var("ORIGIN_URL", None),
    secret("ORIGIN_USERNAME"),
    secret("ORIGIN_PASSWORD"),
    var("ORIGIN_TIMEOUT_SECONDS", Some("30")),
    var("ORIGIN_UPLOAD_TIMEOUT_SECONDS", Some("900")),
    var("CHUNK_MAX_LENGTH", Some("94371840")),
    var("PUBLIC_URL", None),
    secret("EDGE_SECRET"),
    Setting {
        name: KV_BINDING,
        kind: Kind::Binding,
        default: None,
    },
    secret("TOKEN_SIGNING_KEY"),
    secret("TOKEN_PREVIOUS_KEYS"),
    var("ADMIN_USER", Some("admin")),
    secret("ADMIN_PASSWORD"),
    var("REGISTRY_SERVICE", None),
    var("TOKEN_ISSUER", None),
    var("TOKEN_SECONDS", Some("300")),
    var("REFRESH_TOKEN_SECONDS", Some("2592000")),
    var("AUTH_CACHE_SECONDS", Some("10")),
    var("UPSTREAMS", None),
    Setting {
        name: QUEUE_BINDING,
        kind: Kind::Binding,
        default: None,
    },
    Setting {
        name: DEAD_LETTER_BINDING,
        kind: Kind::Binding,
        default: None,
    },
    var("JOB_RETRY_SECONDS", Some("10")),
    var("WEBHOOK_ALLOW_HTTP", Some("false")),
    var("PULL_EVENT_BATCH", Some("100")),
    var("PULL_EVENT_SECONDS", Some("60")),
    var("INDEX_REBUILD_BUDGET", Some("40")),
];

/// Where the edge reads the registry from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Any S3-compatible endpoint over signed HTTP.
    S3,
    /// The R2 bucket binding `REGISTRY_BUCKET` (Cloudflare only).
    R2,
    /// No storage: every read goes to the upstream with the empty prefix (the edge fronts a
    /// registry whose storage it cannot read), and what it fetches is kept in the edge cache.
    None,
}

/// An S3-compatible endpoint and credentials: the store for `Backend::S3`, and the signer of
/// presigned blob URLs for both backends (R2 presigns through its S3 API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: Url,
    pub bucket: String,
    pub region: String,
    pub virtual_host: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The origin registry that takes the writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    pub url: Url,
    pub credentials: Option<OriginCredentials>,
    /// For requests whose body the edge holds (or that have none).
    pub timeout: Duration,
    /// For requests that stream the client's body (uploads).
    pub upload_timeout: Duration,
    /// Advertised as `OCI-Chunk-Max-Length` so clients chunk large layers under the platform's
    /// request-body limit.
    pub chunk_max_length: u64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct OriginCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for OriginCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    pub layout: Layout,
    pub s3: Option<S3Config>,
    /// Blob downloads redirect here (`<base>/<blob data key>`) instead of to a presigned URL.
    pub blob_base_url: Option<Url>,
    pub presign_seconds: u64,
    /// How long a storage read may take before the request answers 504.
    pub storage_timeout: Duration,
    pub tag_cache_seconds: u64,
    /// Writes are forwarded here; without it the edge is read-only.
    pub origin: Option<OriginConfig>,
    /// The edge's public URL, for `Location` headers; by default the request's own.
    pub public_url: Option<Url>,
    /// Seals the upload sessions the edge hands out in `Location`s (`EDGE_SECRET`, else a key
    /// derived from the token signing key).
    pub upload_key: SecretKey,
    pub auth: AuthConfig,
    /// The upstream registries reads go through (`UPSTREAMS`), their credentials read from the
    /// secrets each entry names.
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// The first wait before a failed job is tried again, doubling with each attempt.
    pub job_retry_seconds: u32,
    /// Webhook receivers may be plain `http` (local ones, in development).
    pub webhook_allow_http: bool,
    /// A pull event is sent per this many pulls of a manifest (per isolate)...
    pub pull_event_batch: u64,
    /// ... or at the first pull this long after the batch began.
    pub pull_event_seconds: u64,
    /// About how many storage requests one step of an index rebuild makes (one queue
    /// invocation: the Free plan allows 50 subrequests, paid plans 1,000).
    pub index_rebuild_budget: u32,
}

/// The token service and the admin user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The `service` of challenges and the `aud` of tokens: `REGISTRY_SERVICE`, else the host of
    /// `PUBLIC_URL`, else `registry-edge`.
    pub service: String,
    /// Signs and verifies the edge's tokens (`TOKEN_SIGNING_KEY`, issuer `TOKEN_ISSUER`).
    pub keys: std::rc::Rc<TokenKeys>,
    pub token_seconds: u64,
    pub refresh_token_seconds: u64,
    /// How long the isolate keeps what it read from the KV namespace.
    pub cache_seconds: u64,
    pub admin_user: String,
    /// The deployment's admin password (`ADMIN_PASSWORD`), hashed: works besides the generated
    /// ones, and always reaches the management API.
    pub admin_password_hash: Option<String>,
}

/// Key bytes that never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl PartialEq for TokenKeys {
    fn eq(&self, other: &TokenKeys) -> bool {
        self.key_id == other.key_id && self.issuer == other.issuer
    }
}

impl Eq for TokenKeys {}

/// 90 MiB: under the 100 MB request body limit of Cloudflare's Free and Pro plans
/// (<https://developers.cloudflare.com/workers/platform/limits/#request-limits>).
const DEFAULT_CHUNK_MAX_LENGTH: u64 = 90 << 20;

/// Longest lifetime SigV4 allows for a presigned URL (7 days).
const MAX_PRESIGN_SECONDS: u64 = 604_800;

impl Config {
    /// Reads the configuration through `get`, which returns a variable's or secret's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        // Only what the list names is read (a name missing from it fails the tests).
        let get = |name: &str| {
            debug_assert!(
                SETTINGS
                    .iter()
                    .any(|s| s.name == name && s.kind != Kind::Binding),
                "{name} is not in config::SETTINGS"
            );
            lookup(name)
        };
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &str, default: u64| -> Result<u64, String> {
            var(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| format!("{name} must be a whole number of seconds, not {v:?}"))
            })
        };
        let url = |name: &str| -> Result<Option<Url>, String> {
            var(name)
                .map(|v| Url::parse(&v).map_err(|e| format!("{name} is not a URL ({e}): {v:?}")))
                .transpose()
        };

        let backend = match var("STORAGE_BACKEND").as_deref() {
            None | Some("s3") => Backend::S3,
            Some("r2") => Backend::R2,
            Some("none") => Backend::None,
            Some(other) => {
                return Err(format!(
                    "STORAGE_BACKEND must be s3, r2 or none, not {other:?}"
                ));
            }
        };
        let blob_base_url = url("BLOB_BASE_URL")?;
        let s3 = match url("S3_ENDPOINT")? {
            None => None,
            Some(endpoint) => {
                let required = |name: &str| {
                    var(name).ok_or_else(|| format!("{name} is required with S3_ENDPOINT"))
                };
                let virtual_host = match var("S3_URL_STYLE").as_deref() {
                    None | Some("path") => false,
                    Some("virtual-host") => true,
                    Some(other) => {
                        return Err(format!(
                            "S3_URL_STYLE must be path or virtual-host, not {other:?}"
                        ));
                    }
                };
                Some(S3Config {
                    endpoint,
                    bucket: required("S3_BUCKET")?,
                    region: var("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                    virtual_host,
                    access_key_id: required("S3_ACCESS_KEY_ID")?,
                    secret_access_key: required("S3_SECRET_ACCESS_KEY")?,
                })
            }
        };
        if backend == Backend::S3 && s3.is_none() {
            return Err("S3_ENDPOINT is required with STORAGE_BACKEND=s3".into());
        }
        if backend != Backend::None && s3.is_none() && blob_base_url.is_none() {
            return Err("blob downloads need S3_ENDPOINT (presigned URLs) or BLOB_BASE_URL".into());
        }
        let presign_seconds = number("PRESIGN_SECONDS", 1200)?;
        if !(1..=MAX_PRESIGN_SECONDS).contains(&presign_seconds) {
            return Err(format!(
                "PRESIGN_SECONDS must be between 1 and {MAX_PRESIGN_SECONDS}"
            ));
        }
        let origin = match url("ORIGIN_URL")? {
            None => None,
            Some(url) => Some(OriginConfig {
                url,
                credentials: match (var("ORIGIN_USERNAME"), var("ORIGIN_PASSWORD")) {
                    (Some(username), Some(password)) => {
                        Some(OriginCredentials { username, password })
                    }
                    (None, None) => None,
                    _ => return Err("ORIGIN_USERNAME and ORIGIN_PASSWORD go together".into()),
                },
                timeout: Duration::from_secs(number("ORIGIN_TIMEOUT_SECONDS", 30)?.max(1)),
                upload_timeout: Duration::from_secs(
                    number("ORIGIN_UPLOAD_TIMEOUT_SECONDS", 900)?.max(1),
                ),
                chunk_max_length: number("CHUNK_MAX_LENGTH", DEFAULT_CHUNK_MAX_LENGTH)?.max(1),
            }),
        };
        let public_url = url("PUBLIC_URL")?;
        if let Some(u) = &public_url
            && (u.path() != "/" || u.query().is_some() || u.host_str().is_none())
        {
            // The API lives at /v2/ of its host: a registry cannot be served under a path.
            return Err(format!(
                "PUBLIC_URL must be a scheme and host (and port), without a path: {u}"
            ));
        }
        let service = var("REGISTRY_SERVICE")
            .or_else(|| {
                let url = public_url.as_ref()?;
                let host = url.host_str()?;
                Some(match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                })
            })
            .unwrap_or_else(|| "registry-edge".into());
        let issuer = var("TOKEN_ISSUER").unwrap_or_else(|| service.clone());
        let pem = get("TOKEN_SIGNING_KEY")
            .filter(|v| !v.trim().is_empty())
            .ok_or("TOKEN_SIGNING_KEY is required: an ES256 (P-256) private key in PEM")?;
        let mut keys = TokenKeys::from_pem(&pem, &issuer)?;
        // Upload sessions are always sealed: with EDGE_SECRET when set, else with a key derived
        // from the signing key (a different purpose, so a different key).
        let upload_key = SecretKey(match var("EDGE_SECRET") {
            Some(secret) => secret.into_bytes(),
            None => {
                use sha2::Digest as _;
                let mut hash = sha2::Sha256::new();
                hash.update(b"registry-edge upload sessions\n");
                hash.update(pem.trim().as_bytes());
                hash.finalize().to_vec()
            }
        });
        if let Some(previous) = get("TOKEN_PREVIOUS_KEYS").filter(|v| !v.trim().is_empty()) {
            keys = keys.with_previous(&previous)?;
        }
        let token_seconds = number("TOKEN_SECONDS", 300)?;
        if !(60..=86_400).contains(&token_seconds) {
            return Err("TOKEN_SECONDS must be between 60 and 86400".into());
        }
        let admin_user = var("ADMIN_USER").unwrap_or_else(|| "admin".into());
        if admin_user.contains(':') {
            return Err("ADMIN_USER cannot contain ':'".into());
        }
        let auth = AuthConfig {
            service,
            keys: std::rc::Rc::new(keys),
            token_seconds,
            refresh_token_seconds: number("REFRESH_TOKEN_SECONDS", 30 * 86_400)?.max(60),
            cache_seconds: number("AUTH_CACHE_SECONDS", 10)?,
            admin_user,
            admin_password_hash: get("ADMIN_PASSWORD")
                .filter(|p| !p.is_empty())
                .map(|p| crate::auth::secret::hash_password(&p)),
        };
        let upstreams = match var("UPSTREAMS") {
            None => Vec::new(),
            Some(json) => {
                crate::upstream::parse(&json, |name| lookup(name).map(|v| v.trim().to_owned()))?
            }
        };
        if backend == Backend::None && !upstreams.iter().any(|u| u.prefix.is_empty()) {
            return Err(
                "STORAGE_BACKEND=none reads everything from an upstream: UPSTREAMS needs an entry \
                 with the empty prefix (\"prefix\": \"\", the registry the edge fronts)"
                    .into(),
            );
        }
        if backend == Backend::None
            && let Some(mirror) = upstreams
                .iter()
                .find(|u| u.mode == crate::upstream::Mode::Mirror)
        {
            return Err(format!(
                "UPSTREAMS entry {:?} is a mirror (mode \"mirror\"), which copies into storage: \
                 STORAGE_BACKEND=none has none",
                mirror.prefix
            ));
        }
        Ok(Config {
            upstreams,
            origin,
            auth,
            public_url,
            upload_key,
            backend,
            layout: Layout::new(var("STORAGE_ROOT").as_deref().unwrap_or("")),
            s3,
            blob_base_url,
            presign_seconds,
            storage_timeout: Duration::from_secs(number("STORAGE_TIMEOUT_SECONDS", 10)?.max(1)),
            tag_cache_seconds: number("TAG_CACHE_SECONDS", 5)?,
            job_retry_seconds: number("JOB_RETRY_SECONDS", 10)?.clamp(1, 3600) as u32,
            pull_event_batch: number("PULL_EVENT_BATCH", 100)?.max(1),
            pull_event_seconds: number("PULL_EVENT_SECONDS", 60)?.max(1),
            index_rebuild_budget: number("INDEX_REBUILD_BUDGET", 40)?.clamp(10, 10_000) as u32,
            webhook_allow_http: match var("WEBHOOK_ALLOW_HTTP").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(format!(
                        "WEBHOOK_ALLOW_HTTP must be true or false, not {other:?}"
                    ));
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, String> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("TOKEN_SIGNING_KEY".into())
            .or_insert_with(|| crate::auth::jwt::test_pem().to_owned());
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const S3: &[(&str, &str)] = &[
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("S3_BUCKET", "registry"),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
    ];

    #[test]
    fn defaults() {
        let c = parse(S3).unwrap();
        assert_eq!(c.backend, Backend::S3);
        assert_eq!(c.presign_seconds, 1200);
        assert_eq!(c.tag_cache_seconds, 5);
        assert_eq!(c.s3.as_ref().unwrap().region, "us-east-1");
        assert!(!c.s3.unwrap().virtual_host);
        assert_eq!(c.layout, Layout::new(""));
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(parse(&[]).unwrap_err().contains("S3_ENDPOINT"));
        assert!(
            parse(&S3[..3])
                .unwrap_err()
                .contains("S3_SECRET_ACCESS_KEY")
        );
        let mut v = S3.to_vec();
        v.push(("PRESIGN_SECONDS", "soon"));
        assert!(parse(&v).unwrap_err().contains("PRESIGN_SECONDS"));
        let mut v = S3.to_vec();
        v.push(("PRESIGN_SECONDS", "700000"));
        assert!(parse(&v).unwrap_err().contains("PRESIGN_SECONDS"));
        assert!(
            parse(&[("STORAGE_BACKEND", "gcs")])
                .unwrap_err()
                .contains("STORAGE_BACKEND")
        );
        assert!(
            parse(&[("STORAGE_BACKEND", "r2")])
                .unwrap_err()
                .contains("BLOB_BASE_URL")
        );
    }

    #[test]
    fn origin() {
        assert!(parse(S3).unwrap().origin.is_none());
        let mut v = S3.to_vec();
        v.push(("ORIGIN_URL", "http://127.0.0.1:5000"));
        let o = parse(&v).unwrap().origin.unwrap();
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.chunk_max_length, 90 << 20);
        assert!(o.credentials.is_none());
        v.push(("ORIGIN_USERNAME", "edge"));
        assert!(parse(&v).unwrap_err().contains("ORIGIN_PASSWORD"));
        v.push(("ORIGIN_PASSWORD", "hunter2"));
        let o = parse(&v).unwrap().origin.unwrap();
        assert_eq!(o.credentials.as_ref().unwrap().username, "edge");
        assert!(
            !format!("{o:?}").contains("hunter2"),
            "passwords never reach a log"
        );
    }

    #[test]
    fn auth() {
        let c = parse(S3).unwrap();
        assert_eq!(c.auth.service, "registry-edge");
        assert_eq!(c.auth.keys.issuer, "registry-edge");
        assert_eq!(c.auth.admin_user, "admin");
        assert!(c.auth.admin_password_hash.is_none());
        assert_eq!(c.auth.token_seconds, 300);
        let mut v = S3.to_vec();
        v.push(("PUBLIC_URL", "https://registry.example.com:8443/"));
        v.push(("ADMIN_PASSWORD", "hunter2"));
        let c = parse(&v).unwrap();
        assert_eq!(c.auth.service, "registry.example.com:8443");
        assert!(!format!("{c:?}").contains("hunter2"), "no password in logs");
        assert!(!format!("{c:?}").contains("PRIVATE KEY"), "no key in logs");
        let mut with_path = S3.to_vec();
        with_path.push(("PUBLIC_URL", "https://example.com/registry"));
        assert!(parse(&with_path).unwrap_err().contains("PUBLIC_URL"));
        v.push(("REGISTRY_SERVICE", "registry"));
        v.push(("TOKEN_ISSUER", "edge-tokens"));
        let c = parse(&v).unwrap();
        assert_eq!(c.auth.service, "registry");
        assert_eq!(c.auth.keys.issuer, "edge-tokens");
        let mut v = S3.to_vec();
        v.push(("TOKEN_SIGNING_KEY", "nope"));
        assert!(parse(&v).unwrap_err().contains("TOKEN_SIGNING_KEY"));
        let mut v = S3.to_vec();
        v.push(("TOKEN_SECONDS", "5"));
        assert!(parse(&v).unwrap_err().contains("TOKEN_SECONDS"));
    }

    /// The setting names of a markdown table's first column (`| `NAME` | kind | ...`) under the
    /// README's "## Configuration" heading, with their rows.
    fn readme_rows() -> Vec<(String, String)> {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Configuration")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        section
            .lines()
            .filter_map(|line| {
                let name = line.strip_prefix("| `")?.split('`').next()?;
                Some((name.to_owned(), line.to_owned()))
            })
            .collect()
    }

    #[test]
    fn the_readme_documents_every_setting_once() {
        let rows = readme_rows();
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        let listed: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        assert_eq!(
            names, listed,
            "README configuration table vs config::SETTINGS"
        );
        for (setting, (_, row)) in SETTINGS.iter().zip(&rows) {
            let kind = row.split('|').nth(2).unwrap().trim();
            let want = match setting.kind {
                Kind::Var => "var",
                Kind::Secret => "secret",
                Kind::Binding => kind.strip_suffix(" binding").map_or("binding", |_| kind),
            };
            assert_eq!(kind, want, "{}", setting.name);
            if let Some(default) = setting.default {
                assert!(
                    row.contains(&format!("default `{default}`")),
                    "{}: the README should say its default is {default}",
                    setting.name
                );
            }
        }
    }

    #[test]
    fn wrangler_toml_names_every_setting() {
        let toml = include_str!("../wrangler.toml");
        let mut named: Vec<String> = Vec::new();
        let upper = |w: &str| {
            w.len() > 2
                && w.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && w.contains('_')
        };
        for line in toml.lines() {
            let line = line.trim().trim_start_matches('#').trim();
            // `NAME = "value"` (set or commented out), `binding = "NAME"`, and the names in the
            // secrets comment (`NAME, NAME   what it is`).
            if let Some(binding) = line.strip_prefix("binding = ") {
                named.push(binding.trim_matches('"').to_owned());
            } else if let Some((name, _)) = line.split_once(" = ")
                && (upper(name) || (name.len() > 2 && name.bytes().all(|b| b.is_ascii_uppercase())))
            {
                named.push(name.to_owned());
            } else {
                let head = line.split("  ").next().unwrap_or("");
                named.extend(head.split(", ").filter(|w| upper(w)).map(str::to_owned));
            }
        }
        named.sort();
        named.dedup();
        let mut listed: Vec<String> = SETTINGS.iter().map(|s| s.name.to_owned()).collect();
        listed.sort();
        assert_eq!(named, listed, "wrangler.toml vs config::SETTINGS");
    }

    #[test]
    fn the_local_stack_passes_every_variable_and_secret() {
        let lib = include_str!("../scripts/lib.sh");
        let line = lib
            .lines()
            .find_map(|l| l.strip_prefix("EDGE_VAR_NAMES=\""))
            .unwrap()
            .trim_end_matches('"');
        let mut passed: Vec<&str> = line.split_whitespace().collect();
        passed.sort();
        let mut listed: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.kind != Kind::Binding)
            .map(|s| s.name)
            .collect();
        listed.sort();
        assert_eq!(
            passed, listed,
            "scripts/lib.sh EDGE_VAR_NAMES vs config::SETTINGS"
        );
    }

    #[test]
    fn no_storage_fronts_the_upstream_with_the_empty_prefix() {
        let base = [
            ("STORAGE_BACKEND", "none"),
            ("TOKEN_SIGNING_KEY", crate::auth::jwt::test_pem()),
        ];
        let err = parse(&base).unwrap_err();
        assert!(
            err.contains("needs an entry with the empty prefix"),
            "{err}"
        );
        let mut v = base.to_vec();
        v.push((
            "UPSTREAMS",
            r#"[{"prefix": "", "url": "https://registry.internal.example"}]"#,
        ));
        let c = parse(&v).unwrap();
        assert_eq!(c.backend, Backend::None);
        assert!(c.s3.is_none());
        assert!(c.upstreams[0].default);
        v[0] = ("STORAGE_BACKEND", "disk");
        assert!(parse(&v).unwrap_err().contains("s3, r2 or none"));
    }

    #[test]
    fn r2_with_a_cdn_needs_no_s3() {
        let c = parse(&[
            ("STORAGE_BACKEND", "r2"),
            ("BLOB_BASE_URL", "https://cdn.example.com/"),
            ("STORAGE_ROOT", "/origin"),
        ])
        .unwrap();
        assert_eq!(c.backend, Backend::R2);
        assert!(c.s3.is_none());
        assert_eq!(c.layout, Layout::new("origin"));
    }
}
