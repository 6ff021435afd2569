//! `registry-edge`: the management command line. It speaks the edge's management API
//! (`/api/v1/...`) as the admin user, against the local stack or a deployed edge, and generates
//! token signing keys. Generated passwords are printed once; nothing is stored locally.
//!
//! ```text
//! registry-edge --url https://registry.example.com token create ci-pull --scope-map _repositories_pull
//! ```
//!
//! Credentials come from `--user` / `REGISTRY_EDGE_USER` (default `admin`) and
//! `REGISTRY_EDGE_PASSWORD` (or `--password-stdin`).

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    std::process::exit(cli::main());
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::collections::BTreeMap;
    use std::io::Read;

    use base64::Engine;
    use clap::{Args, Parser, Subcommand, ValueEnum};
    use registry_edge::api::{
        AdminUpdate, AnonymousPullUpdate, AttributesUpdate, Endpoint, NetworkRulesUpdate,
        NewPassword, ScopeMapUpdate, TokenUpdate, WebhookCreate, WebhookUpdate,
    };
    use registry_edge::auth::network::{NetworkRules, parse_range};
    use registry_edge::auth::records::PasswordSlot;
    use registry_edge::webhooks::{Action, Status};
    use serde_json::Value;

    /// A transport error, with the fix when there is a likely one.
    fn explain(url: &str, error: &ureq::Error) -> String {
        let hint = match error {
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                " (is the edge running? `scripts/dev` starts the local stack; --url or \
                 REGISTRY_EDGE_URL names another edge)"
            }
            // rustls's refusals arrive as I/O errors naming the certificate.
            _ if error.to_string().contains("certificate") => {
                " (for a local edge, pass its CA with --ca-cert or REGISTRY_EDGE_CA_CERT, as \
                 `scripts/dev` prints it)"
            }
            _ => "",
        };
        format!("{url}: {error}{hint}")
    }

    #[derive(Parser)]
    #[command(
        name = "registry-edge",
        version,
        about = "Manage a registry-edge deployment"
    )]
    struct Cli {
        /// The edge's public URL.
        #[arg(
            long,
            env = "REGISTRY_EDGE_URL",
            default_value = "http://127.0.0.1:8787"
        )]
        url: String,
        /// The admin user (or a token with metadata/write, for `repository`).
        #[arg(long, env = "REGISTRY_EDGE_USER", default_value = "admin")]
        user: String,
        /// Read the password from standard input (else REGISTRY_EDGE_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
        /// Accept any TLS certificate (a local edge with a self-signed one).
        #[arg(long)]
        insecure: bool,
        /// Trust this PEM certificate (the local stack's, which `scripts/dev` prints) instead of
        /// the public roots.
        #[arg(long, env = "REGISTRY_EDGE_CA_CERT")]
        ca_cert: Option<std::path::PathBuf>,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print a new ES256 token signing key (PEM), for the TOKEN_SIGNING_KEY secret.
        Keygen,
        /// The admin user: show, enable, disable, passwords.
        Admin {
            #[command(subcommand)]
            action: AdminAction,
        },
        /// Tokens: named credentials bound to a scope map.
        Token {
            #[command(subcommand)]
            action: TokenAction,
        },
        /// Scope maps: repositories/<repository or prefix/*>/<action> entries.
        ScopeMap {
            #[command(subcommand)]
            action: ScopeMapAction,
        },
        /// Anonymous (credential-free) pull.
        AnonymousPull {
            #[command(subcommand)]
            action: AnonymousAction,
        },
        /// Network rules: the default action and the allowed address ranges.
        Network {
            #[command(subcommand)]
            action: NetworkAction,
        },
        /// Repository, tag and manifest attributes (locks).
        Repository {
            #[command(subcommand)]
            action: RepositoryAction,
        },
        /// Webhooks: registry events (push, delete, ...) delivered to a receiver, as ACR's.
        Webhook {
            #[command(subcommand)]
            action: WebhookAction,
        },
        /// The catalog and referrers indexes: rebuild them from storage, or see how that goes.
        Index {
            #[command(subcommand)]
            action: IndexAction,
        },
    }

    #[derive(Subcommand)]
    enum IndexAction {
        /// Walk storage and rebuild the indexes (after writes that did not pass through the edge:
        /// an adopted registry, pushes straight to the origin). Supersedes a rebuild in progress.
        Rebuild {
            /// Wait until the rebuild is done (or this many seconds have passed), printing its
            /// progress.
            #[arg(long, value_name = "SECONDS")]
            wait: Option<u64>,
        },
        /// The indexes' state and the last rebuild's progress.
        Status,
    }

    #[derive(Subcommand)]
    enum AdminAction {
        Show,
        Enable,
        Disable,
        /// Generate (or regenerate) password1 or password2; prints it once.
        Password {
            name: PasswordSlot,
            #[command(flatten)]
            expiry: Expiry,
        },
        /// Delete password1 or password2.
        DeletePassword {
            name: PasswordSlot,
        },
    }

    #[derive(Subcommand)]
    enum TokenAction {
        List,
        Show {
            name: String,
        },
        /// Create a token; prints its password1 once.
        Create {
            name: String,
            #[arg(long)]
            scope_map: String,
            #[arg(long)]
            disabled: bool,
        },
        /// Bind a token to another scope map.
        Update {
            name: String,
            #[arg(long)]
            scope_map: String,
        },
        Enable {
            name: String,
        },
        Disable {
            name: String,
        },
        Delete {
            name: String,
        },
        /// Generate (or regenerate) password1 or password2; prints it once.
        Password {
            name: String,
            password: PasswordSlot,
            #[command(flatten)]
            expiry: Expiry,
        },
        DeletePassword {
            name: String,
            password: PasswordSlot,
        },
    }

    #[derive(Args)]
    struct Expiry {
        /// When the password stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expiry: Option<String>,
    }

    #[derive(Subcommand)]
    enum ScopeMapAction {
        List,
        Show {
            name: String,
        },
        /// Create or replace a scope map.
        Create {
            name: String,
            /// repositories/<repository or prefix/*>/<content|metadata>/<read|write|delete>
            #[arg(long = "action", required = true)]
            actions: Vec<String>,
            #[arg(long, default_value = "")]
            description: String,
        },
        Delete {
            name: String,
        },
    }

    #[derive(Subcommand)]
    enum AnonymousAction {
        Show,
        /// Anonymous pull of every repository.
        Enable,
        /// No anonymous pull at all.
        Disable,
        /// Anonymous pull of these repositories only (name or prefix/*).
        Set {
            #[arg(long = "repository", required = true)]
            repositories: Vec<String>,
        },
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum DefaultAction {
        Allow,
        Deny,
    }

    #[derive(Subcommand)]
    enum NetworkAction {
        Show,
        /// Replace the rules.
        Set {
            #[arg(long = "default", value_enum)]
            default_action: DefaultAction,
            /// An allowed address or CIDR range (repeatable).
            #[arg(long = "allow")]
            allow: Vec<String>,
        },
        /// Allow one more address or range.
        Add {
            range: String,
        },
        /// Remove an address or range.
        Remove {
            range: String,
        },
    }

    #[derive(Args)]
    struct Target {
        name: String,
        /// A tag of the repository, instead of the repository itself.
        #[arg(long, conflicts_with = "manifest")]
        tag: Option<String>,
        /// A manifest (digest) of the repository, instead of the repository itself.
        #[arg(long)]
        manifest: Option<String>,
    }

    #[derive(Subcommand)]
    enum RepositoryAction {
        /// Repositories that have attributes.
        List,
        Show {
            #[command(flatten)]
            target: Target,
        },
        Update {
            #[command(flatten)]
            target: Target,
            #[arg(long)]
            read_enabled: Option<bool>,
            #[arg(long)]
            list_enabled: Option<bool>,
            #[arg(long)]
            write_enabled: Option<bool>,
            #[arg(long)]
            delete_enabled: Option<bool>,
        },
        /// Back to the defaults (everything enabled).
        Reset {
            #[command(flatten)]
            target: Target,
        },
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum WebhookStatus {
        Enabled,
        Disabled,
    }

    #[derive(Subcommand)]
    enum WebhookAction {
        List,
        Show {
            name: String,
        },
        /// Create a webhook; prints its signing secret once.
        Create {
            /// 5 to 50 letters and digits.
            name: String,
            /// Where deliveries are POSTed (https).
            #[arg(long)]
            uri: String,
            /// What it is told of, comma-separated: push, delete, chart_push, chart_delete,
            /// pull, replicated.
            #[arg(long, value_name = "ACTION,...")]
            actions: String,
            /// repository:tag patterns with * wildcards, e.g. 'team-a/*:*' (empty: every
            /// repository).
            #[arg(long, default_value = "")]
            scope: String,
            /// A header sent with every delivery (repeatable), e.g. 'Authorization=Bearer x'.
            #[arg(long = "header", value_name = "NAME=VALUE")]
            headers: Vec<String>,
            #[arg(long, value_enum, default_value_t = WebhookStatus::Enabled)]
            status: WebhookStatus,
        },
        /// Change a webhook; what is not given is left as it is.
        Update {
            name: String,
            #[arg(long)]
            uri: Option<String>,
            /// Comma-separated: push, delete, chart_push, chart_delete, pull, replicated.
            #[arg(long, value_name = "ACTION,...")]
            actions: Option<String>,
            #[arg(long)]
            scope: Option<String>,
            /// A header sent with every delivery (repeatable); replaces all the webhook's
            /// headers.
            #[arg(long = "header", value_name = "NAME=VALUE")]
            headers: Vec<String>,
            #[arg(long, value_enum)]
            status: Option<WebhookStatus>,
        },
        Delete {
            name: String,
        },
        /// Queue a ping event for the webhook (`webhook events` shows its delivery).
        Ping {
            name: String,
        },
        /// The webhook's delivery log, newest first.
        Events {
            name: String,
        },
        /// Where the webhook delivers to, and its custom headers by name.
        GetConfig {
            name: String,
        },
    }

    struct Client {
        agent: ureq::Agent,
        base: String,
        authorization: String,
    }

    impl Client {
        fn send(
            &self,
            method: &str,
            endpoint: &Endpoint,
            body: Option<Value>,
        ) -> Result<Value, String> {
            self.send_query(method, endpoint, None, body)
        }

        fn send_query(
            &self,
            method: &str,
            endpoint: &Endpoint,
            query: Option<String>,
            body: Option<Value>,
        ) -> Result<Value, String> {
            let mut url = format!("{}{}", self.base, endpoint.path());
            if let Some(query) = query {
                url.push('?');
                url.push_str(&query);
            }
            let request = http::Request::builder()
                .method(method)
                .uri(&url)
                .header("authorization", &self.authorization)
                .header("content-type", "application/json");
            let request = request
                .body(body.map(|b| b.to_string()).unwrap_or_default())
                .map_err(|e| format!("{url}: {e}"))?;
            let mut response = self.agent.run(request).map_err(|e| explain(&url, &e))?;
            let status = response.status();
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("{url}: {e}"))?;
            let value: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if status.is_success() {
                Ok(value)
            } else {
                let message = value["errors"][0]["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string());
                Err(format!("{method} {url}: {} {message}", status.as_u16()))
            }
        }
    }

    fn expiry(e: &Expiry) -> Result<Option<u64>, String> {
        e.expiry
            .as_deref()
            .map(|s| {
                s.parse::<jiff::Timestamp>()
                    .map(|t| t.as_second().max(0) as u64)
                    .map_err(|err| format!("--expiry {s:?}: {err}"))
            })
            .transpose()
    }

    /// A body of the management API, as JSON.
    fn body(value: &impl serde::Serialize) -> Option<Value> {
        Some(serde_json::to_value(value).expect("management bodies serialize"))
    }

    /// A repository's endpoint, and the query naming one of its tags or manifests.
    fn target(t: &Target) -> Result<(Endpoint, Option<String>), String> {
        let name = t
            .name
            .parse()
            .map_err(|_| format!("{:?} is not a repository name", t.name))?;
        let query = match (&t.tag, &t.manifest) {
            (Some(tag), _) => Some(("tag", tag)),
            (None, Some(digest)) => Some(("manifest", digest)),
            (None, None) => None,
        }
        .map(|(k, v)| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair(k, v)
                .finish()
        });
        Ok((Endpoint::Repository(name), query))
    }

    /// A webhook's endpoint. The name is checked first: it becomes a path segment.
    fn webhook(name: &str, endpoint: fn(String) -> Endpoint) -> Result<Endpoint, String> {
        registry_edge::webhooks::check_name(name)?;
        Ok(endpoint(name.to_owned()))
    }

    /// `--actions push,delete`: each action checked here.
    fn webhook_actions(list: &str) -> Result<Vec<Action>, String> {
        let actions = list
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|e| format!("--actions {list:?}: {e}")))
            .collect::<Result<Vec<Action>, String>>()?;
        if actions.is_empty() {
            return Err(
                "--actions names no action: push, delete, chart_push, chart_delete, pull or \
                 replicated"
                    .into(),
            );
        }
        Ok(actions)
    }

    /// `--header Name=Value` (repeatable): a webhook's custom headers.
    fn webhook_headers(headers: &[String]) -> Result<BTreeMap<String, String>, String> {
        let mut map = BTreeMap::new();
        for header in headers {
            let Some((name, value)) = header.split_once('=') else {
                return Err(format!(
                    "--header {header:?} is not Name=Value (e.g. 'Authorization=Bearer x')"
                ));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("--header {header:?} has no name"));
            }
            if map.keys().any(|k: &String| k.eq_ignore_ascii_case(name)) {
                return Err(format!("--header {name} is given twice"));
            }
            map.insert(name.to_owned(), value.trim().to_owned());
        }
        Ok(map)
    }

    fn webhook_status(status: WebhookStatus) -> Status {
        match status {
            WebhookStatus::Enabled => Status::Enabled,
            WebhookStatus::Disabled => Status::Disabled,
        }
    }

    /// `webhook update`'s body: what is given, and at least something.
    fn webhook_update(
        uri: Option<String>,
        actions: Option<&str>,
        scope: Option<String>,
        headers: &[String],
        status: Option<WebhookStatus>,
    ) -> Result<WebhookUpdate, String> {
        let update = WebhookUpdate {
            service_uri: uri,
            actions: actions.map(webhook_actions).transpose()?,
            scope,
            custom_headers: if headers.is_empty() {
                None
            } else {
                Some(webhook_headers(headers)?)
            },
            status: status.map(webhook_status),
        };
        let nothing = update.service_uri.is_none()
            && update.actions.is_none()
            && update.scope.is_none()
            && update.custom_headers.is_none()
            && update.status.is_none();
        if nothing {
            return Err(
                "nothing to change: give --uri, --actions, --scope, --header or --status".into(),
            );
        }
        Ok(update)
    }

    pub fn main() -> i32 {
        let cli = Cli::parse();
        match run(cli) {
            Ok(Value::Null) => 0,
            Ok(value) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
                0
            }
            Err(message) => {
                eprintln!("registry-edge: {message}");
                1
            }
        }
    }

    fn run(cli: Cli) -> Result<Value, String> {
        if let Command::Keygen = cli.command {
            print!("{}", registry_edge::auth::jwt::TokenKeys::generate_pem()?);
            return Ok(Value::Null);
        }
        let password = if cli.password_stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading the password: {e}"))?;
            s.trim_end_matches(['\r', '\n']).to_owned()
        } else {
            std::env::var("REGISTRY_EDGE_PASSWORD").map_err(|_| {
                "no password: set REGISTRY_EDGE_PASSWORD or use --password-stdin".to_owned()
            })?
        };
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(cli.insecure);
        if let Some(path) = &cli.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| format!("reading the CA certificate {}: {e}", path.display()))?;
            let cert = ureq::tls::Certificate::from_pem(&pem)
                .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]));
        }
        let tls = tls.build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        let client = Client {
            agent,
            base: cli.url.trim_end_matches('/').to_owned(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{password}", cli.user))
            ),
        };
        let c = &client;
        match cli.command {
            Command::Keygen => unreachable!("handled above"),
            Command::Admin { action } => match action {
                AdminAction::Show => c.send("GET", &Endpoint::Admin, None),
                AdminAction::Enable => c.send(
                    "PATCH",
                    &Endpoint::Admin,
                    body(&AdminUpdate { enabled: true }),
                ),
                AdminAction::Disable => c.send(
                    "PATCH",
                    &Endpoint::Admin,
                    body(&AdminUpdate { enabled: false }),
                ),
                AdminAction::Password { name, expiry: e } => c.send(
                    "POST",
                    &Endpoint::AdminPasswords,
                    body(&NewPassword {
                        name,
                        expiry: expiry(&e)?,
                    }),
                ),
                AdminAction::DeletePassword { name } => {
                    c.send("DELETE", &Endpoint::AdminPassword(name), None)
                }
            },
            Command::Token { action } => match action {
                TokenAction::List => c.send("GET", &Endpoint::Tokens, None),
                TokenAction::Show { name } => c.send("GET", &Endpoint::Token(name), None),
                TokenAction::Create {
                    name,
                    scope_map,
                    disabled,
                } => {
                    let endpoint = Endpoint::Token(name.clone());
                    if c.send("GET", &endpoint, None).is_ok() {
                        return Err(format!(
                            "token {name} exists: use `token update` or `token password`"
                        ));
                    }
                    let update = TokenUpdate {
                        scope_map: Some(scope_map),
                        enabled: Some(!disabled),
                    };
                    c.send("PUT", &endpoint, body(&update))
                }
                TokenAction::Update { name, scope_map } => {
                    let update = TokenUpdate {
                        scope_map: Some(scope_map),
                        enabled: None,
                    };
                    c.send("PATCH", &Endpoint::Token(name), body(&update))
                }
                TokenAction::Enable { name } => {
                    let update = TokenUpdate {
                        scope_map: None,
                        enabled: Some(true),
                    };
                    c.send("PATCH", &Endpoint::Token(name), body(&update))
                }
                TokenAction::Disable { name } => {
                    let update = TokenUpdate {
                        scope_map: None,
                        enabled: Some(false),
                    };
                    c.send("PATCH", &Endpoint::Token(name), body(&update))
                }
                TokenAction::Delete { name } => c.send("DELETE", &Endpoint::Token(name), None),
                TokenAction::Password {
                    name,
                    password,
                    expiry: e,
                } => c.send(
                    "POST",
                    &Endpoint::TokenPasswords(name),
                    body(&NewPassword {
                        name: password,
                        expiry: expiry(&e)?,
                    }),
                ),
                TokenAction::DeletePassword { name, password } => {
                    c.send("DELETE", &Endpoint::TokenPassword(name, password), None)
                }
            },
            Command::ScopeMap { action } => match action {
                ScopeMapAction::List => c.send("GET", &Endpoint::ScopeMaps, None),
                ScopeMapAction::Show { name } => c.send("GET", &Endpoint::ScopeMap(name), None),
                ScopeMapAction::Create {
                    name,
                    actions,
                    description,
                } => {
                    let actions = actions
                        .iter()
                        .map(|a| a.parse().map_err(|e| format!("--action {a:?}: {e}")))
                        .collect::<Result<Vec<_>, String>>()?;
                    c.send(
                        "PUT",
                        &Endpoint::ScopeMap(name),
                        body(&ScopeMapUpdate {
                            description,
                            actions,
                        }),
                    )
                }
                ScopeMapAction::Delete { name } => {
                    c.send("DELETE", &Endpoint::ScopeMap(name), None)
                }
            },
            Command::AnonymousPull { action } => {
                let update = match action {
                    AnonymousAction::Show => return c.send("GET", &Endpoint::AnonymousPull, None),
                    AnonymousAction::Enable => AnonymousPullUpdate {
                        enabled: true,
                        repositories: Vec::new(),
                    },
                    AnonymousAction::Disable => AnonymousPullUpdate::default(),
                    AnonymousAction::Set { repositories } => AnonymousPullUpdate {
                        enabled: false,
                        repositories,
                    },
                };
                c.send("PUT", &Endpoint::AnonymousPull, body(&update))
            }
            Command::Network { action } => {
                let shown = c.send("GET", &Endpoint::NetworkRules, None)?;
                // Read leniently (a newer edge may answer more fields), written as the update.
                let parsed: NetworkRules = serde_json::from_value(shown.clone())
                    .map_err(|e| format!("the network rules the edge answered: {e}"))?;
                let current = NetworkRulesUpdate {
                    default_action: parsed.default_action,
                    ip_rules: parsed.ip_rules.iter().map(ToString::to_string).collect(),
                };
                let rules = match action {
                    NetworkAction::Show => return Ok(shown),
                    NetworkAction::Set {
                        default_action,
                        allow,
                    } => NetworkRulesUpdate {
                        default_action: match default_action {
                            DefaultAction::Allow => {
                                registry_edge::auth::network::DefaultAction::Allow
                            }
                            DefaultAction::Deny => {
                                registry_edge::auth::network::DefaultAction::Deny
                            }
                        },
                        ip_rules: allow,
                    },
                    NetworkAction::Add { range } => {
                        let mut rules = current;
                        rules.ip_rules.push(range);
                        rules
                    }
                    NetworkAction::Remove { range } => {
                        let mut rules = current;
                        // `192.0.2.7` names the stored `192.0.2.7/32`.
                        let target = parse_range(&range)?;
                        let before = rules.ip_rules.len();
                        rules
                            .ip_rules
                            .retain(|r| parse_range(r).ok() != Some(target));
                        if rules.ip_rules.len() == before {
                            return Err(format!("{range} is not in the rules"));
                        }
                        rules
                    }
                };
                c.send("PUT", &Endpoint::NetworkRules, body(&rules))
            }
            Command::Repository { action } => match action {
                RepositoryAction::List => c.send("GET", &Endpoint::Repositories, None),
                RepositoryAction::Show { target: t } => {
                    let (endpoint, query) = target(&t)?;
                    c.send_query("GET", &endpoint, query, None)
                }
                RepositoryAction::Update {
                    target: t,
                    read_enabled,
                    list_enabled,
                    write_enabled,
                    delete_enabled,
                } => {
                    let (endpoint, query) = target(&t)?;
                    let update = AttributesUpdate {
                        read_enabled,
                        list_enabled,
                        write_enabled,
                        delete_enabled,
                    };
                    c.send_query("PATCH", &endpoint, query, body(&update))
                }
                RepositoryAction::Reset { target: t } => {
                    let (endpoint, query) = target(&t)?;
                    c.send_query("DELETE", &endpoint, query, None)
                }
            },
            Command::Webhook { action } => match action {
                WebhookAction::List => c.send("GET", &Endpoint::Webhooks, None),
                WebhookAction::Show { name } => {
                    c.send("GET", &webhook(&name, Endpoint::Webhook)?, None)
                }
                WebhookAction::Create {
                    name,
                    uri,
                    actions,
                    scope,
                    headers,
                    status,
                } => {
                    let endpoint = webhook(&name, Endpoint::Webhook)?;
                    let create = WebhookCreate {
                        service_uri: uri,
                        actions: webhook_actions(&actions)?,
                        scope,
                        custom_headers: webhook_headers(&headers)?,
                        status: webhook_status(status),
                    };
                    if c.send("GET", &endpoint, None).is_ok() {
                        return Err(format!(
                            "webhook {name} exists: use `webhook update`, or `webhook delete` \
                             it first"
                        ));
                    }
                    let created = c.send("PUT", &endpoint, body(&create))?;
                    eprintln!(
                        "registry-edge: the secret signs every delivery (X-Registry-Signature) \
                         and is shown only now: keep it"
                    );
                    Ok(created)
                }
                WebhookAction::Update {
                    name,
                    uri,
                    actions,
                    scope,
                    headers,
                    status,
                } => {
                    let endpoint = webhook(&name, Endpoint::Webhook)?;
                    let update = webhook_update(uri, actions.as_deref(), scope, &headers, status)?;
                    c.send("PATCH", &endpoint, body(&update))
                }
                WebhookAction::Delete { name } => {
                    c.send("DELETE", &webhook(&name, Endpoint::Webhook)?, None)
                }
                WebhookAction::Ping { name } => c.send(
                    "POST",
                    &webhook(&name, Endpoint::WebhookPing)?,
                    Some(serde_json::json!({})),
                ),
                WebhookAction::Events { name } => {
                    c.send("GET", &webhook(&name, Endpoint::WebhookEvents)?, None)
                }
                WebhookAction::GetConfig { name } => {
                    c.send("GET", &webhook(&name, Endpoint::WebhookConfig)?, None)
                }
            },
            Command::Index { action } => match action {
                IndexAction::Status => c.send("GET", &Endpoint::Indexes, None),
                IndexAction::Rebuild { wait } => {
                    let started = c.send("POST", &Endpoint::IndexRebuild, None)?;
                    let Some(seconds) = wait else {
                        return Ok(started);
                    };
                    let deadline =
                        std::time::Instant::now() + std::time::Duration::from_secs(seconds);
                    loop {
                        let status = c.send("GET", &Endpoint::Indexes, None)?;
                        let rebuild = &status["rebuild"];
                        if rebuild["run"] != started["run"] {
                            return Err(format!(
                                "another rebuild ({}) superseded this one ({})",
                                rebuild["run"], started["run"]
                            ));
                        }
                        if rebuild["phase"] == "done" {
                            return Ok(status);
                        }
                        if std::time::Instant::now() >= deadline {
                            return Err(format!(
                                "the rebuild is not done after {seconds} s: {rebuild}"
                            ));
                        }
                        eprintln!(
                            "rebuild {}: {}, {} repositories found, {} indexed, {} manifests read",
                            rebuild["run"],
                            rebuild["phase"].as_str().unwrap_or("?"),
                            rebuild["repositoriesFound"],
                            rebuild["repositoriesIndexed"],
                            rebuild["manifestsRead"]
                        );
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                }
            },
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn parse(args: &[&str]) -> Result<WebhookAction, String> {
            let cli = Cli::try_parse_from([&["registry-edge", "webhook"], args].concat())
                .map_err(|e| e.to_string())?;
            match cli.command {
                Command::Webhook { action } => Ok(action),
                _ => Err("not a webhook command".into()),
            }
        }

        #[test]
        fn actions_are_comma_separated_and_checked() {
            assert_eq!(
                webhook_actions("push,delete"),
                Ok(vec![Action::Push, Action::Delete])
            );
            assert_eq!(
                webhook_actions(" chart_push , pull,"),
                Ok(vec![Action::ChartPush, Action::Pull])
            );
            let all = "push,delete,chart_push,chart_delete,pull,replicated";
            assert_eq!(webhook_actions(all), Ok(Action::ALL.to_vec()));
            let error = webhook_actions("push,pushed").unwrap_err();
            assert!(
                error.starts_with(r#"--actions "push,pushed": "pushed" is not a webhook action"#),
                "{error}"
            );
            assert!(webhook_actions("Push").is_err());
            for empty in ["", ",", " , "] {
                let error = webhook_actions(empty).unwrap_err();
                assert!(error.starts_with("--actions names no action"), "{error}");
            }
        }

        #[test]
        fn headers_are_name_equals_value() {
            let headers = webhook_headers(&[
                "Authorization=Bearer a=b".into(),
                " X-Team = a ".into(),
                "X-Empty=".into(),
            ])
            .unwrap();
            assert_eq!(
                headers.into_iter().collect::<Vec<_>>(),
                [
                    ("Authorization".to_owned(), "Bearer a=b".to_owned()),
                    ("X-Empty".to_owned(), String::new()),
                    ("X-Team".to_owned(), "a".to_owned()),
                ]
            );
            assert_eq!(webhook_headers(&[]), Ok(BTreeMap::new()));
            let error = webhook_headers(&["Authorization: Bearer x".into()]).unwrap_err();
            assert!(error.contains("is not Name=Value"), "{error}");
            assert!(
                webhook_headers(&["=x".into()])
                    .unwrap_err()
                    .contains("no name")
            );
            let twice = webhook_headers(&["X-A=1".into(), "x-a=2".into()]).unwrap_err();
            assert!(twice.contains("given twice"), "{twice}");
        }

        #[test]
        fn webhook_names_are_checked_before_they_become_a_path() {
            assert_eq!(
                webhook("build1", Endpoint::WebhookPing).map(|e| e.path()),
                Ok("/api/v1/webhooks/build1/ping".to_owned())
            );
            for bad in ["abc", "build1/../../tokens/ci", "build1?x=1", "has-dash"] {
                assert!(webhook(bad, Endpoint::Webhook).is_err(), "{bad}");
            }
        }

        #[test]
        fn create_takes_its_flags() {
            let action = parse(&[
                "create",
                "build1",
                "--uri",
                "https://hooks.example/x",
                "--actions",
                "push,delete",
                "--scope",
                "team-a/*:*",
                "--header",
                "Authorization=Bearer x",
                "--header",
                "X-Team=a",
                "--status",
                "disabled",
            ])
            .unwrap();
            let WebhookAction::Create {
                name,
                uri,
                actions,
                scope,
                headers,
                status,
            } = action
            else {
                panic!("not create");
            };
            assert_eq!(
                (
                    name.as_str(),
                    uri.as_str(),
                    actions.as_str(),
                    scope.as_str()
                ),
                (
                    "build1",
                    "https://hooks.example/x",
                    "push,delete",
                    "team-a/*:*"
                )
            );
            assert_eq!(headers, ["Authorization=Bearer x", "X-Team=a"]);
            assert!(matches!(status, WebhookStatus::Disabled));

            let defaults = parse(&[
                "create",
                "build1",
                "--uri",
                "https://hooks.example/x",
                "--actions",
                "push",
            ])
            .unwrap();
            let WebhookAction::Create {
                scope,
                headers,
                status,
                ..
            } = defaults
            else {
                panic!("not create");
            };
            assert_eq!(scope, "");
            assert!(headers.is_empty());
            assert!(matches!(status, WebhookStatus::Enabled));

            assert!(parse(&["create", "build1", "--uri", "https://hooks.example/x"]).is_err());
            assert!(parse(&["create", "build1", "--actions", "push"]).is_err());
            assert!(
                parse(&[
                    "create",
                    "build1",
                    "--uri",
                    "https://h/",
                    "--actions",
                    "push",
                    "--status",
                    "off",
                ])
                .is_err()
            );
        }

        #[test]
        fn the_other_subcommands_take_a_name() {
            assert!(matches!(parse(&["list"]), Ok(WebhookAction::List)));
            for sub in ["show", "delete", "ping", "events", "get-config"] {
                assert!(parse(&[sub, "build1"]).is_ok(), "{sub}");
                assert!(parse(&[sub]).is_err(), "{sub} without a name");
            }
        }

        #[test]
        fn an_update_sends_only_what_is_given() {
            let Ok(WebhookAction::Update {
                uri,
                actions,
                scope,
                headers,
                status,
                ..
            }) = parse(&["update", "build1", "--status", "disabled"])
            else {
                panic!("not update");
            };
            let update = webhook_update(uri, actions.as_deref(), scope, &headers, status).unwrap();
            assert_eq!(
                serde_json::to_value(&update).unwrap(),
                serde_json::json!({"status": "disabled"})
            );

            let update = webhook_update(
                Some("https://hooks.example/y".into()),
                Some("pull"),
                Some("".into()),
                &["X-A=1".into()],
                Some(WebhookStatus::Enabled),
            )
            .unwrap();
            assert_eq!(
                serde_json::to_value(&update).unwrap(),
                serde_json::json!({
                    "serviceUri": "https://hooks.example/y",
                    "actions": ["pull"],
                    "scope": "",
                    "customHeaders": {"X-A": "1"},
                    "status": "enabled",
                })
            );

            let error = webhook_update(None, None, None, &[], None).unwrap_err();
            assert!(error.starts_with("nothing to change"), "{error}");
            assert!(webhook_update(None, Some("nope"), None, &[], None).is_err());
            assert!(webhook_update(None, None, None, &["X-A".into()], None).is_err());
        }
    }
}
