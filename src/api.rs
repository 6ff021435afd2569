//! The management API's wire format, defined once: its endpoints (`Endpoint`, parsed by the
//! server and written by the command line from the same table), the bodies it reads, and the
//! views it answers with. `handlers::manage` serves them; `src/bin/registry-edge.rs` sends them.
//!
//! ```text
//! GET    /api/v1                               the endpoints
//! GET    /api/v1/admin                         AdminView        PATCH AdminUpdate
//! POST   /api/v1/admin/passwords               NewPassword -> CreatedPassword
//! DELETE /api/v1/admin/passwords/<name>
//! GET    /api/v1/anonymous-pull                PUT AnonymousPullUpdate
//! GET    /api/v1/network-rules                 PUT NetworkRulesUpdate
//! GET    /api/v1/scope-maps                    system and stored scope maps
//! GET    /api/v1/scope-maps/<name>             PUT ScopeMapUpdate, DELETE
//! GET    /api/v1/tokens                        [TokenView]
//! GET    /api/v1/tokens/<name>                 TokenView; PUT TokenUpdate (creates, with
//!                                              password1, or updates); PATCH TokenUpdate; DELETE
//! POST   /api/v1/tokens/<name>/passwords       NewPassword -> CreatedPassword
//! DELETE /api/v1/tokens/<name>/passwords/<password name>
//! GET    /api/v1/repositories                  repositories that have attributes
//! GET    /api/v1/repositories/<name>[?tag=|?manifest=]   PATCH AttributesUpdate, DELETE
//! GET    /api/v1/webhooks                      [WebhookView]
//! GET    /api/v1/webhooks/<name>               WebhookView; PUT WebhookCreate -> CreatedWebhook
//!                                              (its signing secret, once); PATCH WebhookUpdate;
//!                                              DELETE
//! POST   /api/v1/webhooks/<name>/ping          -> {"id"}: ACR's ping event, queued
//! GET    /api/v1/webhooks/<name>/events        [DeliveryEntry], newest first
//! GET    /api/v1/webhooks/<name>/config        WebhookConfig (the URI, the header names)
//! ```
//!
//! Every body the server reads refuses an unknown field (`ManagementBody`): a misspelt setting is
//! a 400 naming it, never a 200 that changes nothing.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::ScopeEntry;
use crate::auth::network::DefaultAction;
use crate::auth::records::PasswordSlot;
use crate::reference::Name;

/// The path every endpoint lives under.
pub const PREFIX: &str = "/api/v1";

/// One endpoint of the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Index,
    Admin,
    AdminPasswords,
    AdminPassword(PasswordSlot),
    AnonymousPull,
    NetworkRules,
    ScopeMaps,
    ScopeMap(String),
    Tokens,
    Token(String),
    TokenPasswords(String),
    TokenPassword(String, PasswordSlot),
    Repositories,
    Repository(Name),
    Webhooks,
    Webhook(String),
    WebhookPing(String),
    WebhookEvents(String),
    WebhookConfig(String),
    /// The catalog and referrers indexes: their state (`GET`).
    Indexes,
    /// Starts a rebuild of the indexes (`POST`).
    IndexRebuild,
}

impl Endpoint {
    /// The endpoint a request path names (with or without `/api/v1`), or `None`. A repository
    /// name is validated here.
    pub fn parse(path: &str) -> Option<Endpoint> {
        let rest = path.strip_prefix(PREFIX).unwrap_or(path);
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let own = |s: &str| s.to_owned();
        Some(match segments.as_slice() {
            [] => Endpoint::Index,
            ["admin"] => Endpoint::Admin,
            ["admin", "passwords"] => Endpoint::AdminPasswords,
            ["admin", "passwords", slot] => Endpoint::AdminPassword(slot.parse().ok()?),
            ["anonymous-pull"] => Endpoint::AnonymousPull,
            ["network-rules"] => Endpoint::NetworkRules,
            ["scope-maps"] => Endpoint::ScopeMaps,
            ["scope-maps", name] => Endpoint::ScopeMap(own(name)),
            ["tokens"] => Endpoint::Tokens,
            ["tokens", name] => Endpoint::Token(own(name)),
            ["tokens", name, "passwords"] => Endpoint::TokenPasswords(own(name)),
            ["tokens", name, "passwords", password] => {
                Endpoint::TokenPassword(own(name), password.parse().ok()?)
            }
            ["webhooks"] => Endpoint::Webhooks,
            ["webhooks", name] => Endpoint::Webhook(own(name)),
            ["webhooks", name, "ping"] => Endpoint::WebhookPing(own(name)),
            ["webhooks", name, "events"] => Endpoint::WebhookEvents(own(name)),
            ["webhooks", name, "config"] => Endpoint::WebhookConfig(own(name)),
            ["indexes"] => Endpoint::Indexes,
            ["indexes", "rebuild"] => Endpoint::IndexRebuild,
            ["repositories"] => Endpoint::Repositories,
            ["repositories", name @ ..] => Endpoint::Repository(name.join("/").parse().ok()?),
            _ => return None,
        })
    }

