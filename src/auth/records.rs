//! The documents the KV namespace holds, one JSON document per key (`crate::records` owns the
//! keys, the cached reads and the writes): `RegistrySettings` (the admin user, anonymous pull,
//! network rules), `TokenRecord` (enabled, scope map, up to two hashed passwords),
//! `ScopeMapRecord` (`repositories/<pattern>/<action>` entries) and `RepositoryAttributes` (the
//! repository's locks, and its tags' and manifests').
//!
//! Passwords appear only as `sha256:<hex>` hashes. The system scope maps (`_repositories_*`) are
//! built in, not stored. Absent documents mean defaults: admin enabled, no anonymous pull, all
//! networks allowed, every repository unlocked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::network::NetworkRules;
use super::{Pattern, Permission, ScopeEntry, secret};
use crate::reference::{Digest, Tag};

/// The two password slots a principal has, as ACR names them (`password1`, `password2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PasswordSlot {
    #[serde(rename = "password1")]
    Password1,
    #[serde(rename = "password2")]
    Password2,
}

impl PasswordSlot {
    pub const ALL: [PasswordSlot; 2] = [PasswordSlot::Password1, PasswordSlot::Password2];

    pub fn as_str(self) -> &'static str {
        match self {
            PasswordSlot::Password1 => "password1",
            PasswordSlot::Password2 => "password2",
        }
    }
}

impl std::fmt::Display for PasswordSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PasswordSlot {
    type Err = String;

    fn from_str(s: &str) -> Result<PasswordSlot, String> {
        PasswordSlot::ALL
            .into_iter()
            .find(|slot| slot.as_str() == s)
            .ok_or_else(|| format!("a password is password1 or password2, not {s:?}"))
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRecord {
    pub name: PasswordSlot,
    /// `sha256:<hex>` of the password.
    pub hash: String,
    pub created: u64,
    /// Seconds since the epoch after which the password no longer works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
}

impl std::fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRecord")
            .field("name", &self.name)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl PasswordRecord {
    pub fn is_live(&self, now: u64) -> bool {
        self.expiry.is_none_or(|expiry| now < expiry)
    }
}

/// The live password `password` matches, if any.
pub fn matching_password<'a>(
    passwords: &'a [PasswordRecord],
    password: &str,
    now: u64,
) -> Option<&'a PasswordRecord> {
    // Every slot is checked, so the time taken does not say which one matched.
    let mut found = None;
    for record in passwords {
        if secret::verify_password(password, &record.hash) && record.is_live(now) {
            found = Some(record);
        }
    }
    found
}

/// Puts a new password into slot `name` (replacing what was there) and returns it: the only time
/// it is ever seen.
pub fn regenerate_password(
    passwords: &mut Vec<PasswordRecord>,
    name: PasswordSlot,
    now: u64,
    expiry: Option<u64>,
) -> Result<String, String> {
    let password = secret::generate_password()?;
    passwords.retain(|p| p.name != name);
    passwords.push(PasswordRecord {
        name,
        hash: secret::hash_password(&password),
        created: now,
        expiry,
    });
    passwords.sort_by_key(|p| p.name);
    Ok(password)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRecord {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Generated passwords; the `ADMIN_PASSWORD` secret works besides these.
    #[serde(default)]
    pub passwords: Vec<PasswordRecord>,
}

impl Default for AdminRecord {
    fn default() -> Self {
        AdminRecord {
            enabled: true,
            passwords: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// Who may pull without credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnonymousPull {
    /// Every repository of the registry.
    #[serde(default)]
    pub enabled: bool,
    /// Only these repositories (`name` or `prefix/*`).
    #[serde(default)]
    pub repositories: Vec<String>,
}

impl AnonymousPull {
    pub fn validate(&self) -> Result<(), String> {
        self.patterns().map(|_| ())
    }

    fn patterns(&self) -> Result<Vec<Pattern>, String> {
        self.repositories.iter().map(|p| p.parse()).collect()
    }

    /// What anonymous callers may do: pull, and list tags, where anonymous pull is on.
    pub fn permissions(&self) -> super::Permissions {
        let patterns = if self.enabled {
            vec![Pattern::All]
        } else {
            self.patterns().unwrap_or_default()
        };
        let entries = patterns
            .into_iter()
            .flat_map(|pattern| {
                [Permission::ContentRead, Permission::MetadataRead].map(|permission| ScopeEntry {
                    pattern: pattern.clone(),
                    permission,
                })
            })
            .collect();
        super::Permissions {
            admin: false,
            entries,
        }
    }
}

/// The registry-wide document (`registry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySettings {
    #[serde(default)]
    pub admin: AdminRecord,
    #[serde(default)]
    pub anonymous_pull: AnonymousPull,
    #[serde(default)]
    pub network_rules: NetworkRules,
    /// The webhooks' names (their records are `webhooks/<name>`): read with the settings every
    /// request reads anyway, so a registry without webhooks pays nothing for them, and one with
    /// some never lists KV to find them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub webhooks: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub name: String,
    /// Random, set when the token is created: the access and refresh tokens issued for it carry
    /// it, so a token deleted and created again under the same name does not inherit them.
    /// (Empty in records made before generations existed.)
    #[serde(default)]
    pub generation: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub scope_map: String,
    #[serde(default)]
    pub passwords: Vec<PasswordRecord>,
    #[serde(default)]
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeMapRecord {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub actions: Vec<ScopeEntry>,
    /// Built in (`_repositories_*`): cannot be changed or deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

/// The built-in scope maps, as ACR defines them.
pub fn system_scope_maps() -> Vec<ScopeMapRecord> {
    use Permission::*;
    let map = |name: &str, description: &str, permissions: &[Permission]| ScopeMapRecord {
        name: name.to_owned(),
        description: description.to_owned(),
        actions: permissions
            .iter()
            .map(|p| ScopeEntry {
                pattern: Pattern::All,
                permission: *p,
            })
            .collect(),
        system: true,
    };
    vec![
        map(
            "_repositories_admin",
            "Can perform all read, write and delete operations on the registry",
            &Permission::ALL,
        ),
        map(
            "_repositories_pull",
            "Can pull any repository of the registry",
            &[ContentRead],
        ),
        map(
            "_repositories_pull_metadata_read",
            "Can pull any repository and list its tags",
            &[ContentRead, MetadataRead],
        ),
        map(
            "_repositories_push",
            "Can push to any repository of the registry",
            &[ContentRead, ContentWrite],
        ),
        map(
            "_repositories_push_metadata_write",
            "Can push to any repository, list its tags and change its attributes",
            &[ContentRead, ContentWrite, MetadataRead, MetadataWrite],
        ),
    ]
}

/// Token and scope-map names: 5 to 50 letters, digits, `-` and `_`, starting with a letter or
/// digit (ACR's rule); `_`-prefixed names are the system's.
pub fn validate_object_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = (5..=50).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name {name:?} must be 5 to 50 letters, digits, '-' or '_', starting with a \
             letter or digit"
        ))
    }
}

