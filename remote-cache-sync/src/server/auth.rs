//! Bearer-token authentication and per-scope authorization for the sync server.
//!
//! The server asks an [`Authorizer`] two questions per request: who holds this token
//! ([`authenticate`](Authorizer::authenticate), `None` answers 401), and may they read or write
//! this scope ([`authorize`](Authorizer::authorize), `false` answers 403). A request for a scope
//! that is not granted is refused, never filtered silently.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::scope::SyncScope;

/// What a request wants to do with a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Pull or get.
    Read,
    /// Push.
    Write,
}

/// An authenticated caller.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// A label for logs (never the token).
    pub name: String,
    /// Opaque data the authorizer attaches (e.g. an index into its grant table).
    pub key: u64,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Decides who a bearer token belongs to and which scopes it may use.
///
/// Implementations must not log or echo the token.
pub trait Authorizer: Send + Sync + 'static {
    /// The principal holding `token` (`None` when the request carried no bearer token).
    /// Returning `None` refuses the request with 401.
    fn authenticate(&self, token: Option<&str>) -> Option<Principal>;

    /// Whether `principal` may `access` `scope`. Returning `false` refuses the request with 403.
    fn authorize(&self, principal: &Principal, scope: &SyncScope, access: Access) -> bool;
}

impl<A: Authorizer + ?Sized> Authorizer for std::sync::Arc<A> {
    fn authenticate(&self, token: Option<&str>) -> Option<Principal> {
        (**self).authenticate(token)
    }

    fn authorize(&self, principal: &Principal, scope: &SyncScope, access: Access) -> bool {
        (**self).authorize(principal, scope, access)
    }
}

/// Lets everyone do everything, with or without a token. For development on loopback only.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authenticate(&self, _token: Option<&str>) -> Option<Principal> {
        Some(Principal {
            name: "anonymous".into(),
            key: 0,
        })
    }

    fn authorize(&self, _: &Principal, _: &SyncScope, _: Access) -> bool {
        true
    }
}

/// Which scopes a grant covers: a scope name (or `*`) plus keys the scope must carry, each with
/// an exact value or `*` (any value). Keys the pattern does not mention may take any value.
///
/// Text form: `name[,key=value]*`, e.g. `records`, `records,owner=alice`, `*,tenant=t1`, `*`.
/// Names, keys and values cannot contain `,` or `=` in this form; build the pattern with
/// [`ScopePattern::new`] for those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePattern {
    name: Option<String>,
    keys: BTreeMap<String, Option<String>>,
}

impl ScopePattern {
    /// A pattern; `None` matches any name or value.
    pub fn new(
        name: Option<String>,
        keys: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> Self {
        ScopePattern {
            name,
            keys: keys.into_iter().collect(),
        }
    }

    /// Matches every scope.
    pub fn any() -> Self {
        ScopePattern::new(None, [])
    }

    /// Whether `scope` is covered.
    pub fn matches(&self, scope: &SyncScope) -> bool {
        if let Some(name) = &self.name
            && name != scope.name()
        {
            return false;
        }
        self.keys
            .iter()
            .all(|(k, want)| match (scope.key(k), want) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(v), Some(w)) => v == w,
            })
    }
}

impl FromStr for ScopePattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.split(',');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() {
            return Err(Error::InvalidInput(
                "scope pattern needs a name or `*`".into(),
            ));
        }
        let name = (name != "*").then(|| name.to_owned());
        let mut keys = BTreeMap::new();
        for part in parts {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::InvalidInput(format!("scope pattern part {part:?} is not key=value"))
            })?;
            let k = k.trim();
            if k.is_empty() {
                return Err(Error::InvalidInput("scope pattern has an empty key".into()));
            }
            let v = (v != "*").then(|| v.to_owned());
            if keys.insert(k.to_owned(), v).is_some() {
                return Err(Error::InvalidInput(format!(
                    "scope pattern repeats key {k:?}"
                )));
            }
        }
        Ok(ScopePattern { name, keys })
    }
}

