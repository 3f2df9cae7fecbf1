//! Parts of the OpenAPI document shared by every operation: the bearer
//! scheme, the error body and the error answers.

use serde::Serialize;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    IntoResponses, Modify, ToSchema,
};

/// Every answer that is not a success.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `not_found`, `method_not_allowed`,
    /// `illegal_transition`, `payload_too_large`, `unavailable`, `timeout`,
    /// `internal`, or a WhatsApp rule (`outside_session_window`,
    /// `template_not_approved`).
    pub error: String,
    /// The rule's name again, on a 409 a WhatsApp rule refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why, for a person; never contains a token.
    pub reason: String,
}

/// The answers of every read.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    /// A query parameter is malformed.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// No token, or a bad or expired one.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// No such restaurant, conversation or order (or another restaurant's).
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// The database or the bus is unavailable: retry.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// The answers of every write.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    /// The body is not the JSON the operation takes, or a value is refused.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// No token, or a bad or expired one.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// No such restaurant, conversation or order (or another restaurant's).
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// The body is over 16 KiB.
    #[response(status = 413)]
    PayloadTooLarge(#[to_schema] ErrorBody),
    /// The database or the bus is unavailable: retry.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorBody),
}

/// `Authorization: Bearer <JWT>` (HS256; claims `sub`, `restaurant_id`,
/// `role`, `exp`).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A dashboard JWT (HS256): `sub`, `restaurant_id`, `role` (staff | admin), `exp`.",
                    ))
                    .build(),
            ),
        );
    }
}
