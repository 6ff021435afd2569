//! The auth service: who a request's caller is and whether it may do what its operation needs,
//! for every `/v2/` request, before any handler runs: the network rules, then the caller (a
//! bearer token, Basic credentials, or nobody), then what the operation needs, then the
//! repository's locks. A refused request never reaches storage or the origin. Also sign-in for
//! the token service and the management API. The model it decides with is pure (`auth`,
//! `auth::jwt`, `auth::records`); the records come through `crate::records`.

use http::{HeaderMap, Request, header};

use crate::app::App;
use crate::auth::jwt::{LEEWAY_SECONDS, VerifiedAccess};
use crate::auth::records::{self, Lock, RegistrySettings, RepositoryAttributes};
use crate::auth::secret::{self, Credentials};
use crate::auth::{Authority, Caller, Need, Permission, Permissions, Principal};
use crate::cache::EdgeCache;
use crate::content::Content;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::{LockTarget, Operation, StartUpload};
use crate::platform::{ClientAddress, Clock, Platform};
use crate::records::Records;
use crate::reference::{Digest, Name};
use sha2::{Digest as _, Sha256};

/// What a mount's caller may do with its source.
enum MountSource {
    Readable,
    /// The principal may read it, the token it sent does not say so.
    NotInToken,
    Unreadable,
}

/// A password that matched: the principal, which password slot, and its fingerprint (for refresh
/// tokens).
pub(crate) struct SignedIn {
    pub principal: Principal,
    /// The principal record's generation, carried in the tokens issued for this sign-in.
    pub generation: String,
    pub password: String,
    pub fingerprint: String,
    /// When the password stops working, if it does.
    pub expiry: Option<u64>,
}

/// The slot name of the deployment's `ADMIN_PASSWORD`.
const SECRET_SLOT: &str = "secret";

