//! Which endpoint URLs the service may call. Production: `https://` only, and every address the host
//! resolves to must be a public unicast address (no private, loopback, link-local, unique-local,
//! multicast, documentation or otherwise special range, IPv4 or IPv6, including IPv4 addresses
//! embedded in IPv6 forms); the connection then goes to the address that was checked, so a DNS
//! answer that changes between the check and the connect (rebinding) cannot bypass it.
//! Development: `http://` additionally for loopback hosts, and no address check.

use crate::domain::Environment;
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The shape an endpoint URL must have, exactly as the OpenAPI document states it for `url`: `https://`,
/// a host name (labels of letters, digits and `-`; the last one starts with a letter), an optional port,
/// an optional path/query of printable ASCII; or, in development only, `http://` to a loopback literal.
/// Production also refuses `http://` and hosts that resolve to non-public addresses.
pub const URL_PATTERN: &str = r"^(https://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9]*|http://(localhost|127\.0\.0\.1|\[::1\]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[!-~]*)?$";

static URL_SHAPE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(URL_PATTERN).expect("the URL pattern compiles"));

/// Why a URL or its address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a valid absolute URL")]
    Invalid,
    #[error("only https:// URLs are accepted (http:// only for loopback in development)")]
    Scheme,
    #[error("URLs with a user name or password are not accepted")]
    Credentials,
    #[error("the URL is longer than 2048 characters")]
    TooLong,
    #[error("the host resolves to an address that is not public")]
    PrivateAddress,
    #[error("the host does not resolve")]
    Unresolvable,
    #[error(
        "the URL must be https://host[:port][/path] with a host name (letters, digits, '-', '.')"
    )]
    Shape,
}

impl UrlRefused {
    /// The error class recorded for an attempt.
    pub fn class(&self) -> &'static str {
        match self {
            UrlRefused::Unresolvable => "dns",
            _ => "refused_address",
        }
    }
}

/// Checks an endpoint URL when it is registered (and again before each attempt).
pub fn check_url(url: &str, environment: Environment) -> Result<Url, UrlRefused> {
    if url.len() > 2048 {
        return Err(UrlRefused::TooLong);
    }
    let parsed = Url::parse(url).map_err(|_| UrlRefused::Invalid)?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefused::Invalid);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    match (parsed.scheme(), environment) {
        ("https", _) => {}
        ("http", Environment::Development) if is_loopback_host(&parsed) => {}
        _ => return Err(UrlRefused::Scheme),
    }
    if environment == Environment::Production {
        if let Some(ip) = literal_ip(&parsed) {
            if !is_public(ip) {
                return Err(UrlRefused::PrivateAddress);
            }
        }
    }
    if !URL_SHAPE.is_match(url) {
        return Err(UrlRefused::Shape);
    }
    Ok(parsed)
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(v4)) => v4.is_loopback(),
        Some(url::Host::Ipv6(v6)) => v6.is_loopback(),
        None => false,
    }
}

/// The address to connect to, checked. `None` in development (no pin, no check).
pub async fn resolve_checked(
    url: &Url,
    environment: Environment,
) -> Result<Option<SocketAddr>, UrlRefused> {
    if environment == Environment::Development {
        return Ok(None);
    }
    let host = url.host_str().ok_or(UrlRefused::Invalid)?;
    let port = url.port_or_known_default().ok_or(UrlRefused::Invalid)?;
    if let Some(ip) = literal_ip(url) {
        return if is_public(ip) {
            Ok(Some(SocketAddr::new(ip, port)))
        } else {
            Err(UrlRefused::PrivateAddress)
        };
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| UrlRefused::Unresolvable)?
        .collect();
    pick_public(&addrs)
}

/// Every resolved address must be public (one private answer refuses the host); the first is used.
pub fn pick_public(addrs: &[SocketAddr]) -> Result<Option<SocketAddr>, UrlRefused> {
    let first = *addrs.first().ok_or(UrlRefused::Unresolvable)?;
    if addrs.iter().all(|a| is_public(a.ip())) {
        Ok(Some(first))
    } else {
        Err(UrlRefused::PrivateAddress)
    }
}

