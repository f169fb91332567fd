//! Cursor pages: lists come newest first, `limit` at a time; `next_cursor` (the last id of the
//! page) fetches the next page, and is null on the last one.

use formica_core::Id;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Items per page unless `limit` says otherwise.
pub const PAGE_DEFAULT: u32 = 20;

/// A page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items, newest first.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from items fetched with `limit`, whose ids `id` gives.
    pub fn new(data: Vec<T>, limit: u32, id: impl Fn(&T) -> Id) -> Self {
        let next_cursor = if data.len() as u32 >= limit {
            data.last().map(|item| id(item).to_string())
        } else {
            None
        };
        Page { data, next_cursor }
    }
}

/// `?cursor=...&limit=...`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The cursor as an id.
    pub fn before(&self) -> Result<Option<Id>, ApiError> {
        self.cursor
            .as_deref()
            .map(|cursor| {
                cursor.parse().map_err(|_| {
                    ApiError::new("invalid_cursor", "not a cursor this API gave").field("cursor")
                })
            })
            .transpose()
    }

    /// The page size.
    pub fn limit(&self) -> u32 {
        self.limit
            .unwrap_or(PAGE_DEFAULT)
            .clamp(1, formica_store::trade::PAGE_MAX)
    }
}
