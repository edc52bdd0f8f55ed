//! Choosing QMux at the WebSocket handshake: the subprotocol names (QMUX.md, "Negotiation").
//!
//! A QMux subprotocol is `qmux-02.<app>` or `qmux-01.<app>` for an application protocol `<app>`,
//! or the bare `qmux-02` / `qmux-01`. The client offers a list, most preferred first; the server
//! picks the first of *its* list that the client offered. -01 and -02 share every byte on the
//! wire; the version only selects a few validation rules. `qmux-00` and `webtransport` (the
//! peers' legacy format) are neither offered nor accepted.

use std::fmt;

/// The QMux draft a connection follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QmuxVersion {
    /// draft-ietf-quic-qmux-01 (`qmux-01`).
    V01,
    /// draft-ietf-quic-qmux-02 (`qmux-02`), preferred.
    V02,
}

impl QmuxVersion {
    /// The bare subprotocol name: `qmux-01` or `qmux-02`.
    pub fn name(self) -> &'static str {
        match self {
            QmuxVersion::V01 => "qmux-01",
            QmuxVersion::V02 => "qmux-02",
        }
    }

    /// The version and application protocol a subprotocol names, if it is a QMux one we speak:
    /// `qmux-02` → `(V02, None)`, `qmux-01.chat` → `(V01, Some("chat"))`.
    pub fn parse(subprotocol: &str) -> Option<(Self, Option<&str>)> {
        [QmuxVersion::V02, QmuxVersion::V01]
            .into_iter()
            .find_map(|version| {
                let rest = subprotocol.strip_prefix(version.name())?;
                if rest.is_empty() {
                    return Some((version, None));
                }
                let app = rest.strip_prefix('.')?;
                (!app.is_empty()).then_some((version, Some(app)))
            })
    }
}

impl fmt::Display for QmuxVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which QMux subprotocols a client offers or a server accepts, in order of preference.
///
/// Hand [`subprotocols`](Self::subprotocols) to the server's `AcceptConfig::protocols` or the
/// client's `connect::request_with_protocols` (the tokio helpers take a `QmuxProtocols`); the
/// subprotocol the handshake settled on gives the [`Protocol`](crate::proto::Protocol) to speak.
///
/// ```
/// use ws_stream_mux::QmuxProtocols;
///
/// let offer = QmuxProtocols::default().application("chat");
/// assert_eq!(
///     offer.subprotocols(),
///     ["qmux-02.chat", "qmux-01.chat", "qmux-02", "qmux-01"]
/// );
/// let strict = offer.require_application(true);
/// assert_eq!(strict.subprotocols(), ["qmux-02.chat", "qmux-01.chat"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QmuxProtocols {
    /// Application protocols, most preferred first (HTTP tokens, such as `moq-transport-14`).
    pub applications: Vec<String>,
    /// QMux versions, most preferred first. Default: -02, then -01.
    pub versions: Vec<QmuxVersion>,
    /// Offer or accept only `qmux-VV.<app>`, not the bare `qmux-VV`. Default: false.
    pub require_application: bool,
}

impl Default for QmuxProtocols {
    fn default() -> Self {
        Self {
            applications: Vec::new(),
            versions: vec![QmuxVersion::V02, QmuxVersion::V01],
            require_application: false,
        }
    }
}

impl QmuxProtocols {
    /// Adds an application protocol (after those added before).
    pub fn application(mut self, app: impl Into<String>) -> Self {
        self.applications.push(app.into());
        self
    }

    /// Sets [`versions`](Self::versions).
    pub fn versions(mut self, versions: impl IntoIterator<Item = QmuxVersion>) -> Self {
        self.versions = versions.into_iter().collect();
        self
    }

    /// Sets [`require_application`](Self::require_application).
    pub fn require_application(mut self, require: bool) -> Self {
        self.require_application = require;
        self
    }

    /// The subprotocol names, most preferred first: `qmux-VV.<app>` for each application and
    /// version, then (unless an application is required) the bare `qmux-VV`.
    pub fn subprotocols(&self) -> Vec<String> {
        let mut names = Vec::new();
        for app in &self.applications {
            for version in &self.versions {
                names.push(format!("{}.{app}", version.name()));
            }
        }
        if !self.require_application {
            names.extend(
                self.versions
                    .iter()
                    .map(|version| version.name().to_owned()),
            );
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_versions_and_applications() {
        assert_eq!(
            QmuxVersion::parse("qmux-02"),
            Some((QmuxVersion::V02, None))
        );
        assert_eq!(
            QmuxVersion::parse("qmux-01.moq-14"),
            Some((QmuxVersion::V01, Some("moq-14")))
        );
        for other in [
            "qmux-00",
            "qmux-03.x",
            "webtransport",
            "qmux-02.",
            "qmux-021",
            "",
        ] {
            assert_eq!(QmuxVersion::parse(other), None, "{other}");
        }
    }
}