/// ACR's four locks; an absent one is `true` (not locked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_enabled: Option<bool>,
}

/// One of the four locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Read,
    List,
    Write,
    Delete,
}

impl Lock {
    pub fn attribute(self) -> &'static str {
        match self {
            Lock::Read => "readEnabled",
            Lock::List => "listEnabled",
            Lock::Write => "writeEnabled",
            Lock::Delete => "deleteEnabled",
        }
    }
}

impl Attributes {
    pub fn enabled(&self, lock: Lock) -> bool {
        match lock {
            Lock::Read => self.read_enabled,
            Lock::List => self.list_enabled,
            Lock::Write => self.write_enabled,
            Lock::Delete => self.delete_enabled,
        }
        .unwrap_or(true)
    }

    /// Applies the fields `update` sets.
    pub fn merge(&mut self, update: &Attributes) {
        self.read_enabled = update.read_enabled.or(self.read_enabled);
        self.list_enabled = update.list_enabled.or(self.list_enabled);
        self.write_enabled = update.write_enabled.or(self.write_enabled);
        self.delete_enabled = update.delete_enabled.or(self.delete_enabled);
    }

    pub fn is_default(&self) -> bool {
        *self == Attributes::default()
    }
}

/// `repositories/<name>`: the repository's locks, and those of its tags and manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryAttributes {
    #[serde(flatten)]
    pub repository: Attributes,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<Tag, Attributes>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub manifests: BTreeMap<Digest, Attributes>,
}

impl RepositoryAttributes {
    pub fn is_default(&self) -> bool {
        self.repository.is_default() && self.tags.is_empty() && self.manifests.is_empty()
    }

    /// Whether `lock` lets the tag through: the repository's lock and the tag's.
    pub fn tag(&self, tag: &Tag, lock: Lock) -> bool {
        self.repository.enabled(lock) && self.tags.get(tag).is_none_or(|a| a.enabled(lock))
    }

    /// Whether `lock` lets the manifest through: the repository's lock and the manifest's.
    pub fn manifest(&self, digest: &Digest, lock: Lock) -> bool {
        self.repository.enabled(lock) && self.manifests.get(digest).is_none_or(|a| a.enabled(lock))
    }

    /// Both repositories' locks at once, for content reachable under two names (a default
    /// upstream's repository, unprefixed and under its namespace): what either closes is closed.
    pub fn strictest(mut self, other: RepositoryAttributes) -> RepositoryAttributes {
        self.repository = self.repository.strictest(&other.repository);
        for (tag, attributes) in other.tags {
            let merged = self
                .tags
                .get(&tag)
                .map_or(attributes.clone(), |a| a.strictest(&attributes));
            self.tags.insert(tag, merged);
        }
        for (digest, attributes) in other.manifests {
            let merged = self
                .manifests
                .get(&digest)
                .map_or(attributes.clone(), |a| a.strictest(&attributes));
            self.manifests.insert(digest, merged);
        }
        self
    }
}

