//! Verified claims (issue 23): the signed `verified_claims` of a verified enrollment, checked with
//! an independent JWT library (`jsonwebtoken`, not the code that signs) against the published JWKS,
//! against a JSON Schema of `verified_claims` written here from the specification, and the rules:
//! data minimisation, key rotation, audited access, who may ask and about which enrollment.

use crate::cards::*;
use crate::helpers::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

crate::on_both_backends!(
    signed_claims_verify_with_the_jwks_and_follow_the_rules,
    rotation_keeps_old_tokens_verifiable_during_the_grace_period,
    only_verified_enrollments_have_claims,
);

const ISSUER: &str = "https://ekyc.example.jp";

/// A fresh claims key: (PKCS#8 DER base64 for `claims.signing_key`, SPKI DER base64 for
/// `claims.previous_keys[].public_key`).
fn new_key() -> (String, String) {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let private = STANDARD.encode(key.to_pkcs8_der().unwrap().as_bytes());
    let public = STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());
    (private, public)
}

fn claims_toml(private: &str, kid: &str, extra: &str) -> String {
    format!(
        "[claims]\nissuer = \"{ISSUER}\"\nsigning_key = \"{private}\"\nkey_id = \"{kid}\"\n{extra}"
    )
}

async fn app_with(backend: Backend, claims: &str) -> TestApp {
    let mut options = cards().app_options(backend);
    options.toml.push_str(claims);
    spawn_app_with(options).await
}

/// Enrolls person A with A's selfie (verified) or with B's (rejected); returns the enrollment id.
async fn enroll(app: &TestApp, selfie: &str) -> String {
    let cards = cards();
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let response = post_enrollment(app, &client_token(&session), &card, selfie, &[]).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn get_claims(
    app: &TestApp,
    bearer: &str,
    id: &str,
    accept: Option<&str>,
    claims: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/enrollments/{id}/verified-claims")))
        .bearer_auth(bearer);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(claims) = claims {
        request = request.query(&[("claims", claims)]);
    }
    request.send().await.unwrap()
}

async fn token(app: &TestApp, id: &str, claims: Option<&str>) -> String {
    let response = get_claims(app, &app.api_key, id, None, claims).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwt");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.text().await.unwrap()
}

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Verifies `token` with `jwks` using `jsonwebtoken` (ES256 only, `iss` checked; the tokens carry
/// no `exp`: they state a past verification).
fn verify(token: &str, jwks: &JwkSet) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks
        .find(&kid)
        .ok_or(format!("kid {kid} not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.required_spec_claims = ["iss", "sub", "iat"]
        .into_iter()
        .map(String::from)
        .collect();
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

/// A JSON Schema for a `verified_claims` response, written from OpenID Identity Assurance schema
/// definition 1.0 (openid-ida-verified-claims): §5.2 base elements (`verification` and `claims`
/// required), §5.4 the verification element (`trust_framework` required), §5.4.3 the evidence
/// element (`type` one of the four predefined types) with its per-type members: `document`
/// (`check_details[].check_method` required, `document_details.type` required), `electronic_record`
/// (`record.type`), `vouch` (`attestation.type`), `electronic_signature` (`signature_type`,
/// `issuer`, `serial_number` required). Times are `YYYY-MM-DDThh:mm[:ss]TZD`, dates `YYYY-MM-DD`.
fn verified_claims_schema() -> Value {
    let time = json!({"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2})?(Z|[+-]\\d{2}:\\d{2})$"});
    let date = json!({"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"});
    let check_details = json!({"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["check_method"],
        "properties": {"check_method": {"type": "string"}, "organization": {"type": "string"},
                       "check_id": {"type": "string"}, "time": time}}});
    let when = |kind: &str, then: Value| json!({"if": {"properties": {"type": {"const": kind}}}, "then": then});
    let document = json!({"properties": {
        "check_details": check_details,
        "time": time,
        "document_details": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string"},
            "document_number": {"type": "string"},
            "date_of_issuance": date, "date_of_expiry": date,
            "issuer": {"type": "object", "properties": {
                "name": {"type": "string"},
                "country_code": {"type": "string", "pattern": "^[A-Z]{2,3}$"},
                "jurisdiction": {"type": "string"}}}}}}});
    let record = json!({"properties": {
        "check_details": check_details,
        "record": {"type": "object", "required": ["type"]}}});
    let vouch = json!({"properties": {
        "check_details": check_details,
        "attestation": {"type": "object", "required": ["type"]}}});
    let signature = json!({
        "required": ["signature_type", "issuer", "serial_number"],
        "properties": {"signature_type": {"type": "string"}, "issuer": {"type": "string"},
                       "serial_number": {"type": "string"}, "created_at": time}});
    let evidence = json!({
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["document", "electronic_record", "vouch", "electronic_signature"]}},
        "allOf": [when("document", document), when("electronic_record", record),
                  when("vouch", vouch), when("electronic_signature", signature)]});
    let verification = json!({
        "type": "object",
        "required": ["trust_framework"],
        "properties": {
            "trust_framework": {"type": "string"},
            "assurance_level": {"type": "string"},
            "assurance_process": {"type": "object", "properties": {
                "policy": {"type": "string"}, "procedure": {"type": "string"},
                "assurance_details": {"type": "array", "minItems": 1}}},
            "time": time,
            "verification_process": {"type": "string"},
            "evidence": {"type": "array", "minItems": 1, "items": evidence}}});
    let claims = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "birthdate": date, "gender": {"type": "string"},
        "address": {"type": "object", "properties": {"formatted": {"type": "string"}}}}});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["iss", "sub", "iat", "txn", "verified_claims"],
        "properties": {
            "iss": {"type": "string"}, "sub": {"type": "string"}, "iat": {"type": "integer"},
            "txn": {"type": "string"},
            "verified_claims": {
                "type": "object",
                "required": ["verification", "claims"],
                "additionalProperties": false,
                "properties": {"verification": verification, "claims": claims}}}})
}

