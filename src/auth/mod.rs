//! Who may do what, as ACR models it: principals (the admin user, tokens, anonymous clients),
//! scope maps of `repositories/<pattern>/<action>` entries, and what each route of the API needs.
//! Everything here is pure: records come from `records` (the KV namespace), credentials from
//! `secret` and `jwt`; the App puts them together in `handlers::access`.
//!
//! Two vocabularies meet here. Scope maps speak ACR's five actions (`content/read`, ...); Docker
//! token scopes speak `pull`, `push`, `delete` and `*`. A token's `access` claim carries the Docker
//! actions the client asked for and holds, plus `metadata_read`/`metadata_write` when the principal
//! holds those (no client asks for them by name, yet listing tags needs `metadata/read`).

pub mod jwt;
pub mod network;
pub mod records;
pub mod secret;
pub(crate) mod service;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode};
use crate::reference::Name;

/// One of ACR's repository actions, as a bit of a `Permissions` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    ContentRead,
    ContentWrite,
    ContentDelete,
    MetadataRead,
    MetadataWrite,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::ContentRead,
        Permission::ContentWrite,
        Permission::ContentDelete,
        Permission::MetadataRead,
        Permission::MetadataWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ContentRead => "content/read",
            Permission::ContentWrite => "content/write",
            Permission::ContentDelete => "content/delete",
            Permission::MetadataRead => "metadata/read",
            Permission::MetadataWrite => "metadata/write",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The name of this permission in a token's `access` claim.
    pub fn token_action(self) -> &'static str {
        match self {
            Permission::ContentRead => "pull",
            Permission::ContentWrite => "push",
            Permission::ContentDelete => "delete",
            Permission::MetadataRead => "metadata_read",
            Permission::MetadataWrite => "metadata_write",
        }
    }

    /// What a Docker scope action asks for: `pull` also brings `metadata/read` and `push` also
    /// `metadata/write` when the principal holds them.
    fn for_scope_action(action: &str) -> &'static [Permission] {
        match action {
            "pull" => &[Permission::ContentRead, Permission::MetadataRead],
            "push" => &[Permission::ContentWrite, Permission::MetadataWrite],
            "delete" => &[Permission::ContentDelete],
            "*" => &Permission::ALL,
            _ => &[],
        }
    }
}

impl std::str::FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Permission, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action {s:?} (one of content/read, content/write, content/delete, \
                     metadata/read, metadata/write)"
                )
            })
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PermissionSet(u8);

impl PermissionSet {
    pub const ALL: PermissionSet = PermissionSet(0b1_1111);

    pub fn of(permissions: &[Permission]) -> PermissionSet {
        PermissionSet(permissions.iter().fold(0, |bits, p| bits | p.bit()))
    }

    pub fn has(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which repositories a scope-map entry covers: one repository, every repository under a prefix
/// (`team-a/*`, at any depth), or all of them (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    All,
    Prefix(String),
    Exact(String),
}

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Prefix(prefix) => name
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
            Pattern::Exact(exact) => exact == name,
        }
    }
}

impl std::str::FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Pattern, String> {
        let invalid = || {
            format!(
                "{s:?} is not a repository pattern: a repository name, a name followed by /* \
                 (every repository under it), or * (every repository)"
            )
        };
        if s == "*" {
            return Ok(Pattern::All);
        }
        match s.strip_suffix("/*") {
            Some(prefix) => {
                let name: Name = prefix.parse().map_err(|_| invalid())?;
                Ok(Pattern::Prefix(name.as_str().to_owned()))
            }
            None => {
                let name: Name = s.parse().map_err(|_| invalid())?;
                Ok(Pattern::Exact(name.as_str().to_owned()))
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::All => f.write_str("*"),
            Pattern::Prefix(prefix) => write!(f, "{prefix}/*"),
            Pattern::Exact(name) => f.write_str(name),
        }
    }
}

/// One entry of a scope map: `repositories/<pattern>/<action>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeEntry {
    pub pattern: Pattern,
    pub permission: Permission,
}

