//! Cursor pagination shared by the list endpoints: `?limit=1..=100&cursor=...` -> `{items, next_cursor}`.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::cursor::Cursors;
use crate::domain::UserId;
use crate::error::{Result, ValidationError};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;

/// The query of a list request (documentation; `parse` reads it, refusing repeats and unknown names).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// Items per page, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// A parsed page request: how many, and after which id.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<uuid::Uuid>,
}

/// Reads `limit` and `cursor`, each at most once, nothing else. A cursor that this server did not
/// make for this list and this viewer is a 422.
pub fn parse(
    query: Option<&str>,
    cursors: &Cursors,
    list: &str,
    viewer: UserId,
) -> Result<PageRequest> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| ValidationError::field("query", "is not a valid query string"))?;
    let mut errors = ValidationError::default();
    let (mut limit, mut cursor) = (None, None);
    for (k, v) in pairs {
        let slot = match k.as_str() {
            "limit" => &mut limit,
            "cursor" => &mut cursor,
            _ => {
                errors.push(k, "is not a parameter of this request");
                continue;
            }
        };
        if slot.replace(v).is_some() {
            errors.push(k, "is given more than once");
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.push("limit", "must be an integer from 1 to 100");
                0
            }
        },
    };
    let after = cursor.and_then(|c| {
        let id = cursors.decode(list, viewer, &c);
        if id.is_none() {
            errors.push("cursor", "is not a cursor this endpoint returned to you");
        }
        id
    });
    errors.into_result()?;
    Ok(PageRequest { limit, after })
}

/// Cuts a page fetched with `limit + 1` rows to `limit` and makes the cursor of the next page.
pub fn finish<T>(
    mut rows: Vec<T>,
    req: PageRequest,
    id: impl Fn(&T) -> uuid::Uuid,
    cursors: &Cursors,
    list: &str,
    viewer: UserId,
) -> (Vec<T>, Option<String>) {
    if rows.len() > req.limit as usize {
        rows.truncate(req.limit as usize);
        let next = rows.last().map(|r| cursors.encode(list, viewer, id(r)));
        (rows, next)
    } else {
        (rows, None)
    }
}

/// A name of a closed vocabulary, or why not.
pub fn one_of<T: std::str::FromStr>(v: &str, names: &[&str]) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("must be one of {}", names.join(", ")))
}

/// Fills a filter's `slot` from a valid value; an invalid one, or a second, is an error of `key`.
pub fn once<T>(
    errors: &mut ValidationError,
    key: &str,
    slot: &mut Option<T>,
    value: Result<T, String>,
) {
    match value {
        Err(why) => errors.push(key, why),
        Ok(v) => {
            if slot.replace(v).is_some() {
                errors.push(key, "is given more than once");
            }
        }
    }
}