fn assert_valid(instance: &Value) {
    let schema = verified_claims_schema();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{instance:#}");
}

/// The payload of `token` with one claim changed, under the original signature.
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["verified_claims"]["claims"]["birthdate"] = json!("1970-01-01");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

async fn signed_claims_verify_with_the_jwks_and_follow_the_rules(backend: Backend) {
    let (private, _) = new_key();
    let app = app_with(backend, &claims_toml(&private, "claims-2026", "")).await;
    let id = enroll(&app, A_SELFIE).await;

    // A JWS that verifies with the published JWKS, by a library that is not ours.
    let jwt = token(&app, &id, None).await;
    let keys = jwks(&app).await;
    assert_eq!(keys.keys.len(), 1);
    let claims = verify(&jwt, &keys).expect("the token verifies");
    assert_valid(&claims);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["txn"], id.as_str());
    let vc = &claims["verified_claims"];
    assert_eq!(vc["verification"]["trust_framework"], "jp_aml");
    assert_eq!(vc["verification"]["verification_process"], id.as_str());
    let evidence = &vc["verification"]["evidence"];
    assert_eq!(evidence[0]["type"], "document");
    assert_eq!(
        evidence[0]["document_details"]["type"],
        "jp_individual_number_card"
    );
    let methods: Vec<&str> = evidence[0]["check_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check_method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["vcrypt", "token", "bvr"]);
    assert_eq!(evidence[1]["type"], "electronic_signature");
    assert!(!evidence[1]["serial_number"].as_str().unwrap().is_empty());
    assert_eq!(vc["claims"]["name"], "山田\u{3000}太郎");
    assert_eq!(vc["claims"]["birthdate"], "1990-01-02");
    assert_eq!(vc["claims"]["gender"], "male");
    assert!(vc["claims"]["address"]["formatted"].is_string());

    // A tampered token fails: a changed claim under the old signature, and a flipped signature byte.
    assert!(verify(&tampered(&jwt), &keys).is_err());
    let mut flipped = jwt.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert!(verify(&String::from_utf8(flipped).unwrap(), &keys).is_err());

    // The same claims as JSON on request; the `claims` parameter limits them.
    let response = get_claims(&app, &app.api_key, &id, Some("application/json"), None).await;
    assert_eq!(response.status(), 200);
    let json_form: Value = response.json().await.unwrap();
    assert_valid(&json_form);
    assert_eq!(json_form["verified_claims"], claims["verified_claims"]);
    let only_birthdate = r#"{"verified_claims":{"verification":{"trust_framework":null},"claims":{"birthdate":null}}}"#;
    let limited = verify(&token(&app, &id, Some(only_birthdate)).await, &keys).unwrap();
    assert_valid(&limited);
    assert_eq!(
        limited["verified_claims"]["claims"],
        json!({"birthdate": "1990-01-02"})
    );

    // Malformed `claims` → 400; no acceptable format → 406.
    for bad in ["not json", r#"{"verified_claims":{"claims":{}}}"#] {
        let response = get_claims(&app, &app.api_key, &id, None, Some(bad)).await;
        assert_problem(response, 400, "malformed_request").await;
    }
    let response = get_claims(&app, &app.api_key, &id, Some("text/html"), None).await;
    assert_problem(response, 406, "not_acceptable").await;

    // Every opening of the identity is in the audit log, with the claim names and no values.
    let rows = app.ctx.svc.store.audit_rows(&app.tenant_id).await.unwrap();
    let issued: Vec<_> = rows
        .iter()
        .filter(|r| r.event == "enrollment.verified_claims_issued")
        .collect();
    assert_eq!(issued.len(), 3, "two JWTs and one JSON answer");
    assert!(issued.iter().all(|r| r.subject == id));
    assert!(issued.iter().all(|r| !r.details.contains("1990")));
    assert!(issued
        .iter()
        .any(|r| r.details.contains(claims["jti"].as_str().unwrap())));

    // A client token is refused; another tenant sees nothing.
    let session = app.enrollment_session().await;
    let response = get_claims(&app, &client_token(&session), &id, None, None).await;
    assert_problem(response, 403, "forbidden").await;
    let (_, other_key) = app.other_tenant().await;
    let response = get_claims(&app, &other_key, &id, None, None).await;
    assert_problem(response, 404, "not_found").await;

    // The discovery fragment names what is supported.
    let discovery: Value = app
        .client
        .get(app.url("/.well-known/openid-ida-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["trust_frameworks_supported"], json!(["jp_aml"]));
    assert_eq!(
        discovery["documents_supported"],
        json!(["jp_individual_number_card"])
    );
    assert_eq!(
        discovery["documents_check_methods_supported"],
        json!(["vcrypt", "token", "bvr"])
    );
    assert_eq!(
        discovery["jwks_uri"],
        format!("{ISSUER}/.well-known/jwks.json")
    );

    // A deleted (crypto-shredded) enrollment has no claims.
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let response = get_claims(&app, &app.api_key, &id, None, None).await;
    assert_problem(response, 404, "not_found").await;
}

async fn rotation_keeps_old_tokens_verifiable_during_the_grace_period(backend: Backend) {
    let (old_private, old_public) = new_key();
    let app = app_with(backend, &claims_toml(&old_private, "claims-old", "")).await;
    let id = enroll(&app, A_SELFIE).await;
    let old_token = token(&app, &id, None).await;

    // Rotated: a new current key, the old one published until its grace period ends.
    let (new_private, _) = new_key();
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let rotated = app_with(
        backend,
        &claims_toml(
            &new_private,
            "claims-new",
            &format!("previous_keys = [{{ key_id = \"claims-old\", public_key = \"{old_public}\", until = \"{until}\" }}]\n"),
        ),
    )
    .await;
    let keys = jwks(&rotated).await;
    let kids: Vec<_> = keys
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, ["claims-new", "claims-old"]);
    assert!(
        verify(&old_token, &keys).is_ok(),
        "an old token still verifies"
    );

    // After the grace period the old key is gone, and so is the old token's validity.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let expired = app_with(
        backend,
        &claims_toml(
            &new_private,
            "claims-new",
            &format!("previous_keys = [{{ key_id = \"claims-old\", public_key = \"{old_public}\", until = \"{past}\" }}]\n"),
        ),
    )
    .await;
    let keys = jwks(&expired).await;
    assert_eq!(keys.keys.len(), 1);
    assert!(verify(&old_token, &keys).is_err());
}

async fn only_verified_enrollments_have_claims(backend: Backend) {
    // Development without a configured key: one is generated, and tokens verify with its JWKS.
    // `sub` is the RP's own subject_ref here.
    let app = app_with(
        backend,
        &format!("[claims]\nissuer = \"{ISSUER}\"\nsubject = \"subject_ref\"\n"),
    )
    .await;
    let rejected = enroll(&app, B_SELFIE).await;
    let response = get_claims(&app, &app.api_key, &rejected, None, None).await;
    assert_problem(response, 409, "enrollment_not_verified").await;
    let response = get_claims(&app, &app.api_key, "enr_doesnotexist", None, None).await;
    assert_problem(response, 404, "not_found").await;
    let response = get_claims(&app, "jfk_live_nope", &rejected, None, None).await;
    assert_problem(response, 401, "unauthenticated").await;
    let verified = enroll(&app, A_SELFIE).await;
    let jwt = token(&app, &verified, None).await;
    let claims = verify(&jwt, &jwks(&app).await).expect("verifies");
    assert_eq!(claims["sub"], "customer-1");
    assert_eq!(claims["txn"], verified.as_str());
}
