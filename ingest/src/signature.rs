//! `X-Twilio-Signature`, exactly as Twilio computes it.
//!
//! The signed string is the full public URL followed by every POST
//! parameter as name + value, sorted by name (and by value for repeated
//! names). The signature is base64(HMAC-SHA1(auth token, that string)).
//! Like Twilio's own libraries we accept the URL both with its port removed
//! and with the scheme's standard port added, since proxies differ on it.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

fn mac_over(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature Twilio would send for this URL and these parameters.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac_over(auth_token, url, params).finalize().into_bytes())
}

/// Checks a signature header in constant time against every accepted form
/// of the URL. A missing or undecodable header never validates.
pub fn is_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> bool {
    let Some(header) = header else {
        return false;
    };
    let Ok(expected) = STANDARD.decode(header.trim()) else {
        return false;
    };
    url_variants(url).iter().any(|candidate| {
        mac_over(auth_token, candidate, params)
            .verify_slice(&expected)
            .is_ok()
    })
}

/// The URL as given, without its port, and with the scheme's standard port.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, hp)) => (format!("{user}@"), hp),
        None => (String::new(), authority),
    };
    // An IPv6 literal keeps its colons inside brackets.
    let port_sep = if hostport.starts_with('[') {
        hostport.find("]:").map(|i| i + 1)
    } else {
        hostport.rfind(':')
    };
    match port_sep {
        Some(i) => {
            let host = &hostport[..i];
            variants.push(format!("{scheme}://{userinfo}{host}{tail}"));
        }
        None => {
            let standard = match scheme.to_ascii_lowercase().as_str() {
                "https" => Some(443),
                "http" => Some(80),
                _ => None,
            };
            if let Some(port) = standard {
                variants.push(format!("{scheme}://{userinfo}{hostport}:{port}{tail}"));
            }
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    // Twilio's published test vectors (twilio-python / twilio-node suites).
    #[test]
    fn published_vectors() {
        assert_eq!(
            compute(TOKEN, URL, &params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            compute(
                TOKEN,
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &params()
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            compute(
                TOKEN,
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                &params()
            ),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert_eq!(
            compute(
                TOKEN,
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &params()
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        let repeated: Vec<(String, String)> = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            compute(TOKEN, URL, &repeated),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        assert!(is_valid(
            TOKEN,
            URL,
            &repeated,
            Some("IK+Dwps556ElfBT0I3Rgjkr1wJU=")
        ));
    }

    #[test]
    fn validates_with_and_without_the_port() {
        // Signed without a port, requested (as we see it) with the standard port.
        assert!(is_valid(
            TOKEN,
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        ));
        // Signed with the standard port, configured without it.
        assert!(is_valid(
            TOKEN,
            URL,
            &params(),
            Some("kvajT1Ptam85bY51eRf/AJRuM3w=")
        ));
        // A non-standard port validates against the no-port signature.
        assert!(is_valid(
            TOKEN,
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &params(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        ));
        assert!(is_valid(
            TOKEN,
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &params(),
            Some("Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
        ));
    }

    #[test]
    fn refuses_what_does_not_match() {
        assert!(!is_valid(TOKEN, URL, &params(), None));
        assert!(!is_valid(TOKEN, URL, &params(), Some("")));
        assert!(!is_valid(TOKEN, URL, &params(), Some("not base64 at all!")));
        assert!(!is_valid(
            "54321",
            URL,
            &params(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        ));
        let mut tampered = params();
        tampered[2].1 = "9999".into();
        assert!(!is_valid(
            TOKEN,
            URL,
            &tampered,
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        ));
        assert!(!is_valid(
            TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        ));
    }

    #[test]
    fn url_variants_cover_ports_and_ipv6() {
        assert_eq!(
            url_variants("https://h/p"),
            vec!["https://h/p".to_string(), "https://h:443/p".to_string()]
        );
        assert_eq!(
            url_variants("http://h:8080/p?q=1"),
            vec![
                "http://h:8080/p?q=1".to_string(),
                "http://h/p?q=1".to_string()
            ]
        );
        assert_eq!(
            url_variants("http://[::1]:8080/p"),
            vec![
                "http://[::1]:8080/p".to_string(),
                "http://[::1]/p".to_string()
            ]
        );
    }
}
