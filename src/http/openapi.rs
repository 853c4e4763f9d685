//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "jpki-face", description = "Self-hosted eKYC with the My Number Card. Errors are RFC 9457 problem details with a stable `code`."),
    components(schemas(super::error::Problem)),
    modifiers(&Security),
    tags((name = "sessions"), (name = "enrollments"), (name = "transactions"), (name = "webhooks"), (name = "claims"), (name = "ops"))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Tenant API key `jfk_live_…`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Session client token `jfc_…`"))
                    .build(),
            ),
        );
    }
}

/// The document of every route of [`super::router`], derived from the routes themselves.
pub fn document() -> utoipa::openapi::OpenApi {
    super::api().split_for_parts().1
}