impl Attributes {
    /// What both allow: a lock either sets is set.
    fn strictest(&self, other: &Attributes) -> Attributes {
        let one = |a: Option<bool>, b: Option<bool>| match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (None, None) => None,
            _ => Some(true),
        };
        Attributes {
            read_enabled: one(self.read_enabled, other.read_enabled),
            list_enabled: one(self.list_enabled, other.list_enabled),
            write_enabled: one(self.write_enabled, other.write_enabled),
            delete_enabled: one(self.delete_enabled, other.delete_enabled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_regenerate_and_expire() {
        let mut passwords = Vec::new();
        let p1 = regenerate_password(&mut passwords, PasswordSlot::Password1, 100, None).unwrap();
        let p2 =
            regenerate_password(&mut passwords, PasswordSlot::Password2, 100, Some(200)).unwrap();
        assert_eq!(
            matching_password(&passwords, &p1, 150).unwrap().name,
            PasswordSlot::Password1
        );
        assert_eq!(
            matching_password(&passwords, &p2, 150).unwrap().name,
            PasswordSlot::Password2
        );
        assert!(matching_password(&passwords, &p2, 200).is_none(), "expired");
        let p1b = regenerate_password(&mut passwords, PasswordSlot::Password1, 300, None).unwrap();
        assert!(
            matching_password(&passwords, &p1, 300).is_none(),
            "replaced"
        );
        assert!(matching_password(&passwords, &p1b, 300).is_some());
        assert_eq!(passwords.len(), 2);
        assert!("password3".parse::<PasswordSlot>().is_err());
        let json = serde_json::to_string(&passwords).unwrap();
        assert!(json.contains(r#""name":"password1""#), "{json}");
        assert!(!json.contains(&p1b), "only hashes are stored");
        assert!(!format!("{passwords:?}").contains("sha256"));
    }

    #[test]
    fn anonymous_pull_patterns() {
        let anon = AnonymousPull {
            enabled: false,
            repositories: vec!["public/*".into(), "library/busybox".into()],
        };
        let p = anon.permissions();
        assert!(p.on("public/app").has(Permission::ContentRead));
        assert!(p.on("library/busybox").has(Permission::MetadataRead));
        assert!(!p.on("public/app").has(Permission::ContentWrite));
        assert!(p.on("private/app").is_empty());
        assert!(AnonymousPull::default().permissions().on("x").is_empty());
        let all = AnonymousPull {
            enabled: true,
            repositories: vec![],
        };
        assert!(all.permissions().on("x").has(Permission::ContentRead));
        assert!(
            AnonymousPull {
                enabled: false,
                repositories: vec!["Bad".into()]
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn locks_combine_repository_and_tag() {
        let ab = format!("sha256:{}", "ab".repeat(32));
        let cd = format!("sha256:{}", "cd".repeat(32));
        let attrs: RepositoryAttributes = serde_json::from_str(&format!(
            r#"{{"writeEnabled": true, "tags": {{"v1": {{"writeEnabled": false}}}},
                "manifests": {{"{ab}": {{"deleteEnabled": false}}}}}}"#
        ))
        .unwrap();
        let tag = |t: &str| t.parse::<Tag>().unwrap();
        let digest = |d: &str| d.parse::<Digest>().unwrap();
        assert!(!attrs.tag(&tag("v1"), Lock::Write));
        assert!(attrs.tag(&tag("v2"), Lock::Write));
        assert!(attrs.tag(&tag("v1"), Lock::Read));
        assert!(!attrs.manifest(&digest(&ab), Lock::Delete));
        assert!(attrs.manifest(&digest(&cd), Lock::Delete));
        // A stored key that is not a tag or a digest fails the record, never passes as unlocked.
        assert!(serde_json::from_str::<RepositoryAttributes>(r#"{"tags": {"-bad": {}}}"#).is_err());
        let mut repo = attrs.clone();
        repo.repository.merge(&Attributes {
            read_enabled: Some(false),
            ..Attributes::default()
        });
        assert!(!repo.tag(&tag("v2"), Lock::Read));
        assert!(RepositoryAttributes::default().is_default());
    }

    #[test]
    fn system_maps_and_names() {
        let maps = system_scope_maps();
        let admin = &maps[0];
        assert_eq!(admin.actions.len(), 5);
        assert!(validate_object_name("token", "ci-pull_1").is_ok());
        for bad in ["abc", "_repositories_x", "a b cd", "x".repeat(51).as_str()] {
            assert!(validate_object_name("token", bad).is_err(), "{bad}");
        }
    }
}
