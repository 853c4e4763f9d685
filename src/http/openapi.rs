//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "jpki-face", description = "Self-hosted eKYC with the My Number Card. Errors are RFC 9457 problem details with a stable `code`."),
    components(schemas(super::error::Problem)),
    modifiers(&Security, &ExactRequests),
    tags((name = "sessions"), (name = "enrollments"), (name = "transactions"), (name = "webhooks"), (name = "ops"))
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
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`server.metrics_token`, when configured"))
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

/// Request bodies the server parses strictly (`deny_unknown_fields`, or a multipart reader that refuses
/// unknown parts): their schemas say so, so that a schema-valid request is one the server accepts.
const STRICT_REQUEST_SCHEMAS: &[&str] = &[
    "CreateSession",
    "EnrollmentUpload",
    "VerifyUpload",
    "EnrollmentJson",
    "VerifyJson",
];

/// Completes what the derive cannot say about the request bodies: no unknown members (also in each
/// variant of a tagged enum), base64 images as `format: byte`, and at most the default
/// `liveness.max_frames` frames.
struct ExactRequests;

impl Modify for ExactRequests {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
        fn tighten(schema: &mut Schema) {
            match schema {
                Schema::Object(object) => {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                    for (name, property) in object.properties.iter_mut() {
                        let RefOr::T(property) = property else {
                            continue;
                        };
                        match (name.as_str(), property) {
                            ("selfie", Schema::Object(p)) if p.format.is_none() => {
                                p.format = Some(SchemaFormat::KnownFormat(KnownFormat::Byte));
                            }
                            ("liveness_frame" | "liveness_frames", Schema::Array(a)) => {
                                a.max_items = Some(crate::liveness::DEFAULT_MAX_FRAMES);
                                if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) =
                                    &mut a.items
                                {
                                    if let RefOr::T(Schema::Object(item)) = item.as_mut() {
                                        if item.format.is_none() {
                                            item.format =
                                                Some(SchemaFormat::KnownFormat(KnownFormat::Byte));
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Schema::OneOf(one_of) => {
                    for item in one_of.items.iter_mut() {
                        if let RefOr::T(item) = item {
                            tighten(item);
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in STRICT_REQUEST_SCHEMAS {
            if let Some(RefOr::T(schema)) = components.schemas.get_mut(*name) {
                tighten(schema);
            }
        }
    }
}

/// The document of every route of [`super::router`], derived from the routes themselves.
pub fn document() -> utoipa::openapi::OpenApi {
    super::api().split_for_parts().1
}
