//! The console's cookies: their names, reading one from a request, writing one scoped to the
//! console (`Path=/console; HttpOnly; SameSite=Strict`, `Secure` unless a development setup turned
//! it off), and the name of the forms' CSRF field.

use axum::http::{header, HeaderMap, HeaderValue};

pub const SESSION_COOKIE: &str = "jf_console";
pub const LOGIN_COOKIE: &str = "jf_login";
pub const LANG_COOKIE: &str = "jf_lang";
/// The hidden field of every form.
pub const CSRF_FIELD: &str = "csrf";

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value scoped to the console. `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names and values are ours (base64url, codes): always valid header text.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cookies_are_found_among_several() {
        let h = headers(&[("cookie", "a=1; jf_console=tok; jf_lang=en")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, LANG_COOKIE).as_deref(), Some("en"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
    }

    #[test]
    fn session_cookies_carry_every_attribute() {
        let c = set_cookie(SESSION_COOKIE, "tok", 60, true);
        assert_eq!(
            c.to_str().unwrap(),
            "jf_console=tok; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
