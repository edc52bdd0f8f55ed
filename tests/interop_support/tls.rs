//! A throw-away self-signed certificate for `localhost` and 127.0.0.1, made once per test binary.

use std::sync::{Arc, OnceLock};

use ws_stream_mux::tls::{
    self,
    rustls::{
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
        ClientConfig, ServerConfig,
    },
};

/// The certificate in the forms both sides need.
pub struct Tls {
    /// PEM texts for the Node peer (its server's key/cert, its client's CA).
    pub cert_pem: String,
    pub key_pem: String,
    /// Our client trusts exactly this certificate; our server presents it.
    pub client: Arc<ClientConfig>,
    pub server: Arc<ServerConfig>,
}

pub fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("generate a self-signed certificate");
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        Tls {
            cert_pem: certified.cert.pem(),
            key_pem: certified.key_pair.serialize_pem(),
            client: tls::client_config([cert.clone()]).expect("client config"),
            server: tls::server_config(vec![cert], key).expect("server config"),
        }
    })
}
