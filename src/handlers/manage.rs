//! The management API's server: `/api/v1/...`, JSON in and out, for the admin user (Basic
//! credentials; the deployment's `ADMIN_PASSWORD` always works, so a disabled admin user can be
//! re-enabled). A token holding `metadata/write` on a repository may read and change that
//! repository's attributes. Generated passwords appear in a response once and are never stored in
//! clear. The endpoints, bodies and views are `crate::api`'s, shared with the command line.

use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::api::{
    AdminUpdate, AdminView, AnonymousPullUpdate, AttributesUpdate, CreatedPassword, Credentials,
    Endpoint, ManagementBody, NetworkRulesUpdate, NewPassword, PasswordView, ScopeMapUpdate,
    Secret, TokenUpdate, TokenView,
};
use crate::app::{App, json_response};
use crate::auth::network::NetworkRules;
use crate::auth::records::{
    self, AnonymousPull, Attributes, PasswordRecord, RegistrySettings, RepositoryAttributes,
    ScopeMapRecord, TokenRecord,
};
use crate::auth::secret::{self, Credentials as Authorization};
use crate::auth::service::{SignedIn, bad_request};
use crate::auth::{Permission, Principal};
use crate::content::Content;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::LockTarget;
use crate::platform::{ClientBody, Clock, Platform};
use crate::reference::Name;

const BODY_LIMIT: usize = 256 * 1024;

/// Who may use a management endpoint.
enum Manager {
    Admin,
    /// A token (of record generation `generation`): only the attributes of repositories it may
    /// `metadata/write`.
    Token {
        name: String,
        generation: String,
    },
}

fn password_views(passwords: &[PasswordRecord]) -> Vec<PasswordView> {
    passwords
        .iter()
        .map(|p| PasswordView {
            name: p.name,
            created: p.created,
            expiry: p.expiry,
        })
        .collect()
}

fn token_view(token: &TokenRecord) -> TokenView {
    TokenView {
        name: token.name.clone(),
        enabled: token.enabled,
        scope_map: token.scope_map.clone(),
        created: token.created,
        passwords: password_views(&token.passwords),
        credentials: None,
    }
}

