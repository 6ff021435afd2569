//! The registry's records in the KV namespace, typed, and the only code that knows their keys.
//! The documents themselves are `auth::records` (tokens, scope maps, settings, repository
//! attributes); webhooks and replicas join here as kinds of their own.
//!
//! ```text
//! registry                  RegistrySettings
//! tokens/<token>            TokenRecord
//! scope-maps/<scope map>    ScopeMapRecord (the system maps are built in, never stored)
//! repositories/<name>       RepositoryAttributes (absent: no locks)
//! webhooks/<name>           WebhookRecord
//! webhook-log/<name>        [DeliveryEntry], newest first, at most webhooks::LOG_ENTRIES
//! ```
//!
//! Reads go through the edge cache for `AUTH_CACHE_SECONDS` (an absent record is cached too);
//! writes drop the cached copy, and the cached listing of their kind, in this isolate at once.
//! KV is eventually consistent: other locations see a write within its propagation delay plus
//! that lifetime.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::records::{
    RegistrySettings, RepositoryAttributes, ScopeMapRecord, TokenRecord, system_scope_maps,
};
use crate::cache::{EdgeCache, key};
use crate::error::{Error, Result};
use crate::handlers::decode_lines;
use crate::platform::KeyValue;
use crate::reference::Name;
use crate::webhooks::{DeliveryEntry, WebhookRecord};

/// A record's key.
#[derive(Debug, Clone, Copy)]
enum RecordKey<'a> {
    Settings,
    Token(&'a str),
    ScopeMap(&'a str),
    Repository(&'a Name),
    Webhook(&'a str),
    WebhookLog(&'a str),
}

/// The records listed by a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tokens,
    ScopeMaps,
    Repositories,
    Webhooks,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Tokens => "tokens/",
            Kind::ScopeMaps => "scope-maps/",
            Kind::Repositories => "repositories/",
            Kind::Webhooks => "webhooks/",
        }
    }
}

impl RecordKey<'_> {
    fn kind(self) -> Option<Kind> {
        match self {
            RecordKey::Settings => None,
            RecordKey::Token(_) => Some(Kind::Tokens),
            RecordKey::ScopeMap(_) => Some(Kind::ScopeMaps),
            RecordKey::Repository(_) => Some(Kind::Repositories),
            RecordKey::Webhook(_) => Some(Kind::Webhooks),
            RecordKey::WebhookLog(_) => None,
        }
    }

    fn key(self) -> String {
        match (self, self.kind()) {
            (RecordKey::Settings, _) => "registry".to_owned(),
            (RecordKey::Token(name) | RecordKey::ScopeMap(name), Some(kind)) => {
                format!("{}{name}", kind.prefix())
            }
            (RecordKey::Repository(name), Some(kind)) => format!("{}{name}", kind.prefix()),
            (RecordKey::Webhook(name), Some(kind)) => format!("{}{name}", kind.prefix()),
            (RecordKey::WebhookLog(name), _) => format!("webhook-log/{name}"),
            _ => unreachable!("every keyed record has a kind"),
        }
    }
}

/// Marks a cached "no such record" (KV values are never empty).
const ABSENT: &[u8] = b"";

/// The records, over a KV namespace and the edge cache.
pub struct Records<'a, K, C> {
    pub kv: &'a K,
    pub cache: &'a C,
    /// How long a read is kept (`AUTH_CACHE_SECONDS`).
    pub ttl: u64,
}

