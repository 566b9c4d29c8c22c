//! Listing a whole scope on an id keyset: page after page of rows whose id is greater than the
//! last one seen, in id order, until a short page. PocketBase and Appwrite list digests and
//! query candidates this way; each backend says how to ask for one page.

use std::future::Future;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One page of a listing: its rows and the bytes of the answer.
pub(crate) struct Page {
    /// The rows, in id order.
    pub rows: Vec<Map<String, Value>>,
    /// Size of the answer's body.
    pub bytes: u64,
}

/// Lists every row: `page(after)` asks for at most `per_page` rows with an id (the `id_field`)
/// greater than `after` (`None`: from the start), in id order. `visit` sees each row with its
/// id; its error ends the listing. A row without an id, ids out of order or an overfull page are
/// [`Error::MalformedResponse`]. Returns the bytes listed.
pub(crate) async fn list_by_id<F, Fut>(
    backend: &'static str,
    id_field: &str,
    per_page: usize,
    mut page: F,
    mut visit: impl FnMut(&str, Map<String, Value>) -> Result<()>,
) -> Result<u64>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page>>,
{
    let malformed = |message: String| Error::MalformedResponse { backend, message };
    let mut after: Option<String> = None;
    let mut bytes = 0u64;
    loop {
        let Page { rows, bytes: b } = page(after.clone()).await?;
        bytes += b;
        let n = rows.len();
        if n > per_page {
            return Err(malformed(format!("{n} rows for a page of {per_page}")));
        }
        for row in rows {
            let Some(id) = row.get(id_field).and_then(Value::as_str).map(str::to_owned) else {
                return Err(malformed(format!("a listed row has no `{id_field}`")));
            };
            if after.as_deref().is_some_and(|a| id.as_str() <= a) {
                return Err(malformed(format!(
                    "the listing is not in increasing `{id_field}` order"
                )));
            }
            visit(&id, row)?;
            after = Some(id);
        }
        if n < per_page {
            return Ok(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rows(ids: &[&str]) -> Vec<Map<String, Value>> {
        ids.iter()
            .map(|id| json!({"id": id}).as_object().unwrap().clone())
            .collect()
    }

    #[tokio::test]
    async fn pages_until_a_short_one_and_checks_the_order() {
        let pages = [vec!["a", "b"], vec!["c", "d"], vec!["e"]];
        let mut asked = Vec::new();
        let mut seen = Vec::new();
        let bytes = list_by_id(
            "t",
            "id",
            2,
            |after| {
                asked.push(after.clone());
                let i = asked.len() - 1;
                let page = rows(&pages[i]);
                async move {
                    Ok(Page {
                        rows: page,
                        bytes: 10,
                    })
                }
            },
            |id, _| {
                seen.push(id.to_owned());
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(bytes, 30);
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert_eq!(asked, [None, Some("b".into()), Some("d".into())]);

        for bad in [vec!["b", "a"], vec!["a", "b", "c"]] {
            let e = list_by_id(
                "t",
                "id",
                2,
                |_| {
                    let page = rows(&bad);
                    async move {
                        Ok(Page {
                            rows: page,
                            bytes: 0,
                        })
                    }
                },
                |_, _| Ok(()),
            )
            .await
            .unwrap_err();
            assert!(matches!(e, Error::MalformedResponse { .. }), "{e:?}");
        }
        // The visitor's error ends the listing.
        let e = list_by_id(
            "t",
            "id",
            2,
            |_| async {
                Ok(Page {
                    rows: rows(&["a"]),
                    bytes: 0,
                })
            },
            |_, _| Err(Error::InvalidInput("stop".into())),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
    }
}
