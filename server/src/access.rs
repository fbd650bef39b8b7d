//! Who may call what: bearer tokens from the configuration, each granted read, write or admin
//! access to listed namespaces, checked for every call before it reaches a service.
//!
//! The check is a tower layer in front of every gRPC service, so no method can forget it:
//! a GraphService method not in `needed`'s table needs admin. The health service answers
//! anyone, for probes; reflection needs a known token. Tokens are configured by their SHA-256
//! hash, so the configuration holds nothing that works as a token.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::audit::Caller;
use crate::config::{Access, SecuritySection};
use crate::service::NAMESPACE_HEADER;

/// What a call to `path` needs.
#[derive(Debug, PartialEq, Eq)]
enum Needed {
    Nothing,
    AnyToken,
    /// This access to the namespace the call names (`x-prism-namespace`).
    Namespace(Access),
}

const GRAPH_SERVICE: &str = "/prism.graph.v1.GraphService/";

fn needed(path: &str) -> Needed {
    if path.starts_with("/grpc.health.v1.Health/") {
        return Needed::Nothing;
    }
    let Some(method) = path.strip_prefix(GRAPH_SERVICE) else {
        return Needed::AnyToken;
    };
    Needed::Namespace(match method {
        "GetVertex" | "GetEdge" | "Traverse" | "ShortestPath" | "AllPaths" | "DetectCycles" | "PageRank"
        | "CommunityDetection" | "SubscribePageRank" | "ExportSnapshot" => Access::Read,
        "CreateVertex"
        | "UpdateVertex"
        | "DeleteVertex"
        | "CreateEdge"
        | "DeleteEdge"
        | "BatchCreateVertices"
        | "BatchCreateEdges" => Access::Write,
        _ => Access::Admin,
    })
}

/// A token's SHA-256, as the configuration writes it: 64 lowercase hex digits.
pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A new random token (256 bits from the operating system's generator), and its hash.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token: String = std::iter::once("prism_".to_string()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect();
    let hash = sha256_hex(&token);
    (token, hash)
}

struct Token {
    name: String,
    /// (namespace or `*`, access).
    grants: Vec<(String, Access)>,
}

/// The configured tokens by hash; none configured means an open server.
pub struct Tokens {
    by_hash: HashMap<String, Token>,
}

impl Tokens {
    /// The tokens of a validated `security` section.
    pub fn new(section: &SecuritySection) -> Self {
        let by_hash = section
            .tokens
            .iter()
            .map(|token| {
                let grants = token.grants.iter().map(|g| (g.namespace.clone(), g.access)).collect();
                (token.sha256.to_ascii_lowercase(), Token { name: token.name.clone(), grants })
            })
            .collect();
        Tokens { by_hash }
    }

    /// Whether a call to `path` with `headers` may go on, and who made it.
    fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Caller>, Status> {
        let needed = needed(path);
        if needed == Needed::Nothing {
            return Ok(None);
        }
        let Some(header) = headers.get(http::header::AUTHORIZATION) else {
            return Err(Status::unauthenticated("authorization: this server needs `authorization: Bearer <token>`"));
        };
        let secret = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))?;
        let Some(token) = self.by_hash.get(&sha256_hex(secret.trim())) else {
            return Err(Status::unauthenticated("authorization: the token is not one this server knows"));
        };
        if let Needed::Namespace(access) = needed {
            let namespace = headers
                .get(NAMESPACE_HEADER)
                .and_then(|value| value.to_str().ok())
                .filter(|name| !name.is_empty())
                .unwrap_or(prism_dataflows::Namespace::DEFAULT);
            let granted = token.grants.iter().any(|(ns, has)| (ns == "*" || ns == namespace) && *has >= access);
            if !granted {
                return Err(Status::permission_denied(format!(
                    "token {:?} has no {} access to namespace {namespace:?}",
                    token.name,
                    access.name()
                )));
            }
        }
        Ok(Some(Caller(token.name.clone())))
    }
}

/// The layer that checks every call against the tokens (with none, it lets every call by).
#[derive(Clone)]
pub struct AccessLayer {
    tokens: Option<Arc<Tokens>>,
}

impl AccessLayer {
    pub fn new(security: Option<&SecuritySection>) -> Self {
        let section = security.filter(|section| !section.tokens.is_empty());
        AccessLayer { tokens: section.map(|section| Arc::new(Tokens::new(section))) }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Checked<S>;

    fn layer(&self, inner: S) -> Checked<S> {
        Checked { inner, tokens: self.tokens.clone() }
    }
}

/// A service behind the access check.
#[derive(Clone)]
pub struct Checked<S> {
    inner: S,
    tokens: Option<Arc<Tokens>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Checked<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<S::Future, std::future::Ready<Result<http::Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Some(tokens) = &self.tokens else {
            return Either::Left(self.inner.call(request));
        };
        match tokens.check(request.uri().path(), request.headers()) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                Either::Left(self.inner.call(request))
            }
            Err(status) => Either::Right(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GrantSection, TokenSection};

    fn headers(token: Option<&str>, namespace: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        }
        if let Some(namespace) = namespace {
            headers.insert(NAMESPACE_HEADER, namespace.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_call_needs_a_known_token_with_a_grant_of_enough_access_on_its_namespace() {
        let (reader, reader_hash) = new_token();
        let (writer, writer_hash) = new_token();
        let grant = |namespace: &str, access| GrantSection { namespace: namespace.into(), access };
        let section = SecuritySection {
            tls: None,
            audit_log: None,
            tokens: vec![
                TokenSection {
                    name: "reader".into(),
                    sha256: reader_hash,
                    grants: vec![grant("social", Access::Read)],
                },
                TokenSection { name: "writer".into(), sha256: writer_hash, grants: vec![grant("*", Access::Write)] },
            ],
        };
        let tokens = Tokens::new(&section);
        let create = "/prism.graph.v1.GraphService/CreateVertex";
        let get = "/prism.graph.v1.GraphService/GetVertex";
        let code = |path, token, namespace| tokens.check(path, &headers(token, namespace)).map_err(|s| s.code());

        assert_eq!(code("/grpc.health.v1.Health/Check", None, None), Ok(None));
        assert_eq!(code(get, None, None), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(get, Some("prism_guess"), None), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(get, Some(&reader), Some("social")), Ok(Some(Caller("reader".into()))));
        assert_eq!(code(get, Some(&reader), None), Err(tonic::Code::PermissionDenied), "default is not social");
        assert_eq!(code(create, Some(&reader), Some("social")), Err(tonic::Code::PermissionDenied));
        assert_eq!(code(create, Some(&writer), Some("anything")), Ok(Some(Caller("writer".into()))));
        let apply = "/prism.graph.v1.GraphService/ApplySnapshot";
        let denied = tokens.check(apply, &headers(Some(&writer), Some("social"))).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("admin") && denied.message().contains("social"), "{}", denied.message());
    }

    #[test]
    fn tokens_are_random_and_configured_by_their_hash() {
        let (a, hash) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("prism_") && a.len() == 6 + 64, "{a}");
        assert_eq!(hash, sha256_hex(&a));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