impl<K: KeyValue, C: EdgeCache> Records<'_, K, C> {
    async fn get<T: DeserializeOwned>(&self, record: RecordKey<'_>) -> Result<Option<T>> {
        let key = record.key();
        let cache_key = key::record(&key);
        let text = match self.cache.get(&cache_key).await {
            Some(cached) if cached == ABSENT => None,
            Some(cached) => {
                Some(String::from_utf8(cached).map_err(|_| corrupt(&key, "not UTF-8"))?)
            }
            None => {
                let text = self.kv.get(&key).await.map_err(kv_error)?;
                if self.ttl > 0 {
                    let bytes = text.as_deref().map_or(ABSENT, str::as_bytes);
                    self.cache.put(&cache_key, bytes, self.ttl).await;
                }
                text
            }
        };
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(&key, &e.to_string())))
            .transpose()
    }

    async fn put<T: Serialize>(&self, record: RecordKey<'_>, value: &T) -> Result<()> {
        let text = serde_json::to_string(value).expect("records serialize");
        self.kv.put(&record.key(), &text).await.map_err(kv_error)?;
        self.forget(record).await;
        Ok(())
    }

    async fn delete(&self, record: RecordKey<'_>) -> Result<()> {
        self.kv.delete(&record.key()).await.map_err(kv_error)?;
        self.forget(record).await;
        Ok(())
    }

    /// Drops the cached copy of a record and of the listing it appears in.
    async fn forget(&self, record: RecordKey<'_>) {
        self.cache.delete(&key::record(&record.key())).await;
        if let Some(kind) = record.kind() {
            self.cache.delete(&key::record_list(kind.prefix())).await;
        }
    }

    /// The names of a kind's records, through the cache: KV list operations are slower and
    /// scarcer than reads (1,000 a day on the free plan).
    async fn names(&self, kind: Kind) -> Result<Vec<String>> {
        let cache_key = key::record_list(kind.prefix());
        let keys = match self
            .cache
            .get(&cache_key)
            .await
            .and_then(|c| decode_lines(&c))
        {
            Some(keys) => keys,
            None => {
                let keys = self.kv.list(kind.prefix()).await.map_err(kv_error)?;
                if self.ttl > 0 {
                    self.cache
                        .put(&cache_key, keys.join("\n").as_bytes(), self.ttl)
                        .await;
                }
                keys
            }
        };
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(kind.prefix()))
            .map(str::to_owned)
            .collect())
    }

    // --- the registry's settings ---

    pub async fn settings(&self) -> Result<RegistrySettings> {
        Ok(self.get(RecordKey::Settings).await?.unwrap_or_default())
    }

    pub async fn put_settings(&self, settings: &RegistrySettings) -> Result<()> {
        self.put(RecordKey::Settings, settings).await
    }

    // --- tokens ---

    pub async fn token(&self, name: &str) -> Result<Option<TokenRecord>> {
        self.get(RecordKey::Token(name)).await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut tokens = Vec::new();
        for name in self.names(Kind::Tokens).await? {
            tokens.extend(self.token(&name).await?);
        }
        Ok(tokens)
    }

    pub async fn put_token(&self, token: &TokenRecord) -> Result<()> {
        self.put(RecordKey::Token(&token.name), token).await
    }

    pub async fn delete_token(&self, name: &str) -> Result<()> {
        self.delete(RecordKey::Token(name)).await
    }

    // --- scope maps ---

    /// A scope map: a system one (built in), else a stored one.
    pub async fn scope_map(&self, name: &str) -> Result<Option<ScopeMapRecord>> {
        if let Some(system) = system_scope_maps().into_iter().find(|m| m.name == name) {
            return Ok(Some(system));
        }
        self.stored_scope_map(name).await
    }

    pub async fn stored_scope_map(&self, name: &str) -> Result<Option<ScopeMapRecord>> {
        self.get(RecordKey::ScopeMap(name)).await
    }

    /// The system scope maps, then the stored ones.
    pub async fn scope_maps(&self) -> Result<Vec<ScopeMapRecord>> {
        let mut maps = system_scope_maps();
        for name in self.names(Kind::ScopeMaps).await? {
            maps.extend(self.stored_scope_map(&name).await?);
        }
        Ok(maps)
    }

    pub async fn put_scope_map(&self, map: &ScopeMapRecord) -> Result<()> {
        self.put(RecordKey::ScopeMap(&map.name), map).await
    }

    pub async fn delete_scope_map(&self, name: &str) -> Result<()> {
        self.delete(RecordKey::ScopeMap(name)).await
    }

    // --- webhooks ---

    pub async fn webhook(&self, name: &str) -> Result<Option<WebhookRecord>> {
        self.get(RecordKey::Webhook(name)).await
    }

    /// The webhooks the settings name (`RegistrySettings::webhooks`), read by key.
    pub async fn webhooks(&self, settings: &RegistrySettings) -> Result<Vec<WebhookRecord>> {
        let mut hooks = Vec::new();
        for name in &settings.webhooks {
            hooks.extend(self.webhook(name).await?);
        }
        Ok(hooks)
    }

    pub async fn put_webhook(&self, hook: &WebhookRecord) -> Result<()> {
        self.put(RecordKey::Webhook(&hook.name), hook).await
    }

    pub async fn delete_webhook(&self, name: &str) -> Result<()> {
        self.delete(RecordKey::Webhook(name)).await?;
        self.delete(RecordKey::WebhookLog(name)).await
    }

    pub async fn webhook_log(&self, name: &str) -> Result<Vec<DeliveryEntry>> {
        Ok(self
            .get(RecordKey::WebhookLog(name))
            .await?
            .unwrap_or_default())
    }

    /// Puts `entry` in front of the webhook's log. Read, then written: two deliveries logged at
    /// the same instant elsewhere can lose one line (the log is for people, not for accounting).
    pub async fn log_delivery(&self, name: &str, entry: DeliveryEntry) -> Result<()> {
        let log = self.webhook_log(name).await?;
        self.put(
            RecordKey::WebhookLog(name),
            &crate::webhooks::logged(log, entry),
        )
        .await
    }

    // --- repository attributes ---

    /// A repository's attributes (the defaults when it has none).
    pub async fn attributes(&self, name: &Name) -> Result<RepositoryAttributes> {
        Ok(self
            .get(RecordKey::Repository(name))
            .await?
            .unwrap_or_default())
    }

    /// Every repository that has attributes.
    pub async fn all_attributes(&self) -> Result<Vec<(Name, RepositoryAttributes)>> {
        let mut all = Vec::new();
        for name in self.names(Kind::Repositories).await? {
            let Ok(name) = name.parse::<Name>() else {
                return Err(corrupt(
                    &format!("repositories/{name}"),
                    "not a repository name",
                ));
            };
            if let Some(attributes) = self.get(RecordKey::Repository(&name)).await? {
                all.push((name, attributes));
            }
        }
        Ok(all)
    }

    /// Stores a repository's attributes; the defaults are stored as no record at all.
    pub async fn put_attributes(
        &self,
        name: &Name,
        attributes: &RepositoryAttributes,
    ) -> Result<()> {
        if attributes.is_default() {
            self.delete(RecordKey::Repository(name)).await
        } else {
            self.put(RecordKey::Repository(name), attributes).await
        }
    }
}

