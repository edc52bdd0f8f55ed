//! A multiplexed echo over `wss://`: a server that echoes every stream, and a client that opens a
//! few streams through it, both in this process over 127.0.0.1 with a throw-away self-signed
//! certificate.
//!
//! ```text
//! cargo run --example tls_echo --features tls
//! ```
//!
//! The server half also serves TypeScript clients built on `@matrixai/ws` (they speak only
//! `wss://`): give them the certificate as their CA, or `verifyPeer: false`.

use async_std::net::{TcpListener, TcpStream};
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{
    tls::{
        self,
        rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    CloseCode, Config, Connection, Error, WsStream,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[async_std::main]
async fn main() -> Result<(), BoxError> {
    // A certificate for "localhost" and 127.0.0.1, made for this run only.
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server_config = tls::server_config(vec![cert.clone()], key)?;
    let server = async_std::task::spawn(async move {
        let (tcp, peer) = listener.accept().await?;
        let (ws, request) = tls::accept(tcp, server_config, &Default::default()).await?;
        println!("server: TLS WebSocket from {peer} on {}", request.path());
        serve(Connection::server(ws, Config::default())?).await
    });

    let tcp = TcpStream::connect(addr).await?;
    let url = format!("wss://localhost:{}/", addr.port());
    let (ws, _) = tls::connect(&url, tcp, tls::client_config([cert])?).await?;
    let conn = Connection::client(ws, Config::default())?;
    for text in ["hello", "over", "TLS"] {
        let mut stream = conn.open().await?;
        stream.write_all(text.as_bytes()).await?;
        stream.close().await?;
        let mut echoed = String::new();
        stream.read_to_string(&mut echoed).await?;
        println!("client: stream {} echoed {echoed:?}", stream.id());
    }
    conn.close(CloseCode::NORMAL, "done").await?;
    server.await?;
    Ok(())
}

/// Echoes every stream the client opens until it closes the connection.
async fn serve(conn: Connection) -> Result<(), BoxError> {
    loop {
        match conn.accept().await {
            Ok(stream) => {
                async_std::task::spawn(echo(stream));
            }
            Err(Error::ConnectionClosed { code, reason }) => {
                println!("server: client closed with {code} {reason:?}");
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        }
    }
}

async fn echo(stream: WsStream) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.split();
    futures::io::copy(&mut reader, &mut writer).await?;
    writer.close().await
}
