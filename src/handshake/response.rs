//! The server's HTTP answers.

use async_tungstenite::tungstenite::handshake::derive_accept_key;

use super::{error::Rejection, request::UpgradeRequest};

/// `101 Switching Protocols` for an accepted request.
pub(crate) fn switching_protocols(request: &UpgradeRequest) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        derive_accept_key(request.key.as_bytes())
    );
    if let Some(protocol) = &request.protocol {
        answer.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    answer.push_str("\r\n");
    answer.into_bytes()
}

/// The error answer for a refused request: status line, a one-line plain-text body that says why,
/// and `Sec-WebSocket-Version: 13` on a 426 so the client knows what to retry with.
pub(crate) fn rejection(rejection: &Rejection) -> Vec<u8> {
    let body = format!("{rejection}\n");
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\n\
         Connection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n",
        rejection.status(),
        rejection.reason_phrase(),
        body.len()
    );
    if rejection.status() == 426 {
        answer.push_str("Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    answer.into_bytes()
}
