//! An independent implementation of Twilio's request signature
//! (`X-Twilio-Signature`), written from Twilio's published algorithm and
//! checked against its published test vectors. It shares no code with the
//! validator in `ingest`, so a bug in one is caught by the other.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The signature Twilio puts in `X-Twilio-Signature` for a form POST to `url`.
///
/// `url` is taken exactly as given (scheme, host, port if any, path, query).
/// The parameters are sorted by name, then by value for repeated names, in
/// code-point order; each name and value (decoded) is appended to the URL
/// with no separator. The result is HMAC-SHA1 keyed by the auth token,
/// encoded as standard padded base64.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // Byte order of UTF-8 is code-point order.
    sorted.sort_unstable();

    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The parameters of Twilio's published vectors, deliberately not in
    /// sorted order.
    fn voice_params() -> Vec<(String, String)> {
        pairs(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("From", "+14158675309"),
            ("Digits", "1234"),
            ("Caller", "+14158675309"),
        ])
    }

    #[test]
    fn published_vector_url_as_given() {
        assert_eq!(
            sign(TOKEN, URL, &voice_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn published_vector_https_with_standard_port() {
        assert_eq!(
            sign(
                TOKEN,
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &voice_params()
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
    }

    #[test]
    fn published_vector_http_with_standard_port() {
        assert_eq!(
            sign(
                TOKEN,
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                &voice_params()
            ),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
    }

    #[test]
    fn published_vector_http_with_custom_port() {
        assert_eq!(
            sign(
                TOKEN,
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &voice_params()
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
    }

    /// Twilio's row: a request to `https://mycompany.com:1234/…` must
    /// validate against the signature of the URL with the port removed.
    /// The signer's part of that is the no-port value.
    #[test]
    fn published_vector_custom_port_validates_against_no_port_value() {
        let no_port = "https://mycompany.com:1234/myapp.php?foo=1&bar=2".replace(":1234", "");
        assert_eq!(no_port, URL);
        assert_eq!(
            sign(TOKEN, &no_port, &voice_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn published_vector_repeated_parameter_names() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(sign(TOKEN, URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn parameter_order_does_not_matter_but_values_do() {
        let mut reversed = voice_params();
        reversed.reverse();
        assert_eq!(
            sign(TOKEN, URL, &reversed),
            sign(TOKEN, URL, &voice_params())
        );
        let mut changed = voice_params();
        changed[3].1 = "1235".into();
        assert_ne!(
            sign(TOKEN, URL, &changed),
            sign(TOKEN, URL, &voice_params())
        );
        assert_ne!(
            sign("54321", URL, &voice_params()),
            sign(TOKEN, URL, &voice_params())
        );
    }
}
