//! The `card` JSON part of an enrollment (api.md): decoding it, and refusing anything that could carry the My Number.

use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The decoded bytes of every field of the `card` JSON. Nothing here is ever printed.
#[derive(Clone)]
pub struct CardSubmission {
    pub kenmen_face: Vec<u8>,
    pub kenmen_cvc: Vec<u8>,
    pub kenmen_card_signature: Vec<u8>,
    pub jpki_certificate: Vec<u8>,
    pub jpki_signature: Vec<u8>,
    pub hojo: Option<HojoSubmission>,
}

/// The optional 入力補助AP files. `integrity` holds DF31 (a hash of the My Number), so it is zeroised on drop.
#[derive(Clone)]
pub struct HojoSubmission {
    pub attributes: Vec<u8>,
    pub integrity: Zeroizing<Vec<u8>>,
    pub cvc: Vec<u8>,
}

impl std::fmt::Debug for CardSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardSubmission([redacted])")
    }
}

impl std::fmt::Debug for HojoSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HojoSubmission([redacted])")
    }
}

/// Why the `card` JSON was refused before any check ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardInputError {
    /// A field that could carry the My Number was sent (API 422 `my_number_not_accepted`). The value is not kept.
    #[error("a field that could carry the My Number was sent: {field}")]
    MyNumberNotAccepted { field: String },
    /// Not JSON, a missing or unexpected field, or bad base64 (API 400 `malformed_request`). Never quotes values.
    #[error("malformed card data: {detail}")]
    Malformed { detail: String },
}

impl CardInputError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MyNumberNotAccepted { .. } => "my_number_not_accepted",
            Self::Malformed { .. } => "malformed_request",
        }
    }
}

fn malformed(detail: impl Into<String>) -> CardInputError {
    CardInputError::Malformed {
        detail: detail.into(),
    }
}

/// Key names (lower-case, `_`/`-` removed) that could carry the My Number or its image, wherever they appear.
const FORBIDDEN_ANYWHERE: &[&str] = &[
    "mynumber",
    "mynumberimage",
    "kojinbango",
    "kojinbangou",
    "individualnumber",
    "personalnumber",
    "kojinbangoimage",
    "pina",
    "shogobangoa",
];

fn normalise_key(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '_' && *c != '-' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

/// True if `key` under `parent` could carry the My Number: the names above anywhere, 入力補助AP EF 0001
/// under `hojo`, 券面AP EF 0005 under `kenmen`.
fn is_forbidden(parent: &str, key: &str) -> bool {
    let k = normalise_key(key);
    if FORBIDDEN_ANYWHERE.contains(&k.as_str()) {
        return true;
    }
    match parent {
        "hojo" => matches!(k.as_str(), "ef0001" | "ef1" | "number"),
        "kenmen" => matches!(k.as_str(), "ef0005" | "ef5" | "numberimage"),
        _ => false,
    }
}

/// Walks the whole JSON for forbidden keys before anything else, so even an otherwise malformed body
/// that carries the My Number is answered with `my_number_not_accepted`.
fn scan(parent: &str, value: &Value, depth: usize) -> Result<(), CardInputError> {
    if depth > 8 {
        return Err(malformed("nested too deeply"));
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if is_forbidden(parent, k) {
                    let field = if parent.is_empty() {
                        k.clone()
                    } else {
                        format!("{parent}.{k}")
                    };
                    // The key name is client-controlled but not personal data; cap it anyway.
                    return Err(CardInputError::MyNumberNotAccepted {
                        field: field.chars().take(64).collect(),
                    });
                }
                scan(k, v, depth + 1)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|v| scan(parent, v, depth + 1)),
        _ => Ok(()),
    }
}

/// Decodes the `card` JSON of api.md. See [`CardInputError`] for what is refused.
pub fn parse_card_json(json: &[u8]) -> Result<CardSubmission, CardInputError> {
    // serde_json's syntax errors give only a position, never the input, so they are safe to pass on.
    let mut value: Value =
        serde_json::from_slice(json).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let result = decode(&value);
    // The base64 of the integrity record carries DF31 (a hash of the My Number): wipe our copy.
    if let Some(Value::String(s)) = value.pointer_mut("/hojo/integrity") {
        zeroize::Zeroize::zeroize(s);
    }
    result
}