fn kv_error(e: String) -> Error {
    Error::internal(format!("registry records (KV): {e}"))
}

/// A record that cannot be read is an error to report, never a default to fall back on (a
/// malformed network rule must not leave the registry open).
fn corrupt(key: &str, why: &str) -> Error {
    Error::internal(format!("registry record {key} is not valid: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::records::Attributes;
    use crate::cache::MemoryCache;
    use crate::platform::{FixedClock, MemoryKv};

    #[test]
    fn keys_and_round_trips() {
        let clock = FixedClock::at(0);
        let cache = MemoryCache::new(&clock, 1 << 20);
        let kv = MemoryKv::default();
        let records = Records {
            kv: &kv,
            cache: &cache,
            ttl: 10,
        };
        let name: Name = "team/app".parse().unwrap();
        futures::executor::block_on(async {
            assert!(records.attributes(&name).await.unwrap().is_default());
            let attrs = RepositoryAttributes {
                repository: Attributes {
                    read_enabled: Some(false),
                    ..Attributes::default()
                },
                ..RepositoryAttributes::default()
            };
            records.put_attributes(&name, &attrs).await.unwrap();
            assert_eq!(records.attributes(&name).await.unwrap(), attrs);
            assert!(kv.0.borrow().contains_key("repositories/team/app"));
            assert_eq!(
                records.all_attributes().await.unwrap(),
                vec![(name.clone(), attrs)]
            );
            // The defaults are no record at all, and the listing forgets it at once.
            records
                .put_attributes(&name, &RepositoryAttributes::default())
                .await
                .unwrap();
            assert!(kv.0.borrow().is_empty());
            assert!(records.all_attributes().await.unwrap().is_empty());
            assert_eq!(
                records.scope_maps().await.unwrap().len(),
                5,
                "the system maps"
            );
            assert!(
                records
                    .scope_map("_repositories_pull")
                    .await
                    .unwrap()
                    .is_some()
            );
            // A record that does not parse is an error, never the defaults.
            kv.0.borrow_mut()
                .insert("registry".into(), r#"{"networkRules": 7}"#.into());
            assert!(records.settings().await.is_err());
        });
    }
}
