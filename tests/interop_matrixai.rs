//! Wire compatibility with `@matrixai/ws` 1.1.7, the TypeScript implementation of our protocol.
//!
//! Each test runs `tests/interop/peer.js` (Node, installed by `.ci/setup/30-interop.sh`) as an
//! independent peer over `wss://` on 127.0.0.1: once as the WebSocket server with us as the
//! client, once as the client with us as the server; and, where it matters, once with each side
//! opening the streams. The Node peer checks its side (exits non-zero on any mismatch) and, with
//! `--strict`, everything we send against WIRE.md: no DATA beyond its credit, no empty DATA, no
//! ACK of 0, nothing after our FIN. We check our side and that none of its quirks made a stream or
//! the connection fail. The cases are described in `tests/interop/README.md`.
#![cfg(feature = "tls")]

use crate::interop_support;

use interop_support::{parts, Role, Session};
use ws_stream_mux::{CloseCode, Config, Connection, WsEvent};

fn small_windows() -> Config {
    Config::default().window(16)
}

/// Runs our `part` against the JS `js_part` of `case`, the JS peer in `js_role`.
async fn run<F, Fut>(
    js_role: Role,
    case: &str,
    js_part: &str,
    config: Config,
    close_code: CloseCode,
    part: F,
) -> Vec<WsEvent>
where
    F: FnOnce(Connection) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    Session::start(js_role, case, js_part, config)
        .await
        .run(part, close_code)
        .await
}

/// Four tests for a case whose two parts are `open` and `accept`: the JS peer as server and as
/// client, with us opening the streams and with the JS side opening them.
macro_rules! both_ways {
    ($case:ident, $config:expr, $close:expr, $open:path, $accept:path) => {
        mod $case {
            use super::*;

            #[async_std::test]
            async fn js_server_rust_opens() {
                let name = stringify!($case);
                run(
                    Role::Server,
                    name,
                    "accept",
                    $config,
                    $close,
                    |c| async move { $open(&c).await },
                )
                .await;
            }

            #[async_std::test]
            async fn js_server_js_opens() {
                let name = stringify!($case);
                run(
                    Role::Server,
                    name,
                    "open",
                    $config,
                    $close,
                    |c| async move { $accept(&c).await },
                )
                .await;
            }

            #[async_std::test]
            async fn js_client_rust_opens() {
                let name = stringify!($case);
                run(
                    Role::Client,
                    name,
                    "accept",
                    $config,
                    $close,
                    |c| async move { $open(&c).await },
                )
                .await;
            }

            #[async_std::test]
            async fn js_client_js_opens() {
                let name = stringify!($case);
                run(
                    Role::Client,
                    name,
                    "open",
                    $config,
                    $close,
                    |c| async move { $accept(&c).await },
                )
                .await;
            }
        }
    };
}

// One echo, then 100 concurrent streams of 1 MiB each, content checked.
both_ways!(
    echo,
    Config::default(),
    CloseCode::NORMAL,
    parts::echo_open,
    parts::echo_accept
);

// 16-byte windows on both sides: each writer chunks to its credit, nothing is dropped.
both_ways!(
    window,
    small_windows(),
    CloseCode::NORMAL,
    parts::window_open,
    parts::window_accept
);

// Graceful half-close each way.
both_ways!(
    halfclose,
    Config::default(),
    CloseCode::NORMAL,
    parts::halfclose_open,
    parts::halfclose_accept
);

// Reset (4001) and stop (4002) each way, the codes seen on the other side.
both_ways!(
    reset,
    Config::default(),
    CloseCode::NORMAL,
    parts::reset_open,
    parts::reset_accept
);

// Connection close with 4000 and a reason, by us (we "open") and by the JS side.
both_ways!(
    close,
    Config::default(),
    parts::CLOSE,
    parts::close_open,
    parts::close_accept
);

/// We stop reading (4002) while the JS side is writing: its write fails with our code, the DATA
/// still in flight is dropped quietly.
mod stopwrite {
    use super::*;