impl<P: Platform> App<P> {
    pub async fn manage<B: ClientBody>(&self, request: &Request<B>) -> Result<Response<Vec<u8>>> {
        let settings = self.settings().await?;
        let manager = self.manager(request, &settings).await?;
        let path = request.uri().path();
        let Some(endpoint) = Endpoint::parse(path) else {
            // An invalid repository name is named as such, not a missing endpoint.
            if let Some(name) = path.strip_prefix("/api/v1/repositories/") {
                name.trim_end_matches('/').parse::<Name>()?;
            }
            return Err(Error::new(ErrorCode::NotFound).with_message("no such management endpoint"));
        };
        let method = request.method().clone();
        if let Endpoint::Repository(name) = &endpoint {
            if let Manager::Token {
                name: token,
                generation,
            } = &manager
            {
                let principal = Principal::Token(token.clone());
                let permissions = self
                    .permissions(&settings, &principal, generation)
                    .await?
                    .unwrap_or_default();
                if !permissions.on(name.as_str()).has(Permission::MetadataWrite) {
                    return Err(denied(&format!(
                        "token {token} may not change the attributes of {name} (it needs \
                         metadata/write)"
                    )));
                }
            }
            return self.repository_attributes(request, &method, name).await;
        }
        if let Manager::Token { name: token, .. } = &manager {
            return Err(denied(&format!(
                "token {token} may only manage repository attributes; this needs the admin user"
            )));
        }
        if matches!(
            endpoint,
            Endpoint::Webhooks
                | Endpoint::Webhook(_)
                | Endpoint::WebhookPing(_)
                | Endpoint::WebhookEvents(_)
                | Endpoint::WebhookConfig(_)
        ) {
            return self.manage_webhooks(request, &method, &endpoint).await;
        }
        if let Endpoint::Indexes | Endpoint::IndexRebuild = endpoint {
            return self
                .manage_indexes(&method, endpoint == Endpoint::IndexRebuild)
                .await;
        }
        match (method, &endpoint) {
            (Method::GET, Endpoint::Admin) => Ok(ok(self.admin_view(&settings))),
            (Method::PATCH, Endpoint::Admin) => {
                let update: AdminUpdate = read_json(request).await?;
                let mut settings = settings;
                settings.admin.enabled = update.enabled;
                self.records().put_settings(&settings).await?;
                Ok(ok(self.admin_view(&settings)))
            }
            (Method::POST, Endpoint::AdminPasswords) => {
                let new: NewPassword = read_json(request).await?;
                let mut settings = settings;
                let password = records::regenerate_password(
                    &mut settings.admin.passwords,
                    new.name,
                    self.clock.now(),
                    new.expiry,
                )
                .map_err(bad_request)?;
                self.records().put_settings(&settings).await?;
                Ok(created(CreatedPassword {
                    user: Some(self.config.auth.admin_user.clone()),
                    token: None,
                    name: new.name,
                    password,
                    expiry: new.expiry,
                }))
            }
            (Method::DELETE, Endpoint::AdminPassword(name)) => {
                let mut settings = settings;
                let before = settings.admin.passwords.len();
                settings.admin.passwords.retain(|p| p.name != *name);
                if settings.admin.passwords.len() == before {
                    return Err(not_found(&format!("admin password {name}")));
                }
                self.records().put_settings(&settings).await?;
                Ok(ok(self.admin_view(&settings)))
            }
            (Method::GET, Endpoint::AnonymousPull) => Ok(ok(json!(settings.anonymous_pull))),
            (Method::PUT, Endpoint::AnonymousPull) => {
                let update: AnonymousPullUpdate = read_json(request).await?;
                let anonymous = AnonymousPull {
                    enabled: update.enabled,
                    repositories: update.repositories,
                };
                anonymous.validate().map_err(bad_request)?;
                let mut settings = settings;
                settings.anonymous_pull = anonymous;
                self.records().put_settings(&settings).await?;
                Ok(ok(json!(settings.anonymous_pull)))
            }
            (Method::GET, Endpoint::NetworkRules) => Ok(ok(json!(settings.network_rules))),
            (Method::PUT, Endpoint::NetworkRules) => {
                let update: NetworkRulesUpdate = read_json(request).await?;
                let rules = NetworkRules::parse(update.default_action, &update.ip_rules)
                    .map_err(bad_request)?;
                let mut settings = settings;
                settings.network_rules = rules;
                self.records().put_settings(&settings).await?;
                Ok(ok(json!(settings.network_rules)))
            }
            (Method::GET, Endpoint::ScopeMaps) => Ok(ok(json!(self.records().scope_maps().await?))),
            (Method::GET, Endpoint::ScopeMap(name)) => {
                match self.records().scope_map(name).await? {
                    Some(map) => Ok(ok(json!(map))),
                    None => Err(not_found(&format!("scope map {name}"))),
                }
            }
            (Method::PUT, Endpoint::ScopeMap(name)) => {
                records::validate_object_name("scope map", name).map_err(bad_request)?;
                let update: ScopeMapUpdate = read_json(request).await?;
                if update.actions.is_empty() {
                    return Err(bad_request("a scope map needs at least one action"));
                }
                let existed = self.records().stored_scope_map(name).await?.is_some();
                let map = ScopeMapRecord {
                    name: (*name).to_owned(),
                    description: update.description,
                    actions: update.actions,
                    system: false,
                };
                self.records().put_scope_map(&map).await?;
                Ok(if existed {
                    ok(json!(map))
                } else {
                    created(json!(map))
                })
            }
            (Method::DELETE, Endpoint::ScopeMap(name)) => {
                if name.starts_with('_') {
                    return Err(bad_request(format!("{name} is a system scope map")));
                }
                if self.records().stored_scope_map(name).await?.is_none() {
                    return Err(not_found(&format!("scope map {name}")));
                }
                let users: Vec<String> = self
                    .records()
                    .tokens()
                    .await?
                    .into_iter()
                    .filter(|t| t.scope_map == *name)
                    .map(|t| t.name)
                    .collect();
                if !users.is_empty() {
                    return Err(conflict(format!(
                        "scope map {name} is used by token(s) {}",
                        users.join(", ")
                    )));
                }
                self.records().delete_scope_map(name).await?;
                Ok(no_content())
            }
            (Method::GET, Endpoint::Tokens) => Ok(ok(json!(
                self.records()
                    .tokens()
                    .await?
                    .iter()
                    .map(token_view)
                    .collect::<Vec<_>>()
            ))),
            (Method::GET, Endpoint::Token(name)) => {
                Ok(ok(token_view(&self.existing_token(name).await?)))
            }
            (Method::PUT, Endpoint::Token(name)) => {
                let update: TokenUpdate = read_json(request).await?;
                self.put_token(name, update).await
            }
            (Method::PATCH, Endpoint::Token(name)) => {
                let update: TokenUpdate = read_json(request).await?;
                let mut token = self.existing_token(name).await?;
                if let Some(map) = update.scope_map {
                    self.existing_scope_map(&map).await?;
                    token.scope_map = map;
                }
                if let Some(enabled) = update.enabled {
                    token.enabled = enabled;
                }
                self.records().put_token(&token).await?;
                Ok(ok(token_view(&token)))
            }
            (Method::DELETE, Endpoint::Token(name)) => {
                self.existing_token(name).await?;
                self.records().delete_token(name).await?;
                Ok(no_content())
            }
            (Method::POST, Endpoint::TokenPasswords(name)) => {
                let new: NewPassword = read_json(request).await?;
                let mut token = self.existing_token(name).await?;
                let password = records::regenerate_password(
                    &mut token.passwords,
                    new.name,
                    self.clock.now(),
                    new.expiry,
                )
                .map_err(bad_request)?;
                self.records().put_token(&token).await?;
                Ok(created(CreatedPassword {
                    user: None,
                    token: Some(token.name),
                    name: new.name,
                    password,
                    expiry: new.expiry,
                }))
            }
            (Method::DELETE, Endpoint::TokenPassword(name, password)) => {
                let mut token = self.existing_token(name).await?;
                let before = token.passwords.len();
                token.passwords.retain(|p| p.name != *password);
                if token.passwords.len() == before {
                    return Err(not_found(&format!("password {password} of token {name}")));
                }
                self.records().put_token(&token).await?;
                Ok(ok(token_view(&token)))
            }
            (Method::GET, Endpoint::Repositories) => {
                let all: serde_json::Map<String, Value> = self
                    .records()
                    .all_attributes()
                    .await?
                    .into_iter()
                    .map(|(name, attrs)| (name.to_string(), json!(attrs)))
                    .collect();
                Ok(ok(Value::Object(all)))
            }
            (_, Endpoint::Index) => Ok(ok(json!({ "endpoints": Endpoint::INDEX }))),
            (method, endpoint) => Err(Error::new(ErrorCode::Unsupported)
                .with_message(format!("{method} is not a method of {}", endpoint.path()))),
        }
    }