    /// The endpoint's path, under `/api/v1`.
    pub fn path(&self) -> String {
        let rest = match self {
            Endpoint::Index => String::new(),
            Endpoint::Admin => "/admin".into(),
            Endpoint::AdminPasswords => "/admin/passwords".into(),
            Endpoint::AdminPassword(name) => format!("/admin/passwords/{name}"),
            Endpoint::AnonymousPull => "/anonymous-pull".into(),
            Endpoint::NetworkRules => "/network-rules".into(),
            Endpoint::ScopeMaps => "/scope-maps".into(),
            Endpoint::ScopeMap(name) => format!("/scope-maps/{name}"),
            Endpoint::Tokens => "/tokens".into(),
            Endpoint::Token(name) => format!("/tokens/{name}"),
            Endpoint::TokenPasswords(name) => format!("/tokens/{name}/passwords"),
            Endpoint::TokenPassword(name, password) => {
                format!("/tokens/{name}/passwords/{password}")
            }
            Endpoint::Repositories => "/repositories".into(),
            Endpoint::Repository(name) => format!("/repositories/{name}"),
            Endpoint::Webhooks => "/webhooks".into(),
            Endpoint::Webhook(name) => format!("/webhooks/{name}"),
            Endpoint::WebhookPing(name) => format!("/webhooks/{name}/ping"),
            Endpoint::WebhookEvents(name) => format!("/webhooks/{name}/events"),
            Endpoint::WebhookConfig(name) => format!("/webhooks/{name}/config"),
            Endpoint::Indexes => "/indexes".into(),
            Endpoint::IndexRebuild => "/indexes/rebuild".into(),
        };
        format!("{PREFIX}{rest}")
    }

    /// The top-level endpoints, as `GET /api/v1` lists them.
    pub const INDEX: [&'static str; 8] = [
        "admin",
        "anonymous-pull",
        "network-rules",
        "scope-maps",
        "tokens",
        "repositories",
        "webhooks",
        "indexes",
    ];
}

// --- bodies the server reads ---

/// A body the management API reads: only these, each `deny_unknown_fields`.
pub trait ManagementBody: DeserializeOwned + Serialize {}

/// (Re)generates password1 or password2, with an optional expiry (Unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub name: PasswordSlot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
}

/// A token's scope map and state; on `PUT` of a new token the scope map is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_map: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeMapUpdate {
    #[serde(default)]
    pub description: String,
    pub actions: Vec<ScopeEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdate {
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnonymousPullUpdate {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub repositories: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkRulesUpdate {
    #[serde(default)]
    pub default_action: DefaultAction,
    #[serde(default)]
    pub ip_rules: Vec<String>,
}

/// The four locks of a repository, tag or manifest; an absent field is left as it is. The stored
/// `auth::records::Attributes` has the same fields but is flattened into its record, where serde
/// cannot refuse unknown fields: so the body the API reads is its own type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributesUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_enabled: Option<bool>,
}

impl From<AttributesUpdate> for crate::auth::records::Attributes {
    fn from(u: AttributesUpdate) -> Self {
        crate::auth::records::Attributes {
            read_enabled: u.read_enabled,
            list_enabled: u.list_enabled,
            write_enabled: u.write_enabled,
            delete_enabled: u.delete_enabled,
        }
    }
}

/// A new webhook, as `az acr webhook create` takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookCreate {
    pub service_uri: String,
    pub actions: Vec<crate::webhooks::Action>,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub custom_headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub status: crate::webhooks::Status,
}

