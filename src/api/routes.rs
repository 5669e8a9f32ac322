//! The one route table: read from the operations poem-openapi routes by
//! (their metadata), never written by hand. It answers what the router
//! itself does not tell the layers around it: which methods a path allows
//! (`Allow` on 405), the route template of a matched request (metric and
//! log labels), and which scopes an operation needs (the security
//! requirement each operation declares in the spec).

use std::collections::HashMap;

use poem::http::Method;
use poem_openapi::registry::MetaApi;

use crate::domain::Scope;

/// The name of the OAuth 2.0 security scheme whose requirements carry scopes.
pub const OAUTH2_SCHEME: &str = "OAuth2";

struct Route {
    /// The spec's template: `/api/patients/{id}`.
    template: String,
    /// `GET, HEAD, PUT, PATCH, DELETE`
    allow: String,
    /// Per method: the operation id and the scopes it needs.
    operations: Vec<(Method, &'static str, Vec<Scope>)>,
}

pub struct RouteTable {
    /// Keyed by the router's pattern: `/api/patients/:param0`.
    routes: HashMap<String, Route>,
}

/// The router's pattern for a spec template (`{id}` → `:param0`, as
/// poem-openapi numbers path parameters).
fn router_pattern(template: &str) -> String {
    let mut n = 0;
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                let param = format!(":param{n}");
                n += 1;
                param
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl RouteTable {
    pub fn new(apis: Vec<MetaApi>) -> Self {
        let mut routes: HashMap<String, Route> = HashMap::new();
        for path in apis.into_iter().flat_map(|api| api.paths) {
            let pattern = router_pattern(&path.path);
            let route = routes.entry(pattern).or_insert_with(|| Route {
                template: path.path.clone(),
                allow: String::new(),
                operations: Vec::new(),
            });
            for op in path.operations {
                let scopes = op
                    .security
                    .iter()
                    .filter_map(|requirement| requirement.get(OAUTH2_SCHEME))
                    .flatten()
                    .filter_map(|name| Scope::ALL.into_iter().find(|s| s.as_str() == *name))
                    .collect();
                route
                    .operations
                    .push((op.method, op.operation_id.unwrap_or_default(), scopes));
            }
        }
        for route in routes.values_mut() {
            let mut methods: Vec<&str> = route
                .operations
                .iter()
                .map(|(m, _, _)| m.as_str())
                .collect();
            if methods.contains(&"GET") {
                methods.push("HEAD");
            }
            route.allow = methods.join(", ");
        }
        Self { routes }
    }

    /// The route of a pattern as the router reports it (nesting under `/`
    /// can double the leading slash).
    fn find(&self, pattern: &str) -> Option<&Route> {
        let pattern = pattern
            .strip_prefix('/')
            .filter(|p| p.starts_with('/'))
            .unwrap_or(pattern);
        self.routes.get(pattern)
    }

    /// `Allow` for a matched route pattern.
    pub fn allow(&self, pattern: &str) -> Option<&str> {
        self.find(pattern).map(|r| r.allow.as_str())
    }

    /// The spec's template for a matched route pattern.
    pub fn template(&self, pattern: &str) -> Option<&str> {
        self.find(pattern).map(|r| r.template.as_str())
    }

    /// The scopes the operation at (`method`, `pattern`) needs. HEAD is
    /// answered by GET.
    pub fn scopes(&self, method: &Method, pattern: &str) -> Option<&[Scope]> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.find(pattern)?
            .operations
            .iter()
            .find(|(m, _, _)| m == method)
            .map(|(_, _, scopes)| scopes.as_slice())
    }

    /// Every operation: (template, method, operation id).
    pub fn operations(&self) -> impl Iterator<Item = (&str, &Method, &'static str)> {
        self.routes.values().flat_map(|route| {
            route
                .operations
                .iter()
                .map(move |(method, id, _)| (route.template.as_str(), method, *id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_router_patterns_numbered_as_poem_openapi_does() {
        assert_eq!(
            router_pattern("/api/patients/{id}/history/{version}"),
            "/api/patients/:param0/history/:param1"
        );
        assert_eq!(router_pattern("/api/patients"), "/api/patients");
    }
}