impl std::str::FromStr for ScopeEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<ScopeEntry, String> {
        let rest = s.strip_prefix("repositories/").ok_or_else(|| {
            format!(
                "{s:?} is not a scope-map entry: repositories/<repository or prefix/*>/<action>"
            )
        })?;
        // The action is the last two segments: content/read, metadata/write, ...
        let (before, verb) = rest
            .rsplit_once('/')
            .ok_or_else(|| format!("{s:?}: no action"))?;
        let (pattern, noun) = before
            .rsplit_once('/')
            .ok_or_else(|| format!("{s:?}: no action"))?;
        Ok(ScopeEntry {
            pattern: pattern.parse()?,
            permission: format!("{noun}/{verb}").parse()?,
        })
    }
}

impl fmt::Display for ScopeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "repositories/{}/{}",
            self.pattern,
            self.permission.as_str()
        )
    }
}

impl Serialize for ScopeEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything a principal may do, repository by repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// The admin user: every action on every repository, and the whole catalog.
    pub admin: bool,
    pub entries: Vec<ScopeEntry>,
}

impl Permissions {
    pub fn admin() -> Permissions {
        Permissions {
            admin: true,
            entries: Vec::new(),
        }
    }

    pub fn on(&self, name: &str) -> PermissionSet {
        if self.admin {
            return PermissionSet::ALL;
        }
        self.entries
            .iter()
            .filter(|e| e.pattern.matches(name))
            .fold(PermissionSet::default(), |set, e| {
                set.union(PermissionSet::of(&[e.permission]))
            })
    }

    pub fn extend(&mut self, other: Permissions) {
        self.admin |= other.admin;
        self.entries.extend(other.entries);
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Principal {
    Anonymous,
    Admin(String),
    Token(String),
}

impl Principal {
    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::Admin(name) | Principal::Token(name) => name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::Admin(_) => "admin",
            Principal::Token(_) => "token",
        }
    }

    /// How events and webhooks name who did something: `anonymous`, `admin:<user>`,
    /// `token:<name>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            other => format!("{}:{}", other.kind(), other.subject()),
        }
    }

    pub fn from_claims(kind: &str, subject: &str) -> Option<Principal> {
        match kind {
            "anonymous" => Some(Principal::Anonymous),
            "admin" => Some(Principal::Admin(subject.to_owned())),
            "token" => Some(Principal::Token(subject.to_owned())),
            _ => None,
        }
    }
}

/// The resource types of Docker's token scopes that this registry grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Repository,
    Registry,
}

/// One entry of a token's `access` claim (Docker's format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub name: String,
    pub actions: Vec<String>,
}

/// A resource scope as clients ask for it: `repository:<name>:<actions>` or
/// `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repository { name: Name, actions: Vec<String> },
    Catalog,
}

impl Scope {
    /// Parses one scope. A resource class (`repository(plugin)`) is accepted and ignored; scopes of
    /// other types are `Ok(None)` (nothing to grant), malformed ones an error.
    pub fn parse(s: &str) -> Result<Option<Scope>, Error> {
        let invalid = |why: &str| {
            Error::new(ErrorCode::BadRequest).with_message(format!("invalid scope {s:?}: {why}"))
        };
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected type:name:actions"))?;
        let (name, actions) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected type:name:actions"))?;
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match kind {
            "repository" => {
                let name: Name = name
                    .parse()
                    .map_err(|_| invalid("invalid repository name"))?;
                let actions = actions
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(Some(Scope::Repository { name, actions }))
            }
            "registry" if name == "catalog" => Ok(Some(Scope::Catalog)),
            _ => Ok(None),
        }
    }

    /// Parses every scope of a token request: repeated parameters, each possibly a
    /// space-separated list (OAuth2's form).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, Error> {
        let mut scopes = Vec::new();
        for value in values {
            for s in value.split(' ').filter(|s| !s.is_empty()) {
                scopes.extend(Scope::parse(s)?);
            }
        }
        Ok(scopes)
    }
}