    /// The admin user (any admin password, or `ADMIN_PASSWORD` even while the admin user is
    /// disabled), or a token for the repository endpoints.
    async fn manager<B>(
        &self,
        request: &Request<B>,
        settings: &RegistrySettings,
    ) -> Result<Manager> {
        let challenge = || {
            Error::new(ErrorCode::Unauthorized)
                .with_challenge("Basic realm=\"registry-edge management\"")
        };
        let value = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(challenge)?;
        let Ok(Authorization::Basic { username, password }) =
            secret::parse_authorization(value.as_bytes())
        else {
            return Err(challenge().with_message("the management API takes Basic credentials"));
        };
        let auth = &self.config.auth;
        if username == auth.admin_user
            && let Some(hash) = &auth.admin_password_hash
            && secret::verify_password(&password, hash)
        {
            return Ok(Manager::Admin);
        }
        match self.sign_in(settings, &username, &password).await? {
            Some(SignedIn {
                principal: Principal::Admin(_),
                ..
            }) => Ok(Manager::Admin),
            Some(SignedIn {
                principal: Principal::Token(name),
                generation,
                ..
            }) => Ok(Manager::Token { name, generation }),
            _ => Err(challenge().with_message("invalid username or password")),
        }
    }

    fn admin_view(&self, settings: &RegistrySettings) -> AdminView {
        AdminView {
            user: self.config.auth.admin_user.clone(),
            enabled: settings.admin.enabled,
            deployment_password: self.config.auth.admin_password_hash.is_some(),
            passwords: password_views(&settings.admin.passwords),
        }
    }