impl<P: Platform> App<P> {
    /// The registry's records (tokens, scope maps, settings, attributes), through the cache.
    pub(crate) fn records(&self) -> Records<'_, P::Kv, P::Cache> {
        Records {
            kv: &self.kv,
            cache: &self.cache,
            ttl: self.config.auth.cache_seconds,
        }
    }

    pub(crate) async fn settings(&self) -> Result<RegistrySettings> {
        self.records().settings().await
    }

    // --- principals ---

    /// Checks a user name and password: the admin user (when enabled), else a token (when
    /// enabled). `None` for any failure, whatever the reason.
    pub(crate) async fn sign_in(
        &self,
        settings: &RegistrySettings,
        username: &str,
        password: &str,
    ) -> Result<Option<SignedIn>> {
        let now = self.clock.now();
        let auth = &self.config.auth;
        if username == auth.admin_user {
            if !settings.admin.enabled {
                return Ok(None);
            }
            if let Some(hash) = &auth.admin_password_hash
                && secret::verify_password(password, hash)
            {
                return Ok(Some(SignedIn {
                    principal: Principal::Admin(username.to_owned()),
                    generation: String::new(),
                    password: SECRET_SLOT.into(),
                    fingerprint: secret::fingerprint(hash),
                    expiry: None,
                }));
            }
            return Ok(
                records::matching_password(&settings.admin.passwords, password, now).map(|p| {
                    SignedIn {
                        principal: Principal::Admin(username.to_owned()),
                        generation: String::new(),
                        password: p.name.to_string(),
                        fingerprint: secret::fingerprint(&p.hash),
                        expiry: p.expiry,
                    }
                }),
            );
        }
        if records::validate_object_name("token", username).is_err() {
            return Ok(None);
        }
        let Some(token) = self.records().token(username).await? else {
            return Ok(None);
        };
        if !token.enabled {
            return Ok(None);
        }
        Ok(
            records::matching_password(&token.passwords, password, now).map(|p| SignedIn {
                principal: Principal::Token(token.name.clone()),
                generation: token.generation.clone(),
                password: p.name.to_string(),
                fingerprint: secret::fingerprint(&p.hash),
                expiry: p.expiry,
            }),
        )
    }

    /// What `principal` (of record generation `generation`) holds now: its scope map
    /// (everything, for the admin), plus what anonymous callers may; a token whose scope map is
    /// gone holds only the latter. `None` when it may no longer act: the admin user disabled; the
    /// token gone, disabled, or another generation (deleted and created again since). One read
    /// of the token's record, for every signed-in request, bearer or Basic.
    pub(crate) async fn permissions(
        &self,
        settings: &RegistrySettings,
        principal: &Principal,
        generation: &str,
    ) -> Result<Option<Permissions>> {
        let mut permissions = settings.anonymous_pull.permissions();
        match principal {
            Principal::Anonymous => {}
            Principal::Admin(name) => {
                if !settings.admin.enabled || *name != self.config.auth.admin_user {
                    return Ok(None);
                }
                permissions.extend(Permissions::admin());
            }
            Principal::Token(name) => {
                let Some(token) = self
                    .records()
                    .token(name)
                    .await?
                    .filter(|token| token.enabled && token.generation == generation)
                else {
                    return Ok(None);
                };
                if let Some(map) = self.records().scope_map(&token.scope_map).await? {
                    permissions.extend(Permissions {
                        admin: false,
                        entries: map.actions,
                    });
                }
            }
        }
        Ok(Some(permissions))
    }

    /// Whether a refresh token's principal and password are still good.
    pub(crate) async fn still_signed_in(
        &self,
        settings: &RegistrySettings,
        principal: &Principal,
        generation: &str,
        password: &str,
        fingerprint: &str,
    ) -> Result<bool> {
        let now = self.clock.now();
        let live = |passwords: &[records::PasswordRecord]| {
            passwords.iter().any(|p| {
                p.name.as_str() == password
                    && secret::fingerprint(&p.hash) == fingerprint
                    && p.is_live(now)
            })
        };
        if *principal == Principal::Anonymous
            || self
                .permissions(settings, principal, generation)
                .await?
                .is_none()
        {
            return Ok(false);
        }
        Ok(match principal {
            Principal::Admin(_) if password == SECRET_SLOT => self
                .config
                .auth
                .admin_password_hash
                .as_deref()
                .is_some_and(|h| secret::fingerprint(h) == fingerprint),
            Principal::Admin(_) => live(&settings.admin.passwords),
            Principal::Token(name) => self
                .records()
                .token(name)
                .await?
                .is_some_and(|token| live(&token.passwords)),
            Principal::Anonymous => false,
        })
    }

    /// Who sent `headers`: a verified bearer token, checked Basic credentials, or anonymous when
    /// there is no `Authorization`. Bad credentials of any kind are a 401, never anonymous.
    pub(crate) async fn caller(
        &self,
        settings: &RegistrySettings,
        headers: &HeaderMap,
        base: &str,
        need: &Need,
    ) -> Result<Caller> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller {
                principal: Principal::Anonymous,
                authority: Authority::Permissions(
                    self.permissions(settings, &Principal::Anonymous, "")
                        .await?
                        .unwrap_or_default(),
                ),
            });
        };
        let credentials = secret::parse_authorization(value.as_bytes()).map_err(|why| {
            self.challenge(base, need, Some(("invalid_request", why)))
                .with_message(format!("authentication failed: {why}"))
        })?;
        match credentials {
            Credentials::Bearer(token) => {
                let invalid = |why: &str| {
                    self.challenge(base, need, Some(("invalid_token", why)))
                        .with_message(format!("authentication failed: {why}"))
                };
                let verified = self
                    .verify_bearer(&token)
                    .await
                    .map_err(|why| invalid(&why))?;
                // A principal disabled, deleted or created again since the token was issued is
                // refused now, not when the token expires (within AUTH_CACHE_SECONDS of the
                // change here).
                // The claims grant no more than the principal holds now: a narrowed scope map
                // ends what its tokens granted beyond it.
                let Some(current) = self
                    .permissions(settings, &verified.principal, &verified.generation)
                    .await?
                else {
                    return Err(invalid("the token's user is disabled or deleted"));
                };
                Ok(Caller {
                    principal: verified.principal,
                    authority: Authority::Claims {
                        access: verified.access,
                        current,
                    },
                })
            }
            Credentials::Basic { username, password } => {
                let Some(signed_in) = self.sign_in(settings, &username, &password).await? else {
                    return Err(self
                        .challenge(base, need, None)
                        .with_message("authentication failed: invalid username or password"));
                };
                let Some(permissions) = self
                    .permissions(settings, &signed_in.principal, &signed_in.generation)
                    .await?
                else {
                    return Err(self
                        .challenge(base, need, None)
                        .with_message("authentication failed: the principal may no longer act"));
                };
                Ok(Caller {
                    principal: signed_in.principal,
                    authority: Authority::Permissions(permissions),
                })
            }
        }
    }

    /// Verifies a bearer token. An ES256 check costs milliseconds of CPU in WASM, and clients send
    /// one token for many requests, so a token that passed is remembered (by its SHA-256, in the
    /// isolate's memory only) until it expires; its expiry is checked again on every use.
    async fn verify_bearer(&self, token: &str) -> Result<VerifiedAccess, String> {
        let auth = &self.config.auth;
        let now = self.clock.now();
        let key = crate::cache::key::verified_token(&hex::encode(Sha256::digest(token.as_bytes())));
        if let Some(bytes) = self.cache.get_local(&key).await
            && let Ok(verified) = serde_json::from_slice::<VerifiedAccess>(&bytes)
        {
            return if now <= verified.expires_at + LEEWAY_SECONDS {
                Ok(verified)
            } else {
                Err("token has expired".into())
            };
        }
        let verified = auth.keys.verify_access(token, &auth.service, now)?;
        let ttl = (verified.expires_at + LEEWAY_SECONDS).saturating_sub(now);
        if let Ok(bytes) = serde_json::to_vec(&verified) {
            self.cache.put_local(&key, &bytes, ttl.min(3600)).await;
        }
        Ok(verified)
    }

    /// A 401 whose challenge sends the client to the token service for what `need` names.
    pub(crate) fn challenge(&self, base: &str, need: &Need, error: Option<(&str, &str)>) -> Error {
        self.challenge_for(base, std::slice::from_ref(need), error)
    }

    /// A challenge naming every scope of `needs` (space-separated, as distribution names a
    /// mount's target and source).
    fn challenge_for(&self, base: &str, needs: &[Need], error: Option<(&str, &str)>) -> Error {
        let mut challenge = format!(
            "Bearer realm=\"{base}/oauth2/token\",service=\"{}\"",
            self.config.auth.service
        );
        let scopes: Vec<String> = needs.iter().filter_map(Need::scope).collect();
        if !scopes.is_empty() {
            challenge.push_str(&format!(",scope=\"{}\"", scopes.join(" ")));
        }
        if let Some((code, description)) = error {
            challenge.push_str(&format!(
                ",error=\"{code}\",error_description=\"{}\"",
                description.replace(['"', '\\'], "'")
            ));
        }
        let detail: Vec<serde_json::Value> = needs
            .iter()
            .flat_map(|need| match need.detail() {
                serde_json::Value::Array(items) => items,
                _ => Vec::new(),
            })
            .collect();
        let detail = if detail.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::Array(detail)
        };
        Error::new(ErrorCode::Unauthorized)
            .with_detail(detail)
            .with_challenge(challenge)
    }

    /// The network rules: a client address they do not allow is refused (403).
    pub(crate) fn check_network<B>(
        &self,
        request: &Request<B>,
        settings: &RegistrySettings,
    ) -> Result<()> {
        let address = request.extensions().get::<ClientAddress>().map(|a| a.0);
        if settings.network_rules.allows(address) {
            return Ok(());
        }
        Err(Error::new(ErrorCode::Denied).with_message(format!(
            "client address {} is not allowed by the registry's network rules",
            address.map_or_else(|| "(unknown)".to_owned(), |a| a.to_string())
        )))
    }

    /// The caller, what the operation needs, and the locks, for one `/v2/` request (after the
    /// network rules, `check_network`). Returns the caller, the repository's attributes (so handlers can filter lists to
    /// what it may see), and the operation as authorized: a mount whose source the caller may not
    /// read is a plain upload from here on.
    pub(crate) async fn authorize<B>(
        &self,
        request: &Request<B>,
        operation: Operation,
        settings: &RegistrySettings,
    ) -> Result<(Caller, RepositoryAttributes, Operation)> {
        let need = operation.need();
        let base = self.public_base(request);
        let caller = self
            .caller(settings, request.headers(), &base, &need)
            .await?;
        // `/v2/` answers 200 only to a signed-in caller: clients learn the realm (and `docker
        // login` checks credentials) from its 401.
        let signed_in = caller.principal != Principal::Anonymous;
        // The catalog, like `/v2/`, is for signed-in callers only (anonymous pull never lists).
        let allowed = match need {
            Need::Nothing => signed_in,
            Need::Catalog => signed_in && caller.authority.allows(&need),
            _ => caller.authority.allows(&need),
        };
        if !allowed {
            let error = if caller.bearer() {
                Some((
                    "insufficient_scope",
                    "the token does not grant the access this request needs",
                ))
            } else {
                None
            };
            let mut refusal = self.challenge(&base, &need, error);
            if signed_in {
                refusal = refusal.with_message(format!(
                    "{} {} may not {}",
                    caller.principal.kind(),
                    caller.principal.subject(),
                    describe(&need)
                ));
            }
            return Err(refusal);
        }
        let attributes = self.check_locks(&operation).await?;
        let operation = match operation {
            Operation::StartUpload {
                name,
                start: StartUpload::Mount { digest, from },
            } => match self.mount_source(&caller, &from, &digest).await? {
                MountSource::Readable => Operation::StartUpload {
                    name,
                    start: StartUpload::Mount { digest, from },
                },
                // As distribution answers: the challenge names the source's scope too, so the
                // client comes back with a token that holds both.
                MountSource::NotInToken => {
                    let source = Need::Repository {
                        name: from,
                        permission: Permission::ContentRead,
                    };
                    return Err(self
                        .challenge_for(
                            &base,
                            &[need, source],
                            Some((
                                "insufficient_scope",
                                "the token does not grant pull on the mount's source",
                            )),
                        )
                        .with_message(
                            "a mount needs pull on its source: ask for a token with both scopes",
                        ));
                }
                // The spec's answer to a mount that cannot be made: a plain upload.
                MountSource::Unreadable => Operation::StartUpload {
                    name,
                    start: StartUpload::Plain,
                },
            },
            other => other,
        };
        Ok((caller, attributes, operation))
    }

    /// Refuses what the repository's, tag's or manifest's locks forbid; returns the attributes.
    async fn check_locks(&self, operation: &Operation) -> Result<RepositoryAttributes> {
        let (Some(name), Some((lock, targets))) = (operation.name(), operation.lock()) else {
            return Ok(RepositoryAttributes::default());
        };
        let mut attributes = self.records().attributes(name).await?;
        if let Some(alias) = crate::upstream::default_alias(&self.config.upstreams, name) {
            // The default upstream's repository, unprefixed: its locks under the namespace hold.
            attributes = attributes.strictest(self.records().attributes(&alias).await?);
        }
        if attributes.is_default() {
            return Ok(attributes);
        }
        if !attributes.repository.enabled(lock) {
            return Err(locked(&format!("repository {name}"), lock));
        }
        for target in targets {
            match target {
                LockTarget::Repository => {}
                LockTarget::Tag(tag) if !attributes.tag(&tag, lock) => {
                    return Err(locked(&format!("tag {name}:{tag}"), lock));
                }
                LockTarget::Tag(_) => {}
                LockTarget::Manifest(digest) => {
                    for digest in self.lock_digests(name, &digest).await? {
                        if !attributes.manifest(&digest, lock) {
                            return Err(locked(&format!("manifest {name}@{digest}"), lock));
                        }
                    }
                }
            }
        }
        Ok(attributes)
    }

    /// The digests a manifest lock on `digest` in `name` is looked up under: `digest`, and for
    /// a digest that is not sha256 (distribution's canonical algorithm) the canonical digest the
    /// repository's link names, so that an alias never reaches what a lock closes. A lock set on
    /// an alias is stored under its canonical digest (the management API), so it covers both.
    pub(crate) async fn lock_digests(&self, name: &Name, digest: &Digest) -> Result<Vec<Digest>> {
        let mut digests = vec![digest.clone()];
        if digest.algorithm() != crate::reference::Algorithm::Sha256
            && let Some(canonical) = self.content().canonical(name, digest).await?
        {
            digests.push(canonical);
        }
        Ok(digests)
    }

    /// Whether `caller` may mount `digest` from `source`: pull there, and neither the source nor
    /// the digest there read-locked (a manifest's lock covers its bytes as a blob). A token that
    /// lacks pull on the source while its principal holds it is `NotInToken`.
    async fn mount_source(
        &self,
        caller: &Caller,
        source: &Name,
        digest: &Digest,
    ) -> Result<MountSource> {
        let attributes = self.records().attributes(source).await?;
        let mut unlocked = true;
        if !attributes.is_default() {
            for digest in self.lock_digests(source, digest).await? {
                unlocked &= attributes.manifest(&digest, Lock::Read);
            }
        }
        if !unlocked {
            return Ok(MountSource::Unreadable);
        }
        let need = Need::Repository {
            name: source.clone(),
            permission: Permission::ContentRead,
        };
        if caller.authority.allows(&need) {
            return Ok(MountSource::Readable);
        }
        Ok(match &caller.authority {
            Authority::Claims { current, .. }
                if current.on(source.as_str()).has(Permission::ContentRead) =>
            {
                MountSource::NotInToken
            }
            _ => MountSource::Unreadable,
        })
    }

    /// The repositories `caller` may list in the catalog: all for the admin, else those it may
    /// `metadata/read`; never a list-locked one (except for the admin).
    pub(crate) async fn catalog_filter(
        &self,
        caller: &Caller,
    ) -> Result<Option<(Permissions, Vec<String>)>> {
        if matches!(caller.principal, Principal::Admin(_)) {
            return Ok(None);
        }
        // A bearer token names the catalog, not the repositories: what the principal holds now.
        let permissions = match &caller.authority {
            Authority::Permissions(p) | Authority::Claims { current: p, .. } => p.clone(),
        };
        let locked = self
            .records()
            .all_attributes()
            .await?
            .into_iter()
            .filter(|(_, attrs)| !attrs.repository.enabled(Lock::List))
            .map(|(name, _)| name.to_string())
            .collect();
        Ok(Some((permissions, locked)))
    }
}

fn describe(need: &Need) -> String {
    match need {
        Need::Nothing => "use the registry".into(),
        Need::Catalog => "list the catalog".into(),
        Need::Repository { name, permission } => format!("{} {name}", permission.as_str()),
    }
}

/// The 403 for something a lock refuses.
pub(crate) fn locked(what: &str, lock: Lock) -> Error {
    Error::new(ErrorCode::Denied)
        .with_message(format!("{what} is locked: {} is false", lock.attribute()))
}

pub(crate) fn bad_request(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::BadRequest).with_message(message)
}
