//! The stand-in's storage (SQLite) and the rules it copies from Appwrite: attribute types and
//! document structure, permissions, ids and `$updatedAt` stamping.

use std::collections::HashMap;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::error::{AwError, AwResult};

pub(crate) const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS databases (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (db TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
    permissions TEXT NOT NULL, document_security INTEGER NOT NULL, PRIMARY KEY (db, id));
CREATE TABLE IF NOT EXISTS attributes (db TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL,
    type TEXT NOT NULL, size INTEGER NOT NULL, required INTEGER NOT NULL, array INTEGER NOT NULL,
    PRIMARY KEY (db, coll, key));
CREATE TABLE IF NOT EXISTS indexes (db TEXT NOT NULL, coll TEXT NOT NULL, key TEXT NOT NULL,
    type TEXT NOT NULL, attributes TEXT NOT NULL, PRIMARY KEY (db, coll, key));
CREATE TABLE IF NOT EXISTS documents (seq INTEGER PRIMARY KEY AUTOINCREMENT, db TEXT NOT NULL,
    coll TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    permissions TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (db, coll, id));
CREATE INDEX IF NOT EXISTS documents_updated ON documents (db, coll, updated_at, id);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, email TEXT, name TEXT);
CREATE TABLE IF NOT EXISTS jwts (token TEXT PRIMARY KEY, user_id TEXT NOT NULL, exp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
    status TEXT NOT NULL, operations INTEGER NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transaction_logs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tx TEXT NOT NULL, action TEXT NOT NULL, db TEXT NOT NULL, coll TEXT NOT NULL,
    doc_id TEXT NOT NULL, data TEXT NOT NULL, staged_at TEXT NOT NULL);
";

/// Attribute types (<https://appwrite.io/docs/products/databases/collections#attributes>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// `string`.
    String,
    /// `integer`.
    Integer,
    /// `float`.
    Float,
    /// `boolean`.
    Boolean,
    /// `datetime`.
    Datetime,
}

impl AttrType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => AttrType::String,
            "integer" => AttrType::Integer,
            "float" => AttrType::Float,
            "boolean" => AttrType::Boolean,
            "datetime" => AttrType::Datetime,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Integer => "integer",
            AttrType::Float => "float",
            AttrType::Boolean => "boolean",
            AttrType::Datetime => "datetime",
        }
    }
}

/// One attribute of a collection.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub t: AttrType,
    pub size: i64,
    pub required: bool,
    pub array: bool,
}

/// A collection with its attributes.
#[derive(Debug, Clone)]
pub(crate) struct Collection {
    pub db: String,
    pub id: String,
    pub permissions: Vec<String>,
    pub document_security: bool,
    pub attrs: HashMap<String, Attr>,
}

impl Collection {
    /// What the query planner needs: each attribute's type and whether it is an array.
    pub fn types(&self) -> super::query::Schema {
        self.attrs
            .iter()
            .map(|(k, a)| (k.clone(), (a.t, a.array)))
            .collect()
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// `X-Appwrite-Key`: all scopes, permissions bypassed.
    Key,
    /// `X-Appwrite-JWT` of this user.
    User(String),
    /// No credentials.
    Guest,
}

impl Identity {
    /// The roles the caller has (<https://appwrite.io/docs/advanced/platform/permissions#roles>).
    pub fn roles(&self) -> Vec<String> {
        match self {
            Identity::Key => vec![],
            Identity::User(u) => vec!["any".into(), "users".into(), format!("user:{u}")],
            Identity::Guest => vec!["any".into(), "guests".into()],
        }
    }

    /// The transaction owner tag.
    pub fn tag(&self) -> String {
        match self {
            Identity::Key => "key".into(),
            Identity::User(u) => format!("user:{u}"),
            Identity::Guest => "guest".into(),
        }
    }

    /// Whether one of `permissions` grants `action` to the caller.
    pub fn granted(&self, action: &str, permissions: &[String]) -> bool {
        if *self == Identity::Key {
            return true;
        }
        let roles = self.roles();
        permissions.iter().any(|p| {
            parse_permission(p).is_some_and(|(a, role)| {
                (a == action || (a == "write" && action != "read")) && roles.contains(&role)
            })
        })
    }
}

/// `read("user:u1")` → `("read", "user:u1")`.
pub(crate) fn parse_permission(p: &str) -> Option<(String, String)> {
    let (action, rest) = p.split_once('(')?;
    let role = rest.strip_suffix(')')?;
    let role: String = serde_json::from_str(role).ok()?;
    matches!(action, "read" | "create" | "update" | "delete" | "write")
        .then(|| (action.to_owned(), role))
}

/// A server stamp now: milliseconds, `+00:00`, as Appwrite writes `$updatedAt`.
pub(crate) fn now_stamp() -> String {
    stamp_of(Timestamp::now())
}

pub(crate) fn stamp_of(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

/// A datetime value in the stored format, if it parses.
pub(crate) fn normalize_stamp(s: &str) -> Option<String> {
    s.parse::<Timestamp>().ok().map(stamp_of)
}

/// Whether `id` is a valid custom id (<https://appwrite.io/docs/products/databases/documents>:
/// `a-z A-Z 0-9 . - _`, at most 36 characters, not starting with a special character).
pub(crate) fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=36).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

/// A new unique id (`ID.unique()`): 20 hex characters.
pub(crate) fn unique_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()[12..].to_owned()
}