struct Grant {
    token: String,
    patterns: Vec<ScopePattern>,
}

/// A fixed table of tokens, each granted read and write access to the scopes its patterns match.
///
/// Tokens are compared in constant time. `Debug` shows how many tokens there are, never them.
#[derive(Default)]
pub struct StaticTokens {
    grants: Vec<Grant>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.grants.len())
            .finish()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl StaticTokens {
    /// An empty table (refuses everyone).
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `token` the scopes matching `pattern` (call again to add patterns).
    pub fn grant(&mut self, token: impl Into<String>, pattern: ScopePattern) -> Result<&mut Self> {
        let token = token.into();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidInput(
                "a token must be non-empty and contain no whitespace".into(),
            ));
        }
        match self.grants.iter_mut().find(|g| g.token == token) {
            Some(g) => g.patterns.push(pattern),
            None => self.grants.push(Grant {
                token,
                patterns: vec![pattern],
            }),
        }
        Ok(self)
    }

    /// Parses `TOKEN:PATTERN` (split at the first `:`), as given to `rcs serve --token`.
    pub fn grant_spec(&mut self, spec: &str) -> Result<&mut Self> {
        let (token, pattern) = spec
            .split_once(':')
            .ok_or_else(|| Error::InvalidInput("token spec must be TOKEN:SCOPE-PATTERN".into()))?;
        let pattern = pattern.parse()?;
        self.grant(token, pattern)
    }

    /// Number of distinct tokens.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

impl Authorizer for StaticTokens {
    fn authenticate(&self, token: Option<&str>) -> Option<Principal> {
        let token = token?;
        // Compare against every entry so the time taken does not reveal which one matched.
        let mut found = None;
        for (i, g) in self.grants.iter().enumerate() {
            if constant_time_eq(g.token.as_bytes(), token.as_bytes()) {
                found = Some(i);
            }
        }
        found.map(|i| Principal {
            name: format!("token#{}", i + 1),
            key: i as u64,
        })
    }

    fn authorize(&self, principal: &Principal, scope: &SyncScope, _access: Access) -> bool {
        self.grants
            .get(principal.key as usize)
            .is_some_and(|g| g.patterns.iter().any(|p| p.matches(scope)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_keys() {
        let alice = SyncScope::new("records", [("owner", "alice")]).unwrap();
        let bob = SyncScope::new("records", [("owner", "bob")]).unwrap();
        let bare = SyncScope::named("records").unwrap();
        let p: ScopePattern = "records,owner=alice".parse().unwrap();
        assert!(p.matches(&alice) && !p.matches(&bob) && !p.matches(&bare));
        let p: ScopePattern = "records,owner=*".parse().unwrap();
        assert!(p.matches(&alice) && p.matches(&bob) && !p.matches(&bare));
        let p: ScopePattern = "*".parse().unwrap();
        assert!(p.matches(&alice) && p.matches(&bare));
        assert!("".parse::<ScopePattern>().is_err());
        assert!("r,owner".parse::<ScopePattern>().is_err());
    }

    #[test]
    fn static_tokens_grant_only_their_scopes() {
        let mut t = StaticTokens::new();
        t.grant_spec("s3cret:records,owner=alice").unwrap();
        t.grant_spec("other:*").unwrap();
        assert!(t.authenticate(None).is_none());
        assert!(t.authenticate(Some("s3cre")).is_none());
        let p = t.authenticate(Some("s3cret")).unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(!format!("{t:?}").contains("s3cret"));
        let alice = SyncScope::new("records", [("owner", "alice")]).unwrap();
        let bob = SyncScope::new("records", [("owner", "bob")]).unwrap();
        assert!(t.authorize(&p, &alice, Access::Write));
        assert!(!t.authorize(&p, &bob, Access::Read));
        let q = t.authenticate(Some("other")).unwrap();
        assert!(t.authorize(&q, &bob, Access::Read));
        assert!(t.grant_spec("no-colon").is_err());
        assert!(t.grant("has space", ScopePattern::any()).is_err());
    }
}