/// The `access` claim for `scopes`: what was asked intersected with what `permissions` allow.
/// Scopes that grant nothing are left out. The catalog goes to any signed-in principal (it is
/// filtered to what they may see when it is read).
pub fn grant(
    scopes: &[Scope],
    permissions: &Permissions,
    principal: &Principal,
) -> Vec<AccessEntry> {
    let mut access: Vec<AccessEntry> = Vec::new();
    for scope in scopes {
        let entry = match scope {
            Scope::Catalog if permissions.admin || *principal != Principal::Anonymous => {
                AccessEntry {
                    kind: ResourceType::Registry,
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }
            }
            Scope::Catalog => continue,
            Scope::Repository { name, actions } => {
                let held = permissions.on(name.as_str());
                let mut granted: Vec<String> = Vec::new();
                for action in actions {
                    for p in Permission::for_scope_action(action) {
                        let a = p.token_action();
                        if held.has(*p) && !granted.iter().any(|g| g == a) {
                            granted.push(a.to_owned());
                        }
                    }
                }
                if granted.is_empty() {
                    continue;
                }
                AccessEntry {
                    kind: ResourceType::Repository,
                    name: name.as_str().to_owned(),
                    actions: granted,
                }
            }
        };
        match access
            .iter_mut()
            .find(|e| e.kind == entry.kind && e.name == entry.name)
        {
            Some(existing) => {
                for a in entry.actions {
                    if !existing.actions.contains(&a) {
                        existing.actions.push(a);
                    }
                }
            }
            None => access.push(entry),
        }
    }
    access
}

/// What a request needs: an action on a repository, or the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing (`/v2/` itself only needs a valid credential, or none).
    Nothing,
    Catalog,
    Repository {
        name: Name,
        permission: Permission,
    },
}

impl Need {
    /// The scope a client should ask the token service for, in the 401 challenge.
    pub fn scope(&self) -> Option<String> {
        match self {
            Need::Nothing => None,
            Need::Catalog => Some("registry:catalog:*".into()),
            Need::Repository { name, permission } => Some(match permission {
                Permission::ContentRead | Permission::MetadataRead => {
                    format!("repository:{name}:pull")
                }
                Permission::ContentWrite | Permission::MetadataWrite => {
                    format!("repository:{name}:pull,push")
                }
                Permission::ContentDelete => format!("repository:{name}:delete"),
            }),
        }
    }

    /// The detail distribution puts in its `UNAUTHORIZED` errors.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Need::Nothing => serde_json::Value::Null,
            Need::Catalog => {
                serde_json::json!([{ "Type": "registry", "Name": "catalog", "Action": "*" }])
            }
            Need::Repository { name, permission } => serde_json::json!([{
                "Type": "repository",
                "Name": name.as_str(),
                "Action": permission.token_action(),
            }]),
        }
    }
}

/// What a verified credential allows: the claims of a bearer token (never more than its principal
/// holds now), or a principal's permissions (Basic credentials, anonymous requests).
#[derive(Debug, Clone)]
pub enum Authority {
    Claims {
        access: Vec<AccessEntry>,
        /// What the token's principal holds at the time of the request.
        current: Permissions,
    },
    Permissions(Permissions),
}

impl Authority {
    pub fn allows(&self, need: &Need) -> bool {
        match (self, need) {
            (_, Need::Nothing) => true,
            // Any signed-in principal may read the catalog, filtered to what it may see (the
            // caller checks that it is signed in).
            (Authority::Permissions(_), Need::Catalog) => true,
            (Authority::Permissions(p), Need::Repository { name, permission }) => {
                p.on(name.as_str()).has(*permission)
            }
            (Authority::Claims { access, .. }, Need::Catalog) => access
                .iter()
                .any(|e| e.kind == ResourceType::Registry && e.name == "catalog"),
            (Authority::Claims { access, current }, Need::Repository { name, permission }) => {
                current.on(name.as_str()).has(*permission)
                    && access.iter().any(|e| {
                        e.kind == ResourceType::Repository
                            && e.name == name.as_str()
                            && e.actions.iter().any(|a| a == permission.token_action())
                    })
            }
        }
    }
}

/// The verified caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub authority: Authority,
}