/// Loads a collection, or `404 database_not_found` / `collection_not_found`.
pub(crate) fn collection(conn: &Connection, db: &str, coll: &str) -> AwResult<Collection> {
    let exists: Option<String> = conn
        .query_row("SELECT id FROM databases WHERE id = ?", [db], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(AwError::not_found("database_not_found", "Database", db));
    }
    let row: Option<(String, bool)> = conn
        .query_row(
            "SELECT permissions, document_security FROM collections WHERE db = ? AND id = ?",
            [db, coll],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((perms, document_security)) = row else {
        return Err(AwError::not_found(
            "collection_not_found",
            "Collection",
            coll,
        ));
    };
    let mut attrs = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT key, type, size, required, array FROM attributes WHERE db = ? AND coll = ?",
    )?;
    let rows = stmt.query_map([db, coll], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        let (key, t, size, required, array) = row?;
        let t = AttrType::parse(&t).unwrap_or(AttrType::String);
        attrs.insert(
            key,
            Attr {
                t,
                size,
                required,
                array,
            },
        );
    }
    Ok(Collection {
        db: db.to_owned(),
        id: coll.to_owned(),
        permissions: serde_json::from_str(&perms).unwrap_or_default(),
        document_security,
        attrs,
    })
}

/// Checks a document's attributes against the collection: unknown attributes, types, string
/// sizes, and (for a whole document) required ones. Appwrite answers `400
/// document_invalid_structure` to each.
pub(crate) fn validate(coll: &Collection, data: &Map<String, Value>) -> AwResult<()> {
    for (k, v) in data {
        let Some(a) = coll.attrs.get(k) else {
            return Err(AwError::structure(format!("Unknown attribute: \"{k}\"")));
        };
        let one = |v: &Value| match (a.t, v) {
            (_, Value::Null) => true,
            (AttrType::String, Value::String(s)) => s.chars().count() as i64 <= a.size,
            (AttrType::Integer, Value::Number(n)) => n.is_i64(),
            (AttrType::Float, Value::Number(_)) => true,
            (AttrType::Boolean, Value::Bool(_)) => true,
            (AttrType::Datetime, Value::String(s)) => s.parse::<Timestamp>().is_ok(),
            _ => false,
        };
        let ok = match (a.array, v) {
            (true, Value::Array(items)) => items.iter().all(|i| !i.is_null() && one(i)),
            (true, Value::Null) => true,
            (true, _) => false,
            (false, v) => one(v),
        };
        if !ok {
            return Err(AwError::structure(format!(
                "Attribute \"{k}\" has invalid format. Value must be a valid {}{}",
                a.t.name(),
                if a.array { " array" } else { "" }
            )));
        }
    }
    for (k, a) in &coll.attrs {
        if a.required && data.get(k).is_none_or(Value::is_null) {
            return Err(AwError::structure(format!(
                "Missing required attribute \"{k}\""
            )));
        }
    }
    Ok(())
}

/// A stored document.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub seq: i64,
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub permissions: Vec<String>,
    pub data: Map<String, Value>,
}

impl Doc {
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Doc> {
        let perms: String = r.get(4)?;
        let data: String = r.get(5)?;
        Ok(Doc {
            seq: r.get(0)?,
            id: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
            permissions: serde_json::from_str(&perms).unwrap_or_default(),
            data: serde_json::from_str(&data).unwrap_or_default(),
        })
    }

    /// The document model (<https://appwrite.io/docs/references/cloud/models/document>).
    pub fn to_json(&self, coll: &Collection) -> Value {
        self.to_json_selected(coll, None)
    }

