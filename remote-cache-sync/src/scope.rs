//! [`SyncScope`]: the unit of synchronisation and isolation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A logical sync unit: a name (usually the collection, e.g. `records`) plus key/value pairs that
/// select a slice of it (e.g. `userId=u1`).
///
/// Keys are kept sorted, so a scope has exactly one [canonical encoding](SyncScope::canonical)
/// used as its storage key. No data, sync point or pending op of one scope is visible through
/// another.
///
/// ```
/// use remote_cache_sync::SyncScope;
/// let scope = SyncScope::new("records", [("userId", "u1")]).unwrap();
/// assert_eq!(scope.key("userId"), Some("u1"));
/// assert!(SyncScope::new("", [("a", "b")]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawScope", into = "RawScope")]
pub struct SyncScope {
    name: String,
    keys: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct RawScope {
    name: String,
    #[serde(default)]
    keys: BTreeMap<String, String>,
}

impl TryFrom<RawScope> for SyncScope {
    type Error = Error;
    fn try_from(raw: RawScope) -> Result<Self> {
        SyncScope::new(raw.name, raw.keys)
    }
}

impl From<SyncScope> for RawScope {
    fn from(s: SyncScope) -> Self {
        RawScope {
            name: s.name,
            keys: s.keys,
        }
    }
}

/// Longest accepted name, key or value, in bytes.
const MAX_PART_LEN: usize = 512;

fn validate_part(what: &str, part: &str, allow_empty: bool) -> Result<()> {
    if part.is_empty() && !allow_empty {
        return Err(Error::InvalidScope(format!("{what} must not be empty")));
    }
    if part.len() > MAX_PART_LEN {
        return Err(Error::InvalidScope(format!(
            "{what} is longer than {MAX_PART_LEN} bytes"
        )));
    }
    Ok(())
}

impl SyncScope {
    /// Creates a validated scope. The name and key names must be non-empty and contain no control
    /// characters; values may hold any text (they are always escaped or bound when sent anywhere).
    pub fn new<K, V>(
        name: impl Into<String>,
        keys: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let name = name.into();
        validate_part("scope name", &name, false)?;
        if name.chars().any(char::is_control) {
            return Err(Error::InvalidScope(
                "scope name must not contain control characters".into(),
            ));
        }
        let mut map = BTreeMap::new();
        for (k, v) in keys {
            let (k, v) = (k.into(), v.into());
            validate_part("scope key", &k, false)?;
            validate_part("scope value", &v, true)?;
            if k.chars().any(char::is_control) {
                return Err(Error::InvalidScope(
                    "scope key must not contain control characters".into(),
                ));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(Error::InvalidScope(format!("duplicate scope key {k:?}")));
            }
        }
        Ok(SyncScope { name, keys: map })
    }

    /// A scope with a name and no keys.
    pub fn named(name: impl Into<String>) -> Result<Self> {
        Self::new(name, std::iter::empty::<(String, String)>())
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope's keys, sorted by key.
    pub fn keys(&self) -> &BTreeMap<String, String> {
        &self.keys
    }

    /// The value of one key.
    pub fn key(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    /// The canonical, unambiguous encoding (JSON of name and sorted keys). Two scopes are equal
    /// exactly when their canonical encodings are equal.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&(&self.name, &self.keys)).expect("strings always serialize")
    }

    /// Parses [`SyncScope::canonical`] output back into a scope.
    pub fn from_canonical(s: &str) -> Result<Self> {
        let (name, keys): (String, BTreeMap<String, String>) = serde_json::from_str(s)
            .map_err(|e| Error::InvalidScope(format!("bad canonical scope: {e}")))?;
        Self::new(name, keys)
    }
}

impl fmt::Display for SyncScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (i, (k, v)) in self.keys.iter().enumerate() {
            f.write_str(if i == 0 { "{" } else { ", " })?;
            write!(f, "{k}={v:?}")?;
        }
        if !self.keys.is_empty() {
            f.write_str("}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_is_order_independent_and_round_trips() {
        let a = SyncScope::new("r", [("b", "2"), ("a", "1")]).unwrap();
        let b = SyncScope::new("r", [("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(SyncScope::from_canonical(&a.canonical()).unwrap(), a);
    }

    #[test]
    fn canonical_is_unambiguous() {
        let a = SyncScope::new("r", [("a", "1\",\"b\":\"2")]).unwrap();
        let b = SyncScope::new("r", [("a", "1"), ("b", "2")]).unwrap();
        assert_ne!(a.canonical(), b.canonical());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(SyncScope::named(""), Err(Error::InvalidScope(_))));
        assert!(SyncScope::named("a\nb").is_err());
        assert!(SyncScope::new("r", [("", "x")]).is_err());
        assert!(SyncScope::new("r", [("a", "x"), ("a", "y")]).is_err());
        assert!(serde_json::from_str::<SyncScope>(r#"{"name":""}"#).is_err());
    }
}