/// A globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Forms that embed an IPv4 address are judged by that address.
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: the server cannot tell where it leads
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || (s[0] & 0xe000) != 0x2000) // outside global unicast 2000::/3
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0; 5]
        && (s[5] == 0xffff || (s[5] == 0 && !ip.is_loopback() && !ip.is_unspecified()))
    {
        return Some(tail);
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_ranges() {
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "127.0.0.1",
            "100.64.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip(private)), "{private} must be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "203.0.114.1",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn ipv6_ranges_and_embedded_ipv4() {
        for private in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100::1",
            // IPv4-mapped, -compatible, NAT64 and 6to4 forms of private addresses
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::192.168.0.1",
            "2002:c0a8:0101::1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip(private)), "{private} must be refused");
        }
        for public in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn the_url_shape_is_the_documented_pattern() {
        use Environment::Development;
        for ok in [
            "https://hooks.my-bank.co.jp/jpki/v1?x=1&y=%20",
            "https://rp.example:8443/h",
            "https://rp.example:65535",
            "https://localhost",
        ] {
            assert!(check_url(ok, Development).is_ok(), "{ok}");
        }
        assert!(check_url("http://127.0.0.1:9/h", Development).is_ok());
        assert!(check_url("http://[::1]/h", Development).is_ok());
        for shape in [
            "https://93.184.216.34/h",
            "https://my_bank.jp/h",
            "https://rp.example/a b",
            "https://rp.example?x",
            "http://127.0.0.2/h",
        ] {
            assert_eq!(
                check_url(shape, Development).err(),
                Some(UrlRefused::Shape),
                "{shape}"
            );
        }
        // The OpenAPI document states the same pattern for `url`.
        let schema = serde_json::to_value(
            <crate::usecase::webhooks::CreateWebhook as utoipa::PartialSchema>::schema(),
        )
        .unwrap();
        assert_eq!(schema["properties"]["url"]["pattern"], URL_PATTERN);
    }

    #[test]
    fn url_rules_by_environment() {
        use Environment::*;
        assert!(check_url("https://rp.example/hooks", Production).is_ok());
        assert_eq!(
            check_url("http://rp.example/hooks", Production),
            Err(UrlRefused::Scheme)
        );
        assert_eq!(
            check_url("http://127.0.0.1:9/h", Production),
            Err(UrlRefused::Scheme)
        );
        assert!(check_url("http://127.0.0.1:9/h", Development).is_ok());
        assert!(check_url("http://[::1]:9/h", Development).is_ok());
        assert!(check_url("http://localhost:9/h", Development).is_ok());
        assert_eq!(
            check_url("http://rp.example/h", Development),
            Err(UrlRefused::Scheme)
        );
        assert_eq!(
            check_url("https://10.0.0.1/h", Production),
            Err(UrlRefused::PrivateAddress)
        );
        assert_eq!(
            check_url("https://[::ffff:127.0.0.1]/h", Production),
            Err(UrlRefused::PrivateAddress)
        );
        assert_eq!(
            check_url("https://u:p@rp.example/h", Production),
            Err(UrlRefused::Credentials)
        );
        assert_eq!(
            check_url("ftp://rp.example/h", Development),
            Err(UrlRefused::Scheme)
        );
        assert_eq!(
            check_url("not a url", Development),
            Err(UrlRefused::Invalid)
        );
    }

    #[tokio::test]
    async fn production_resolves_and_refuses_loopback_names_and_literals() {
        use Environment::*;
        let url = |u: &str| Url::parse(u).unwrap();
        // `localhost` resolves (from /etc/hosts) to loopback: refused after resolution.
        assert_eq!(
            resolve_checked(&url("https://localhost/h"), Production).await,
            Err(UrlRefused::PrivateAddress)
        );
        assert_eq!(
            resolve_checked(&url("https://[::1]:8443/h"), Production).await,
            Err(UrlRefused::PrivateAddress)
        );
        let public = resolve_checked(&url("https://8.8.8.8/h"), Production).await;
        assert_eq!(
            public,
            Ok(Some("8.8.8.8:443".parse().unwrap())),
            "pinned to the checked address"
        );
        assert_eq!(
            resolve_checked(&url("http://localhost:9/h"), Development).await,
            Ok(None),
            "development checks nothing"
        );
    }

    #[test]
    fn one_private_answer_refuses_the_host() {
        let public: SocketAddr = "8.8.8.8:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert_eq!(pick_public(&[public]), Ok(Some(public)));
        assert_eq!(
            pick_public(&[public, private]),
            Err(UrlRefused::PrivateAddress)
        );
        assert_eq!(pick_public(&[]), Err(UrlRefused::Unresolvable));
    }
}
