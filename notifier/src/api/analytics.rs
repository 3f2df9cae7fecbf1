//! Figures over a time range, for the dashboard's charts.

use std::sync::Arc;

use warp::{http::StatusCode, reply::Response};

use super::{docs::ReadErrors, json_reply, Request, Scope};
use crate::{
    error::ApiError,
    figures::{self, Analytics},
    paging::RangeQuery,
    App,
};

/// Order volume by status and per day (in the restaurant's time zone), the
/// rating distribution and average, first-response times of the bot and of
/// staff, and the top items in the restaurant's language over `[from, to)`
/// (default: the 30 days up to now; at most 366 days, else 400).
#[utoipa::path(
    get,
    path = "/api/restaurants/{id}/analytics",
    tag = "analytics",
    params(("id" = Uuid, Path, description = "The restaurant"), RangeQuery),
    responses(
        (status = 200, description = "The figures of the range", body = Analytics),
        ReadErrors,
    ),
)]
pub async fn get_analytics(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let (range, from, to) =
        RangeQuery::parse(&request.query, chrono::Utc::now()).map_err(ApiError::BadRequest)?;
    let report =
        figures::analytics(&app.pool, scope.restaurant_id, from, to, range.utc_offset).await?;
    Ok(json_reply(StatusCode::OK, &report))
}
