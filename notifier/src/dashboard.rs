//! `GET /`: the staff dashboard, a single-page app whose built assets
//! (`notifier/dashboard/dist`, built from `notifier/dashboard/src`) are
//! embedded in the binary.
//!
//! `index.html` is revalidated on every load (ETag); the scripts and styles
//! it names carry a content hash in their file name and are cached for a
//! year. Every answer carries a strict Content-Security-Policy: scripts,
//! styles and connections from this origin only, nothing inline, no frames.
//! The page never puts the token in a URL the server sees: a login link
//! carries it in the fragment (`/#token=…`), which browsers do not send.

use rust_embed::Embed;
use warp::{
    filters::BoxedFilter,
    http::{header, HeaderValue, StatusCode},
    reply::Response,
    Filter,
};

#[derive(Embed)]
#[folder = "dashboard/dist/"]
struct Assets;

/// Only what the page needs: its own scripts, styles and API (REST and
/// the WebSocket, which `'self'` covers in CSP Level 3 browsers).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long a hashed asset may be cached.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `GET /` and `GET /assets/<file>` (and HEAD).
pub fn routes() -> BoxedFilter<(Response,)> {
    let if_none_match = warp::header::optional::<String>("if-none-match");
    let read = || warp::get().or(warp::head()).unify();
    let index = warp::path::end()
        .and(read())
        .and(if_none_match)
        .map(|etag: Option<String>| serve("index.html", etag.as_deref()));
    let asset = warp::path!("assets" / String)
        .and(read())
        .and(if_none_match)
        .map(|name: String, etag: Option<String>| {
            serve(&format!("assets/{name}"), etag.as_deref())
        });
    index.or(asset).unify().boxed()
}

/// One embedded file, or 404; 304 when the browser's copy is current.
pub fn serve(path: &str, if_none_match: Option<&str>) -> Response {
    let Some(file) = Assets::get(path) else {
        return crate::error::json_error(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let fresh = if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        let mut r = Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(file.data.into_owned().into())
    };
    let headers = response.headers_mut();
    let content_type = match file.metadata.mimetype() {
        t if t.starts_with("text/") || t.ends_with("javascript") => format!("{t}; charset=utf-8"),
        t => t.to_string(),
    };
    let cache = if is_hashed(path) {
        IMMUTABLE
    } else {
        "no-cache"
    };
    for (name, value) in [
        (header::CONTENT_TYPE, content_type.as_str()),
        (header::CACHE_CONTROL, cache),
        (header::ETAG, etag.as_str()),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// `assets/app-3F2A9C1D.js`: the build names assets by their content.
fn is_hashed(path: &str) -> bool {
    let stem = path.rsplit('/').next().unwrap_or("");
    let stem = stem.split('.').next().unwrap_or("");
    stem.rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 8 && hash.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_assets_are_immutable_and_the_page_is_revalidated() {
        assert!(is_hashed("assets/app-3F2A9C1D.js"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("assets/app.js"));
        let page = serve("index.html", None);
        assert_eq!(page.status(), StatusCode::OK);
        let h = page.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        assert_eq!(
            serve("index.html", Some(&etag)).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(serve("nope.js", None).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_names_only_embedded_hashed_assets() {
        let page = Assets::get("index.html").expect("index.html is embedded");
        let html = std::str::from_utf8(&page.data).unwrap();
        let mut named = 0;
        for part in html.split('"').filter(|p| p.starts_with("/assets/")) {
            let path = &part[1..];
            assert!(Assets::get(path).is_some(), "{path} is embedded");
            assert!(is_hashed(path), "{path} has a content hash");
            let served = serve(path, None);
            assert_eq!(served.headers()[header::CACHE_CONTROL], IMMUTABLE);
            named += 1;
        }
        assert!(
            named >= 2,
            "the page loads its script and its styles: {html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "nothing inline"
        );
    }
}