impl Caller {
    /// The credential was a bearer token (a failed check answers `insufficient_scope`).
    pub fn bearer(&self) -> bool {
        matches!(self.authority, Authority::Claims { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[&str]) -> Vec<ScopeEntry> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn scope_entries_round_trip() {
        for s in [
            "repositories/team-a/*/content/read",
            "repositories/app/metadata/write",
            "repositories/a/b/c/content/delete",
            "repositories/*/metadata/read",
        ] {
            assert_eq!(s.parse::<ScopeEntry>().unwrap().to_string(), s);
        }
        for bad in [
            "repository/app/content/read",
            "repositories/app/content/execute",
            "repositories/App/content/read",
            "repositories/a/../b/content/read",
            "repositories/team*/content/read",
            "repositories/content/read",
        ] {
            assert!(bad.parse::<ScopeEntry>().is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_whole_components() {
        let p: Pattern = "team-a/*".parse().unwrap();
        assert!(p.matches("team-a/app"));
        assert!(p.matches("team-a/x/y"));
        assert!(!p.matches("team-a"));
        assert!(!p.matches("team-ab/app"));
        assert!(!p.matches("team-b/app"));
        assert!(Pattern::All.matches("anything/at/all"));
    }

    #[test]
    fn permissions_union_over_entries() {
        let p = Permissions {
            admin: false,
            entries: entries(&[
                "repositories/team-a/*/content/read",
                "repositories/team-a/app/content/write",
            ]),
        };
        let app = p.on("team-a/app");
        assert!(app.has(Permission::ContentRead) && app.has(Permission::ContentWrite));
        assert!(!app.has(Permission::ContentDelete));
        assert!(p.on("team-b/app").is_empty());
        assert_eq!(Permissions::admin().on("x"), PermissionSet::ALL);
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            Scope::parse("repository:team/app:pull,push").unwrap(),
            Some(Scope::Repository {
                name: name("team/app"),
                actions: vec!["pull".into(), "push".into()]
            })
        );
        assert_eq!(
            Scope::parse("repository(plugin):app:pull").unwrap(),
            Some(Scope::Repository {
                name: name("app"),
                actions: vec!["pull".into()]
            })
        );
        assert_eq!(
            Scope::parse("registry:catalog:*").unwrap(),
            Some(Scope::Catalog)
        );
        assert_eq!(Scope::parse("gateway:x:config/read").unwrap(), None);
        assert!(Scope::parse("repository:../etc:pull").is_err());
        assert!(Scope::parse("repository").is_err());
        let all = Scope::parse_all(["repository:a:pull repository:b:push", "registry:catalog:*"])
            .unwrap();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn grants_are_the_intersection() {
        let p = Permissions {
            admin: false,
            entries: entries(&[
                "repositories/team-a/*/content/read",
                "repositories/team-a/*/metadata/read",
            ]),
        };
        let token = Principal::Token("ci".into());
        let scopes = Scope::parse_all([
            "repository:team-a/app:pull,push",
            "repository:team-b/app:pull",
            "registry:catalog:*",
        ])
        .unwrap();
        let access = grant(&scopes, &p, &token);
        assert_eq!(
            access,
            vec![
                AccessEntry {
                    kind: ResourceType::Repository,
                    name: "team-a/app".into(),
                    actions: vec!["pull".into(), "metadata_read".into()],
                },
                AccessEntry {
                    kind: ResourceType::Registry,
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                },
            ]
        );
        // Anonymous callers never get the catalog.
        assert_eq!(grant(&scopes, &p, &Principal::Anonymous).len(), 1);
        let authority = Authority::Claims {
            access: access.clone(),
            current: p.clone(),
        };
        let need = |n: &str, permission| Need::Repository {
            name: name(n),
            permission,
        };
        assert!(authority.allows(&need("team-a/app", Permission::ContentRead)));
        assert!(authority.allows(&need("team-a/app", Permission::MetadataRead)));
        assert!(!authority.allows(&need("team-a/app", Permission::ContentWrite)));
        assert!(!authority.allows(&need("team-b/app", Permission::ContentRead)));
        assert!(!authority.allows(&need("team-a/other", Permission::ContentRead)));
        assert!(authority.allows(&Need::Catalog));
    }

    #[test]
    fn challenges_name_docker_scopes() {
        let need = Need::Repository {
            name: name("a/b"),
            permission: Permission::ContentWrite,
        };
        assert_eq!(need.scope().unwrap(), "repository:a/b:pull,push");
        assert_eq!(Need::Catalog.scope().unwrap(), "registry:catalog:*");
    }
}