    async fn existing_token(&self, name: &str) -> Result<TokenRecord> {
        if records::validate_object_name("token", name).is_err() {
            return Err(not_found(&format!("token {name}")));
        }
        self.records()
            .token(name)
            .await?
            .ok_or_else(|| not_found(&format!("token {name}")))
    }

    async fn existing_scope_map(&self, name: &str) -> Result<ScopeMapRecord> {
        self.records()
            .scope_map(name)
            .await?
            .ok_or_else(|| bad_request(format!("there is no scope map {name}")))
    }

    async fn put_token(&self, name: &str, update: TokenUpdate) -> Result<Response<Vec<u8>>> {
        records::validate_object_name("token", name).map_err(bad_request)?;
        if name == self.config.auth.admin_user {
            return Err(conflict(format!("{name} is the admin user's name")));
        }
        if let Some(mut token) = self.records().token(name).await? {
            if let Some(map) = update.scope_map {
                self.existing_scope_map(&map).await?;
                token.scope_map = map;
            }
            if let Some(enabled) = update.enabled {
                token.enabled = enabled;
            }
            self.records().put_token(&token).await?;
            return Ok(ok(token_view(&token)));
        }
        let map = update
            .scope_map
            .ok_or_else(|| bad_request("a new token needs a scopeMap"))?;
        self.existing_scope_map(&map).await?;
        let now = self.clock.now();
        let mut token = TokenRecord {
            name: name.to_owned(),
            generation: secret::random_id().map_err(Error::internal)?,
            enabled: update.enabled.unwrap_or(true),
            scope_map: map,
            passwords: Vec::new(),
            created: now,
        };
        let slot = records::PasswordSlot::Password1;
        let password = records::regenerate_password(&mut token.passwords, slot, now, None)
            .map_err(Error::internal)?;
        self.records().put_token(&token).await?;
        let mut view = token_view(&token);
        view.credentials = Some(Credentials {
            username: token.name.clone(),
            passwords: vec![Secret {
                name: slot,
                password,
            }],
        });
        Ok(created(view))
    }

    async fn repository_attributes<B: ClientBody>(
        &self,
        request: &Request<B>,
        method: &Method,
        name: &Name,
    ) -> Result<Response<Vec<u8>>> {
        // The repository itself, or one of its tags or manifests.
        let query = crate::query::Query::parse(request.uri().query());
        let target = match (query.single("tag")?, query.single("manifest")?) {
            (None, None) => LockTarget::Repository,
            (Some(tag), None) => LockTarget::Tag(tag.parse()?),
            (None, Some(digest)) => {
                // An alias's attributes are its canonical digest's: one lock covers both ways to
                // the content (`lock_digests`).
                let digest: crate::reference::Digest = digest.parse()?;
                let canonical = match digest.algorithm() {
                    crate::reference::Algorithm::Sha256 => None,
                    _ => self.content().canonical(name, &digest).await?,
                };
                LockTarget::Manifest(canonical.unwrap_or(digest))
            }
            (Some(_), Some(_)) => {
                return Err(bad_request("name a tag or a manifest, not both"));
            }
        };
        let mut attrs = self.records().attributes(name).await?;
        let slot = |attrs: &RepositoryAttributes| -> Attributes {
            match &target {
                LockTarget::Repository => attrs.repository.clone(),
                LockTarget::Tag(tag) => attrs.tags.get(tag).cloned().unwrap_or_default(),
                LockTarget::Manifest(d) => attrs.manifests.get(d).cloned().unwrap_or_default(),
            }
        };
        let store = |attrs: &mut RepositoryAttributes, value: Attributes| match &target {
            LockTarget::Repository => attrs.repository = value,
            LockTarget::Tag(tag) => {
                attrs.tags.insert(tag.clone(), value);
                attrs.tags.retain(|_, a| !a.is_default());
            }
            LockTarget::Manifest(digest) => {
                attrs.manifests.insert(digest.clone(), value);
                attrs.manifests.retain(|_, a| !a.is_default());
            }
        };
        match *method {
            Method::GET => {}
            Method::PATCH => {
                let update: Attributes = read_json::<AttributesUpdate, _>(request).await?.into();
                let mut current = slot(&attrs);
                current.merge(&update);
                store(&mut attrs, current);
                self.records().put_attributes(name, &attrs).await?;
            }
            Method::DELETE => {
                store(&mut attrs, Attributes::default());
                self.records().put_attributes(name, &attrs).await?;
            }
            _ => {
                return Err(Error::new(ErrorCode::Unsupported)
                    .with_message("repository attributes take GET, PATCH or DELETE"));
            }
        }
        let mut view = json!({ "name": name.as_str() });
        let effective = slot(&attrs);
        for (field, value) in [
            ("readEnabled", effective.read_enabled),
            ("listEnabled", effective.list_enabled),
            ("writeEnabled", effective.write_enabled),
            ("deleteEnabled", effective.delete_enabled),
        ] {
            view[field] = json!(value.unwrap_or(true));
        }
        match &target {
            LockTarget::Repository => {
                view["tags"] = json!(attrs.tags);
                view["manifests"] = json!(attrs.manifests);
            }
            LockTarget::Tag(tag) => view["tag"] = json!(tag),
            LockTarget::Manifest(digest) => view["manifest"] = json!(digest),
        }
        Ok(ok(view))
    }
}