    /// The document model with only the `select`ed attributes (`None`: all); the internal
    /// `$…` attributes always come back.
    pub fn to_json_selected(&self, coll: &Collection, select: Option<&[String]>) -> Value {
        let mut m = Map::new();
        m.insert("$id".into(), json!(self.id));
        m.insert("$sequence".into(), json!(self.seq.to_string()));
        m.insert("$collectionId".into(), json!(coll.id));
        m.insert("$databaseId".into(), json!(coll.db));
        m.insert("$createdAt".into(), json!(self.created_at));
        m.insert("$updatedAt".into(), json!(self.updated_at));
        m.insert("$permissions".into(), json!(self.permissions));
        for k in coll.attrs.keys() {
            if select.is_none_or(|s| s.contains(k)) {
                m.insert(k.clone(), self.data.get(k).cloned().unwrap_or(Value::Null));
            }
        }
        Value::Object(m)
    }
}

pub(crate) const DOC_COLUMNS: &str = "seq, id, created_at, updated_at, permissions, data";

pub(crate) fn get_doc(conn: &Connection, coll: &Collection, id: &str) -> AwResult<Option<Doc>> {
    Ok(conn
        .query_row(
            &format!("SELECT {DOC_COLUMNS} FROM documents WHERE db = ? AND coll = ? AND id = ?"),
            params![coll.db, coll.id, id],
            Doc::from_row,
        )
        .optional()?)
}

/// Whether the caller may read `doc`: collection `read` permission, or (with document
/// security) the document's own.
pub(crate) fn can_read(who: &Identity, coll: &Collection, doc: &Doc) -> bool {
    who.granted("read", &coll.permissions)
        || (coll.document_security && who.granted("read", &doc.permissions))
}

/// Checks a write the way Appwrite does: `create` needs the collection's permission; `update`
/// and `delete` the collection's, or (with document security) the document's. A user may
/// only grant roles it has. Default permissions of a document a user creates without any:
/// read, update and delete for that user.
pub(crate) fn check_write(
    who: &Identity,
    coll: &Collection,
    existing: Option<&Doc>,
    action: &str,
    permissions: Option<&[String]>,
) -> AwResult<()> {
    if *who == Identity::Key {
        return Ok(());
    }
    let collection_ok = who.granted(action, &coll.permissions);
    let doc_ok =
        coll.document_security && existing.is_some_and(|d| who.granted(action, &d.permissions));
    let ok = if action == "create" {
        collection_ok
    } else {
        collection_ok || doc_ok
    };
    if !ok {
        return Err(AwError::unauthorized());
    }
    if let Some(perms) = permissions {
        let roles = who.roles();
        for p in perms {
            match parse_permission(p) {
                Some((_, role)) if roles.contains(&role) => {}
                _ => {
                    return Err(AwError::new(
                        401,
                        "user_unauthorized",
                        format!("Permissions must be one of: ({})", roles.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The permissions a new document gets.
pub(crate) fn initial_permissions(who: &Identity, given: Option<Vec<String>>) -> Vec<String> {
    match (given, who) {
        (Some(p), _) => p,
        (None, Identity::User(u)) => ["read", "update", "delete"]
            .iter()
            .map(|a| format!("{a}(\"user:{u}\")"))
            .collect(),
        (None, _) => Vec::new(),
    }
}

/// Permissions given with a write (`None`: not given).
pub(crate) type Permissions = Option<Vec<String>>;

/// Splits a write's `data` into attributes and the `$permissions` it carries; other `$`
/// attributes are dropped (Appwrite ignores them from non-privileged callers).
pub(crate) fn split_data(
    mut data: Map<String, Value>,
) -> AwResult<(Map<String, Value>, Permissions)> {
    let perms = match data.remove("$permissions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<Vec<String>>(v)
                .map_err(|_| AwError::bad_request("$permissions must be an array of strings"))?,
        ),
    };
    if let Some(p) = &perms
        && let Some(bad) = p.iter().find(|p| parse_permission(p).is_none())
    {
        return Err(AwError::new(
            400,
            "general_argument_invalid",
            format!("Invalid permissions: {bad:?}"),
        ));
    }
    data.retain(|k, _| !k.starts_with('$'));
    Ok((data, perms))
}

/// Writes a whole document (insert or replace), stamping `$updatedAt` with `stamp`.
pub(crate) fn put_doc(
    conn: &Connection,
    coll: &Collection,
    id: &str,
    existing: Option<&Doc>,
    data: &Map<String, Value>,
    permissions: &[String],
    stamp: &str,
) -> AwResult<()> {
    let created = existing.map_or(stamp, |d| d.created_at.as_str());
    conn.execute(
        "INSERT INTO documents (db, coll, id, created_at, updated_at, permissions, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (db, coll, id) DO UPDATE SET updated_at = excluded.updated_at,
            permissions = excluded.permissions, data = excluded.data",
        params![
            coll.db,
            coll.id,
            id,
            created,
            stamp,
            serde_json::to_string(permissions).expect("json"),
            Value::Object(data.clone()).to_string(),
        ],
    )?;
    Ok(())
}
