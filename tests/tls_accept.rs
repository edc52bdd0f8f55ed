//! `tls::accept` runs the same checked handshake as `handshake::accept` (real HTTP answers,
//! policies), over TLS on real TCP, with `tls::connect` as the client; no runtime is involved in
//! either but the test's.
#![cfg(feature = "tls")]

use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{
    handshake::{AcceptConfig, HandshakeError, PathPolicy, Rejection},
    tls::{
        self,
        rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    WsIo,
};

const SAFETY: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    async_std::future::timeout(SAFETY, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {SAFETY:?} (hang)"))
}

#[async_std::test]
async fn tls_accept_answers_with_the_checks_of_handshake_accept() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let server_config = tls::server_config(vec![cert.clone()], key).unwrap();
    let client_config = tls::client_config([cert]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = async_std::task::spawn(async move {
        let policy = AcceptConfig::default().paths(PathPolicy::only(["/ws"]));
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            match tls::accept(tcp, server_config.clone(), &policy).await {
                Ok((ws, request)) => {
                    let mut io = WsIo::new(ws);
                    let mut got = Vec::new();
                    io.read_to_end(&mut got).await.unwrap();
                    outcomes.push(Ok((request.path().to_owned(), got)));
                }
                Err(err) => outcomes.push(Err(err)),
            }
        }
        outcomes
    });

    let refused = tls::connect(
        &format!("wss://localhost:{port}/elsewhere"),
        TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        client_config.clone(),
    )
    .await;
    assert!(
        matches!(refused, Err(HandshakeError::Refused(404))),
        "{:?}",
        refused.map(|_| ())
    );

    let (ws, _) = tls::connect(
        &format!("wss://localhost:{port}/ws"),
        TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        client_config,
    )
    .await
    .expect("a served path");
    let mut io = WsIo::new(ws);
    io.write_all(b"over tls").await.unwrap();
    within("close", io.close()).await.unwrap();

    let outcomes = within("server", server).await;
    assert!(
        matches!(
            &outcomes[0],
            Err(HandshakeError::Rejected(Rejection::PathNotFound))
        ),
        "{:?}",
        outcomes[0]
    );
    match &outcomes[1] {
        Ok((path, got)) => assert_eq!((path.as_str(), got.as_slice()), ("/ws", &b"over tls"[..])),
        Err(err) => panic!("{err:?}"),
    }
}