/// The JSON body of a management request. It must say `Content-Type: application/json`: a form
/// another site makes a browser send (with Basic credentials the browser remembers) cannot, so
/// no cross-site request changes the registry's settings.
pub(crate) async fn read_json<T: ManagementBody, B: ClientBody>(request: &Request<B>) -> Result<T> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Error::new(ErrorCode::UnsupportedMediaType).with_message(
            "management requests carry JSON: Content-Type must be application/json",
        ));
    }
    let body = request
        .body()
        .read(BODY_LIMIT)
        .await
        .map_err(|e| bad_request(format!("request body: {e}")))?
        .ok_or_else(|| bad_request("request body is too large"))?;
    serde_json::from_slice(&body).map_err(|e| {
        let e = e.to_string();
        let hint =
            spelling_hint(&e).map_or_else(String::new, |f| format!(" (did you mean `{f}`?)"));
        bad_request(format!("invalid JSON body: {e}{hint}"))
    })
}

/// For serde's "unknown field `x`, expected `a` or `b`": the expected field spelt like `x` but
/// for case, `_` and `-` (`default_action` -> `defaultAction`).
fn spelling_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let fold = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|candidate| fold(candidate) == fold(unknown))
        .map(str::to_owned)
}

fn ok(value: impl serde::Serialize) -> Response<Vec<u8>> {
    json_response(StatusCode::OK, serde_json::to_vec(&value).unwrap())
}

fn created(value: impl serde::Serialize) -> Response<Vec<u8>> {
    let mut response = json_response(StatusCode::CREATED, serde_json::to_vec(&value).unwrap());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn no_content() -> Response<Vec<u8>> {
    let mut response = Response::new(Vec::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn not_found(what: &str) -> Error {
    Error::new(ErrorCode::NotFound).with_message(format!("{what} does not exist"))
}

fn conflict(message: String) -> Error {
    Error::new(ErrorCode::Conflict).with_message(message)
}

fn denied(message: &str) -> Error {
    Error::new(ErrorCode::Denied).with_message(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_fields_get_a_hint() {
        let e = serde_json::from_str::<NetworkRulesUpdate>(r#"{"default_action":"Deny"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(spelling_hint(&e).as_deref(), Some("defaultAction"));
        let e = serde_json::from_str::<AttributesUpdate>(r#"{"read_enabled":false}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(spelling_hint(&e).as_deref(), Some("readEnabled"));
        assert_eq!(spelling_hint("unknown field `x`, expected `y`"), None);
    }
}
