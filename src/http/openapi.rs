//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "jpki-face", description = "Self-hosted eKYC with the My Number Card. Errors are RFC 9457 problem details with a stable `code`."),
    components(schemas(super::error::Problem)),
    modifiers(&Security),
    tags((name = "sessions"), (name = "enrollments"), (name = "transactions"), (name = "webhooks"), (name = "claims"), (name = "search"), (name = "ops"), (name = "reviews"))
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
    "NewEntry",
    "SelfieUpload",
    "SelfieJson",
    "ReviewBody",
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
                                p.min_length = Some(4);
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

/// The `card` member (JSON) and part (multipart, as `application/json`) of the enrollment operations:
/// what `card::parse_card_json` accepts, member for member. A schema can say the shape, not that the
/// base64 holds a signed CVC: well-formed card data that does not verify is 422 `invalid_card_data`
/// (or a `rejected` enrollment).
const CARD_JSON_SCHEMA: &str = r#"{
  "type": "object",
  "description": "The card data as read from the chip (docs/reader.md, api.md): DER/TLV, base64.",
  "required": ["kenmen", "jpki"],
  "additionalProperties": false,
  "properties": {
    "kenmen": {
      "type": "object", "required": ["face", "cvc", "card_signature"], "additionalProperties": false,
      "properties": {
        "face": {"type": "string", "format": "byte", "minLength": 4, "description": "券面AP EF 0002"},
        "cvc": {"type": "string", "format": "byte", "minLength": 4, "description": "券面AP EF 0004"},
        "card_signature": {"type": "string", "format": "byte", "minLength": 4, "description": "the 券面AP key's signature over tbs_card"}
      }
    },
    "jpki": {
      "type": "object", "required": ["signing_certificate", "signature"], "additionalProperties": false,
      "properties": {
        "signing_certificate": {"type": "string", "format": "byte", "minLength": 4, "description": "DER"},
        "signature": {"type": "string", "format": "byte", "minLength": 4, "description": "over tbs_jpki"}
      }
    },
    "hojo": {
      "type": ["object", "null"], "required": ["attributes", "integrity", "cvc"], "additionalProperties": false,
      "properties": {
        "attributes": {"type": "string", "format": "byte", "minLength": 4, "description": "入力補助AP EF 0002"},
        "integrity": {"type": "string", "format": "byte", "minLength": 4, "description": "入力補助AP EF 0003"},
        "cvc": {"type": "string", "format": "byte", "minLength": 4, "description": "入力補助AP EF 0004"}
      }
    }
  }
}"#;

/// What the derive cannot say, added to the finished document: exact request bodies and the card's
/// JSON shape (also as the multipart `card` part's content type).
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::encoding::Encoding;
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{Ref, RefOr};
    ExactRequests.modify(doc);
    let card: Schema = serde_json::from_str(CARD_JSON_SCHEMA).expect("the card schema is valid");
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert("CardJson".into(), RefOr::T(card));
    for holder in ["EnrollmentJson", "EnrollmentUpload"] {
        if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(holder) {
            if let Some(card) = o.properties.get_mut("card") {
                *card = RefOr::Ref(Ref::from_schema_name("CardJson"));
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        let Some(op) = item.post.as_mut() else {
            continue;
        };
        let Some(body) = op.request_body.as_mut() else {
            continue;
        };
        if let Some(content) = body.content.get_mut("multipart/form-data") {
            if matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/EnrollmentUpload"))
            {
                content.encoding.insert(
                    "card".into(),
                    Encoding::builder()
                        .content_type(Some("application/json"))
                        .build(),
                );
            }
        }
    }
}

/// The document of every route of [`super::router`], derived from the routes themselves.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = super::api().split_for_parts().1;
    complete(&mut doc);
    doc
}