fn decode(value: &Value) -> Result<CardSubmission, CardInputError> {
    scan("", value, 0)?;
    let root = value
        .as_object()
        .ok_or_else(|| malformed("card: want an object"))?;
    only_keys(root, "card", &["kenmen", "jpki", "hojo"])?;
    let kenmen = object(root, "kenmen")?;
    only_keys(kenmen, "kenmen", &["face", "cvc", "card_signature"])?;
    let jpki = object(root, "jpki")?;
    only_keys(jpki, "jpki", &["signing_certificate", "signature"])?;
    let kenmen_face = bytes(kenmen, "kenmen", "face")?;
    // EF 0005 (the rendered My Number, FF40) sent in place of EF 0002.
    if kenmen_face.starts_with(&[0xFF, 0x40]) {
        return Err(CardInputError::MyNumberNotAccepted {
            field: "kenmen.face".into(),
        });
    }
    let hojo = match root.get("hojo") {
        None | Some(Value::Null) => None,
        Some(Value::Object(h)) => {
            only_keys(h, "hojo", &["attributes", "integrity", "cvc"])?;
            let attributes = bytes(h, "hojo", "attributes")?;
            // EF 0001 (FF10: the My Number digits) sent in place of EF 0002.
            if attributes.starts_with(&[0xFF, 0x10]) {
                return Err(CardInputError::MyNumberNotAccepted {
                    field: "hojo.attributes".into(),
                });
            }
            Some(HojoSubmission {
                attributes,
                integrity: Zeroizing::new(bytes(h, "hojo", "integrity")?),
                cvc: bytes(h, "hojo", "cvc")?,
            })
        }
        Some(_) => return Err(malformed("hojo: want an object")),
    };
    Ok(CardSubmission {
        kenmen_face,
        kenmen_cvc: bytes(kenmen, "kenmen", "cvc")?,
        kenmen_card_signature: bytes(kenmen, "kenmen", "card_signature")?,
        jpki_certificate: bytes(jpki, "jpki", "signing_certificate")?,
        jpki_signature: bytes(jpki, "jpki", "signature")?,
        hojo,
    })
}

fn only_keys(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), CardInputError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(malformed(format!(
            "{path}: unexpected field `{}`",
            k.chars().take(64).collect::<String>()
        ))),
        None => Ok(()),
    }
}

fn object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, CardInputError> {
    match map.get(key) {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(malformed(format!("{key}: want an object"))),
        None => Err(malformed(format!("{key}: missing"))),
    }
}

fn bytes(map: &Map<String, Value>, parent: &str, key: &str) -> Result<Vec<u8>, CardInputError> {
    let s = match map.get(key) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(malformed(format!("{parent}.{key}: want a base64 string"))),
        None => return Err(malformed(format!("{parent}.{key}: missing"))),
    };
    let bytes = decode_base64(s).ok_or_else(|| malformed(format!("{parent}.{key}: not base64")))?;
    if bytes.is_empty() {
        return Err(malformed(format!("{parent}.{key}: empty")));
    }
    Ok(bytes)
}

/// Standard or URL-safe alphabet, padded or not.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"kenmen": {"face": "AQID", "cvc": "BAU=", "card_signature": "Bgc"},
               "jpki": {"signing_certificate": "CAk-", "signature": "Cgs_"}})
    }

    #[test]
    fn decodes_all_fields_in_any_base64_flavour() {
        let sub = parse_card_json(good().to_string().as_bytes()).unwrap();
        assert_eq!(sub.kenmen_face, vec![1, 2, 3]);
        assert_eq!(sub.kenmen_cvc, vec![4, 5]);
        assert_eq!(sub.kenmen_card_signature, vec![6, 7]);
        assert_eq!(sub.jpki_certificate, vec![8, 9, 0x3E]);
        assert!(sub.hojo.is_none());
        assert_eq!(format!("{sub:?}"), "CardSubmission([redacted])");
    }

    #[test]
    fn my_number_carriers_are_refused_without_echoing_the_value() {
        let cases = [
            json!({"my_number": "123456789012"}),
            json!({"kenmen": {"face": "AQID", "kojin_bango": "123456789012"}}),
            json!({"hojo": {"EF0001": "123456789012"}}),
            json!({"kenmen": {"ef0005": "AAAA"}}),
            json!({"kenmen": {"My-Number-Image": "AAAA"}}),
            json!({"extra": [{"myNumber": 1}]}),
        ];
        for case in cases {
            let err = parse_card_json(case.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.code(), "my_number_not_accepted", "{case}");
            assert!(!format!("{err:?} {err}").contains("123456789012"));
        }
        // EF 0001 bytes (FF10 …) smuggled into the attributes field.
        let mut v = good();
        v["hojo"] = json!({"attributes": base64::engine::general_purpose::STANDARD.encode([0xFF, 0x10, 0x0C, b'1']),
                           "integrity": "AQ==", "cvc": "AQ=="});
        assert_eq!(
            parse_card_json(v.to_string().as_bytes())
                .unwrap_err()
                .code(),
            "my_number_not_accepted"
        );
    }

    #[test]
    fn malformed_inputs_name_the_field_but_not_the_value() {
        assert_eq!(
            parse_card_json(b"{not json").unwrap_err().code(),
            "malformed_request"
        );
        let mut v = good();
        v["kenmen"]["face"] = json!("%%%secret%%%");
        let err = parse_card_json(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err,
            CardInputError::Malformed {
                detail: "kenmen.face: not base64".into()
            }
        );
        let mut v = good();
        v["jpki"].as_object_mut().unwrap().remove("signature");
        assert!(parse_card_json(v.to_string().as_bytes())
            .unwrap_err()
            .to_string()
            .contains("jpki.signature: missing"));
        let mut v = good();
        v["kenmen"]["surprise"] = json!("x");
        assert!(parse_card_json(v.to_string().as_bytes())
            .unwrap_err()
            .to_string()
            .contains("surprise"));
    }
}
