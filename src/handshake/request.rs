//! Parsing and checking an upgrade request head: no I/O, so tests and the fuzz target call it
//! directly.

use super::{config::AcceptConfig, error::Rejection};

/// An upgrade request that passed every check of [`check_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request target as sent, query included (`/chat?room=1`).
    pub target: String,
    /// The `Host` header.
    pub host: String,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// The subprotocol the server selected from the client's offer, if any.
    pub protocol: Option<String>,
    /// Every header as sent, in order (names as the client spelled them).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The client's `Sec-WebSocket-Key`, from which the answer's `Sec-WebSocket-Accept` is made.
    pub(crate) key: String,
}

impl UpgradeRequest {
    /// The path of the request target, without the query (`/chat` for `/chat?room=1`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The first header with this name (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses and checks the bytes received so far on a connection that should start with an upgrade
/// request.
///
/// Returns `Ok(None)` while the head is incomplete and may still fit in
/// [`AcceptConfig::max_head_size`], `Ok(Some(request))` when it is complete and acceptable, and the
/// [`Rejection`] (whose [`status`](Rejection::status) is the HTTP answer) otherwise. `received`
/// must be everything read from the connection: bytes after the head are a rejection, because a
/// client may not send frames before the server's 101.
///
/// ```
/// use ws_stream_mux::handshake::{check_request, AcceptConfig, Rejection};
///
/// let config = AcceptConfig::default();
/// let head = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// assert_eq!(check_request(&head[..20], &config), Ok(None));
/// assert_eq!(check_request(head, &config).unwrap().unwrap().path(), "/ws");
///
/// let old = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
/// let rejection = check_request(old, &config).unwrap_err();
/// assert_eq!(rejection, Rejection::UnsupportedVersion);
/// assert_eq!(rejection.status(), 426);
/// ```
pub fn check_request(
    received: &[u8],
    config: &AcceptConfig,
) -> Result<Option<UpgradeRequest>, Rejection> {
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(received) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if received.len() < config.max_head_size => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(Rejection::HeadTooLarge),
        Err(httparse::Error::TooManyHeaders) => return Err(Rejection::HeadTooLarge),
        Err(err) => return Err(Rejection::Malformed(err.to_string())),
    };
    if head_len > config.max_head_size {
        return Err(Rejection::HeadTooLarge);
    }
    if head_len < received.len() {
        return Err(Rejection::TrailingBytes);
    }
    // A complete parse always fills these in.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Rejection::Malformed("incomplete request line".into()));
    };
    if method != "GET" {
        return Err(Rejection::NotGet);
    }
    if version < 1 {
        return Err(Rejection::HttpVersion);
    }
    let fields = Fields(request.headers);

    let host = match fields.all("host").as_slice() {
        [host] => text(host).ok_or(Rejection::Host)?,
        _ => return Err(Rejection::Host),
    };
    if !fields.has_token("upgrade", "websocket") {
        return Err(Rejection::NoUpgrade);
    }
    if !fields.has_token("connection", "upgrade") {
        return Err(Rejection::NoConnectionUpgrade);
    }
    match fields.all("sec-websocket-version").as_slice() {
        [version] if version.trim_ascii() == b"13" => {}
        _ => return Err(Rejection::UnsupportedVersion),
    }
    let key = match fields.all("sec-websocket-key").as_slice() {
        [key] => valid_key(key).ok_or(Rejection::BadKey)?,
        _ => return Err(Rejection::BadKey),
    };

    let path = target.split('?').next().unwrap_or_default();
    if !config.path.allows(path) {
        return Err(Rejection::PathNotFound);
    }
    let origin = match fields.all("origin").as_slice() {
        [] => None,
        [origin] => Some(text(origin).ok_or(Rejection::OriginNotAllowed)?),
        // Browsers send one; several cannot be judged.
        _ => return Err(Rejection::OriginNotAllowed),
    };
    if !config.origin.allows(origin.as_deref()) {
        return Err(Rejection::OriginNotAllowed);
    }

    let offered: Vec<&[u8]> = fields.tokens("sec-websocket-protocol").collect();
    let protocol = config
        .protocols
        .iter()
        .find(|ours| offered.contains(&ours.as_bytes()))
        .cloned();

    Ok(Some(UpgradeRequest {
        target: target.to_owned(),
        host,
        origin,
        protocol,
        headers: fields
            .0
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_owned()))
            .collect(),
        key,
    }))
}

/// The parsed header lines.
struct Fields<'h, 'b>(&'h [httparse::Header<'b>]);

impl<'b> Fields<'_, 'b> {
    /// The values of every header with this (lower-case) name.
    fn all(&self, name: &str) -> Vec<&'b [u8]> {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    }

    /// The comma-separated elements of every header with this name, trimmed, empty ones skipped
    /// (RFC 9110 §5.6.1 lists).
    fn tokens<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.all(name).into_iter().flat_map(|value| {
            value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|token| !token.is_empty())
        })
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// A header value as text, if it is UTF-8 and not empty.
fn text(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value.trim_ascii()).ok()?;
    (!value.is_empty()).then(|| value.to_owned())
}

/// The key, if it is the canonical base64 encoding of exactly 16 bytes (RFC 6455 §4.1).
fn valid_key(value: &[u8]) -> Option<String> {
    let key = value.trim_ascii();
    let decoded = data_encoding::BASE64.decode(key).ok()?;
    if decoded.len() != 16 {
        return None;
    }
    std::str::from_utf8(key).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut head = lines.join("\r\n");
        head.push_str("\r\n\r\n");
        head.into_bytes()
    }

    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn protocol_selection_follows_server_preference() {
        let config = AcceptConfig::default().protocols(["b", "a"]);
        let request = head(&[
            "GET / HTTP/1.1",
            "Host: x",
            "Upgrade: websocket",
            "Connection: Upgrade",
            KEY,
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: a, c",
            "Sec-WebSocket-Protocol: b",
        ]);
        let accepted = check_request(&request, &config).unwrap().unwrap();
        assert_eq!(accepted.protocol.as_deref(), Some("b"));
    }

    #[test]
    fn key_must_decode_to_sixteen_bytes() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ==").is_some());
        assert!(valid_key(b" dGhlIHNhbXBsZSBub25jZQ== ").is_some());
        assert!(
            valid_key(b"dGhlIHNhbXBsZSBub25jZQ").is_none(),
            "padding required"
        );
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZXg=").is_none(), "17 bytes");
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25j").is_none(), "15 bytes");
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=!").is_none());
        assert!(valid_key(b"").is_none());
    }

    #[test]
    fn head_size_limit_applies_to_partial_heads() {
        let config = AcceptConfig::default().max_head_size(20);
        assert_eq!(check_request(b"GET / HTTP/1.1\r\n", &config), Ok(None));
        assert_eq!(
            check_request(b"GET / HTTP/1.1\r\nHost:", &config),
            Err(Rejection::HeadTooLarge)
        );
    }
}
