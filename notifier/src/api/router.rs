//! Matching a request against the operations of the OpenAPI document.
//!
//! Pure: built once from the document, then asked for each request.

use utoipa::openapi::{
    path::{Operation, ParameterIn},
    OpenApi, PathItem,
};
use warp::http::Method;

use super::Handler;

/// The prefix every route shares; its `{id}` is the restaurant.
pub const SCOPE_PREFIX: &str = "/api/restaurants/{id}/";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

struct Route {
    method: Method,
    segments: Vec<Segment>,
    /// The query parameters the operation documents.
    query: Vec<String>,
    handler: Handler,
}

/// The outcome of matching one request.
pub enum Match {
    /// The handler, and the path parameters in template order (`id` first).
    Found {
        handler: Handler,
        params: Vec<(String, String)>,
        /// The query parameters it documents (any other is refused).
        query: Vec<String>,
    },
    /// The path exists with other methods.
    WrongMethod {
        allowed: Vec<Method>,
    },
    NotFound,
}

/// Every operation of the document, by method and path template.
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Fails when an operation has no operation id or no handler, or a path
    /// is not under [`SCOPE_PREFIX`].
    pub fn from_spec(
        spec: &OpenApi,
        handler_for: impl Fn(&str) -> Option<Handler>,
    ) -> Result<Router, String> {
        let mut routes = vec![];
        for (path, item) in &spec.paths.paths {
            if !path.starts_with(SCOPE_PREFIX) {
                return Err(format!("{path} is not under {SCOPE_PREFIX}"));
            }
            let segments = parse_template(path);
            for (method, operation) in operations(item) {
                let id = operation
                    .operation_id
                    .as_deref()
                    .ok_or_else(|| format!("{method} {path} has no operation id"))?;
                let handler =
                    handler_for(id).ok_or_else(|| format!("{method} {path}: no handler {id}"))?;
                let query = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Query)
                    .map(|p| p.name.clone())
                    .collect();
                routes.push(Route {
                    method,
                    segments: segments.clone(),
                    query,
                    handler,
                });
            }
        }
        Ok(Router { routes })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn find(&self, method: &Method, path: &str) -> Match {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut allowed = vec![];
        for route in &self.routes {
            let Some(params) = bind(&route.segments, &parts) else {
                continue;
            };
            if route.method == *method {
                return Match::Found {
                    handler: route.handler,
                    params,
                    query: route.query.clone(),
                };
            }
            allowed.push(route.method.clone());
        }
        match allowed.is_empty() {
            true => Match::NotFound,
            false => Match::WrongMethod { allowed },
        }
    }
}

fn parse_template(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

/// The parameters of `parts` under `segments`, if they match. Parameters
/// are percent-decoded; an empty one matches nothing.
fn bind(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    if segments.len() != parts.len() {
        return None;
    }
    let mut params = vec![];
    for (segment, part) in segments.iter().zip(parts) {
        match segment {
            Segment::Literal(literal) if literal == part => {}
            Segment::Literal(_) => return None,
            Segment::Param(_) if part.is_empty() => return None,
            Segment::Param(name) => {
                let value = percent_decode(part)?;
                params.push((name.clone(), value));
            }
        }
    }
    Some(params)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn operations(item: &PathItem) -> Vec<(Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parameters_by_template() {
        let segments = parse_template("/api/restaurants/{id}/orders/{oid}/status");
        let parts: Vec<&str> = "api/restaurants/r1/orders/o%2D1/status"
            .split('/')
            .collect();
        assert_eq!(
            bind(&segments, &parts),
            Some(vec![
                ("id".to_string(), "r1".to_string()),
                ("oid".to_string(), "o-1".to_string())
            ])
        );
        let short: Vec<&str> = "api/restaurants/r1/orders".split('/').collect();
        assert_eq!(bind(&segments, &short), None);
        let empty: Vec<&str> = "api/restaurants//orders/o/status".split('/').collect();
        assert_eq!(bind(&segments, &empty), None);
        let other: Vec<&str> = "api/restaurants/r1/orders/o/state".split('/').collect();
        assert_eq!(bind(&segments, &other), None);
    }

    #[test]
    fn percent_decoding_refuses_broken_escapes() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
