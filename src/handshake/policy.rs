//! Which origins and paths a server accepts.

use std::{fmt, sync::Arc};

/// A callback deciding on an `Origin` header (`None` when absent).
pub type OriginCheck = dyn Fn(Option<&str>) -> bool + Send + Sync;

/// A callback deciding whether a path is served.
pub type PathCheck = dyn Fn(&str) -> bool + Send + Sync;

/// Which `Origin` headers the server accepts; others are answered with `403 Forbidden`.
///
/// Browsers always send `Origin`, so checking it stops other web sites from opening connections
/// with your users' cookies (cross-site WebSocket hijacking). Clients that are not browsers usually
/// send none; [`allow_list`](Self::allow_list) lets those through, a [`callback`](Self::callback)
/// decides for itself.
#[derive(Clone, Default)]
pub enum OriginPolicy {
    /// Every origin, and requests without one (the default).
    #[default]
    Any,
    /// Requests without `Origin`, and those whose `Origin` equals one of these (ASCII
    /// case-insensitively), such as `"https://example.com"`.
    AllowList(Vec<String>),
    /// The callback gets the `Origin` header (`None` when absent) and returns whether to accept.
    Callback(Arc<OriginCheck>),
}

impl OriginPolicy {
    /// Accepts requests without `Origin` and those from one of `origins`.
    pub fn allow_list<I, O>(origins: I) -> Self
    where
        I: IntoIterator<Item = O>,
        O: Into<String>,
    {
        OriginPolicy::AllowList(origins.into_iter().map(Into::into).collect())
    }

    /// Lets `accept` decide for each request (it gets `None` when there is no `Origin` header).
    pub fn callback(accept: impl Fn(Option<&str>) -> bool + Send + Sync + 'static) -> Self {
        OriginPolicy::Callback(Arc::new(accept))
    }

    /// Whether a request with this `Origin` header is accepted.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (OriginPolicy::Any, _) => true,
            (OriginPolicy::AllowList(_), None) => true,
            (OriginPolicy::AllowList(list), Some(origin)) => list
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
            (OriginPolicy::Callback(accept), origin) => accept(origin),
        }
    }
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginPolicy::Any => f.write_str("Any"),
            OriginPolicy::AllowList(list) => f.debug_tuple("AllowList").field(list).finish(),
            OriginPolicy::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// Which request paths the server serves; others are answered with `404 Not Found`.
///
/// The path is the request target without its query (`/chat` for `GET /chat?room=1`).
#[derive(Clone, Default)]
pub enum PathPolicy {
    /// Every path (the default).
    #[default]
    Any,
    /// Exactly these paths (case-sensitive), such as `"/ws"`.
    Only(Vec<String>),
    /// The callback gets the path and returns whether the server serves it.
    Callback(Arc<PathCheck>),
}

impl PathPolicy {
    /// Serves exactly these paths.
    pub fn only<I, P>(paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        PathPolicy::Only(paths.into_iter().map(Into::into).collect())
    }

    /// Lets `serves` decide for each path.
    pub fn callback(serves: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        PathPolicy::Callback(Arc::new(serves))
    }

    /// Whether the server serves this path.
    pub fn allows(&self, path: &str) -> bool {
        match self {
            PathPolicy::Any => true,
            PathPolicy::Only(paths) => paths.iter().any(|p| p == path),
            PathPolicy::Callback(serves) => serves(path),
        }
    }
}

impl fmt::Debug for PathPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPolicy::Any => f.write_str("Any"),
            PathPolicy::Only(list) => f.debug_tuple("Only").field(list).finish(),
            PathPolicy::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}