    #[async_std::test]
    async fn js_server_writes() {
        run(
            Role::Server,
            "stopwrite",
            "open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::stopwrite_stop(&c).await },
        )
        .await;
    }

    #[async_std::test]
    async fn js_client_writes() {
        run(
            Role::Client,
            "stopwrite",
            "open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::stopwrite_stop(&c).await },
        )
        .await;
    }
}

/// The JS side pings every 50 ms and drops a peer silent for 2 s; it idles for 60 pongs (3 s)
/// before echoing. We only wait in `accept`, which answers the pings.
mod keepalive {
    use super::*;

    async fn pings_answered(js_role: Role) {
        let events = run(
            js_role,
            "keepalive",
            "open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::keepalive_accept(&c).await },
        )
        .await;
        let pings = events
            .iter()
            .filter(|e| matches!(e, WsEvent::Ping(_)))
            .count();
        assert!(pings >= 60, "only {pings} pings observed");
    }

    #[async_std::test]
    async fn js_server_pings() {
        pings_answered(Role::Server).await;
    }

    #[async_std::test]
    async fn js_client_pings() {
        pings_answered(Role::Client).await;
    }
}

/// The JS side sends ERROR Read and CLOSE Write on a stream after its data and FIN, before we
/// read: the data must all be readable, then the end.
mod lateerror {
    use super::*;

    #[async_std::test]
    async fn js_server() {
        run(
            Role::Server,
            "lateerror",
            "open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::lateerror_accept(&c).await },
        )
        .await;
    }

    #[async_std::test]
    async fn js_client() {
        run(
            Role::Client,
            "lateerror",
            "open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::lateerror_accept(&c).await },
        )
        .await;
    }
}

/// ACK 0, empty DATA, and ACK / CLOSE / ERROR after a stream ended, injected by the JS side on
/// streams it opened and on streams we opened: all tolerated.
mod quirks {
    use super::*;

    #[async_std::test]
    async fn js_server_injects_on_its_streams() {
        run(
            Role::Server,
            "quirks",
            "inject-open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::quirks_accept(&c).await },
        )
        .await;
    }

    #[async_std::test]
    async fn js_server_injects_on_our_streams() {
        run(
            Role::Server,
            "quirks",
            "inject-accept",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::quirks_open(&c).await },
        )
        .await;
    }

    #[async_std::test]
    async fn js_client_injects_on_its_streams() {
        run(
            Role::Client,
            "quirks",
            "inject-open",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::quirks_accept(&c).await },
        )
        .await;
    }

    #[async_std::test]
    async fn js_client_injects_on_our_streams() {
        run(
            Role::Client,
            "quirks",
            "inject-accept",
            Config::default(),
            CloseCode::NORMAL,
            |c| async move { parts::quirks_open(&c).await },
        )
        .await;
    }
}

/// Control runs without our code: the JS parts against each other. A case that fails here is a
/// broken script or a JS bug, not ours.
mod control {
    use interop_support::js_pair;

    use super::*;

    #[async_std::test]
    async fn echo() {
        js_pair("echo", "accept", "open").await;
    }

    #[async_std::test]
    async fn window() {
        js_pair("window", "open", "accept").await;
    }

    #[async_std::test]
    async fn halfclose() {
        js_pair("halfclose", "accept", "open").await;
    }

    #[async_std::test]
    async fn reset() {
        js_pair("reset", "open", "accept").await;
    }

    #[async_std::test]
    async fn close() {
        js_pair("close", "accept", "open").await;
    }

    #[async_std::test]
    async fn keepalive() {
        js_pair("keepalive", "open", "accept").await;
    }

    #[async_std::test]
    async fn lateerror() {
        js_pair("lateerror", "accept", "open").await;
    }

    #[async_std::test]
    async fn quirks_injected_on_own_streams() {
        js_pair("quirks", "inject-open", "accept").await;
    }

    #[async_std::test]
    async fn quirks_injected_on_peer_streams() {
        js_pair("quirks", "open", "inject-accept").await;
    }
}