/// A webhook's changes; an absent field is left as it is (`customHeaders` replaces them all).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<crate::webhooks::Action>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::webhooks::Status>,
}

/// A body of nothing (`{}`): what `ping` takes, so that it is JSON as every management write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

macro_rules! management_bodies {
    ($($t:ty),* $(,)?) => {
        $(impl ManagementBody for $t {})*

        /// Every management body, for the test that each refuses unknown fields.
        #[cfg(test)]
        fn unknown_field_errors() -> Vec<(&'static str, Option<String>)> {
            vec![$((
                stringify!($t),
                serde_json::from_str::<$t>(r#"{"zzUnknownField": 1}"#).err().map(|e| e.to_string()),
            )),*]
        }
    };
}

management_bodies!(
    NewPassword,
    TokenUpdate,
    ScopeMapUpdate,
    AdminUpdate,
    AnonymousPullUpdate,
    NetworkRulesUpdate,
    AttributesUpdate,
    WebhookCreate,
    WebhookUpdate,
    Empty,
);

// --- views the server answers with ---

/// A webhook, without its secrets: the service URI down to its scheme and host, the custom
/// headers by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub name: String,
    pub service_uri: String,
    pub status: crate::webhooks::Status,
    pub actions: Vec<crate::webhooks::Action>,
    pub scope: String,
    pub custom_headers: Vec<String>,
    pub created: u64,
}

/// A created webhook: the view, and its signing secret (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    pub secret: String,
}

/// `get-config`: where deliveries go, and the custom headers by name (never their values).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    pub service_uri: String,
    pub custom_headers: Vec<String>,
}

/// A password slot, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordView {
    pub name: PasswordSlot,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub name: String,
    pub enabled: bool,
    pub scope_map: String,
    pub created: u64,
    pub passwords: Vec<PasswordView>,
    /// On creation only: the token's user name and its first password, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub passwords: Vec<Secret>,
}

/// A generated password, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secret {
    pub name: PasswordSlot,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminView {
    pub user: String,
    pub enabled: bool,
    /// Whether the deployment's `ADMIN_PASSWORD` is set.
    pub deployment_password: bool,
    pub passwords: Vec<PasswordView>,
}

/// The answer to a password (re)generation: the only time the password is seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedPassword {
    /// The admin user's name, or the token's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub name: PasswordSlot,
    pub password: String,
    pub expiry: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_management_body_refuses_unknown_fields() {
        for (name, error) in unknown_field_errors() {
            let error = error.unwrap_or_default();
            assert!(
                error.starts_with("unknown field `zzUnknownField`"),
                "{name} accepts unknown fields: {error:?}"
            );
        }
    }

    #[test]
    fn endpoints_parse_what_they_write() {
        let all = [
            Endpoint::Index,
            Endpoint::Admin,
            Endpoint::AdminPasswords,
            Endpoint::AdminPassword(PasswordSlot::Password1),
            Endpoint::AnonymousPull,
            Endpoint::NetworkRules,
            Endpoint::ScopeMaps,
            Endpoint::ScopeMap("team-pull".into()),
            Endpoint::Tokens,
            Endpoint::Token("ci-pull".into()),
            Endpoint::TokenPasswords("ci-pull".into()),
            Endpoint::TokenPassword("ci-pull".into(), PasswordSlot::Password2),
            Endpoint::Repositories,
            Endpoint::Repository("team/app/service".parse().unwrap()),
        ];
        for endpoint in all {
            assert_eq!(Endpoint::parse(&endpoint.path()), Some(endpoint.clone()));
        }
        assert_eq!(Endpoint::parse("/api/v1/admin/"), Some(Endpoint::Admin));
        for unknown in [
            "/api/v1/nothing",
            "/api/v1/repositories/Bad",
            "/api/v1/admin/x",
        ] {
            assert_eq!(Endpoint::parse(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn bodies_write_what_they_read() {
        let update = AttributesUpdate {
            read_enabled: Some(false),
            ..AttributesUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            serde_json::json!({"readEnabled": false})
        );
        let rules: NetworkRulesUpdate = serde_json::from_value(
            serde_json::to_value(NetworkRulesUpdate {
                default_action: DefaultAction::Deny,
                ip_rules: vec!["10.0.0.0/8".into()],
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(rules.default_action, DefaultAction::Deny);
    }
}
