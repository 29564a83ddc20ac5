//! Cursor paging of long lists (`GET /api/v1/incidents`, `GET /api/v1/audit`): newest first,
//! `limit` items a page, and `next`, the cursor of the page after, or `null` at the end. A
//! cursor is the id of the last item given, so pages hold steady while new items come in.

use super::error::ApiError;

/// Items a page when `limit` is not given, and at most.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 10_000;

/// `?limit=`: 1 to [`MAX_LIMIT`].
pub fn limit(text: Option<&str>) -> Result<i64, ApiError> {
    match text {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid limit {s:?}: expected 1 to {MAX_LIMIT}"))
            }),
    }
}

/// `?cursor=`: the `next` of an earlier page.
pub fn cursor(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid cursor {s:?}: expected the `next` of an earlier page"
                ))
            }),
    }
}

/// A page of `items` read with `limit + 1`: the first `limit`, and the cursor after them
/// when there were more.
pub fn page<T>(mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next = more
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten();
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_says_where_the_next_begins() {
        assert_eq!(
            page(vec![9, 8, 7], 2, |i| *i),
            (vec![9, 8], Some("8".into()))
        );
        assert_eq!(page(vec![9, 8], 2, |i| *i), (vec![9, 8], None));
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(
            limit(Some("0")).unwrap_err().message,
            "invalid limit \"0\": expected 1 to 10000"
        );
        assert_eq!(cursor(Some("12")).unwrap(), Some(12));
        assert!(cursor(Some("abc"))
            .unwrap_err()
            .message
            .starts_with("invalid cursor"));
    }
}
