#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! gRPC over TLS: certificates made at test time (rcgen), a real TLS client
//! (tonic with rustls); mutual TLS refusing clients without a certificate
//! from the operator's CA; a certificate replaced and reloaded on SIGHUP
//! without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use paycore_e2e::{Server, bearer, pb, test_dir};
use paycore_grpc::AccountServiceClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A CA that signs server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `common_name`, valid for localhost.
    fn sign(&self, common_name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "paycore tests");
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A TLS channel trusting `ca`, presenting `identity` if given.
async fn tls_channel(
    server: &Server,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Channel::from_shared(format!("https://localhost:{}", server.addr().port()))
        .unwrap()
        .tls_config(tls)
        .map_err(|error| error.to_string())?;
    endpoint.connect().await.map_err(|error| format!("{error:?}"))
}

/// SIGHUP: the server reads its TLS files again.
fn hang_up(server: &Server) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(server.pid()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

/// Whether an authenticated call over `channel` succeeds.
async fn answers(server: &Server, channel: Channel) -> Result<(), tonic::Status> {
    let mut accounts = AccountServiceClient::with_interceptor(channel, bearer(server.key()));
    let request = pb::CreateAccountRequest {
        currency: "EUR".into(),
        ..Default::default()
    };
    accounts.create_account(request).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_the_operators_clients_and_a_reloaded_certificate_serves_new_connections() {
    let dir = test_dir();
    let files = dir.path();
    let ca = Ca::new("paycore test CA");
    let (cert, key) = ca.sign("paycore server");
    let clients = Ca::new("client CA");
    let env = [
        ("PAYCORE_TLS_CERT", write(files, "server.pem", &cert)),
        ("PAYCORE_TLS_KEY", write(files, "server.key", &key)),
        ("PAYCORE_TLS_CLIENT_CA", write(files, "clients.pem", &clients.pem)),
        ("PAYCORE_LOG", "info".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let server = Server::start_with_env_without_readiness_check(dir.path(), &env);

    // The operator's client: served, and named in the log.
    let teller = clients.sign("teller-service");
    let channel = tls_channel(&server, &ca.pem, Some(&teller)).await.unwrap();
    answers(&server, channel).await.unwrap();
    assert!(
        server.log().contains("CN=teller-service"),
        "the client's subject is logged:\n{}",
        server.log()
    );

    // No certificate, or one from another CA: refused in the handshake.
    let stranger = Ca::new("someone else's CA").sign("teller-service");
    for identity in [None, Some(&stranger)] {
        let refused = match tls_channel(&server, &ca.pem, identity).await {
            Err(_) => true,
            Ok(channel) => answers(&server, channel).await.is_err(),
        };
        assert!(refused, "a client without the operator's certificate was served");
    }
    // Plaintext on the TLS port: nothing served.
    assert!(answers(&server, server.channel()).await.is_err());

    // A new certificate from a new CA, reloaded on SIGHUP: new connections
    // get it; a client that trusts only the old CA no longer connects.
    let renewed = Ca::new("renewed CA");
    let (cert, key) = renewed.sign("paycore server, renewed");
    write(files, "server.pem", &cert);
    write(files, "server.key", &key);
    hang_up(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(channel) = tls_channel(&server, &renewed.pem, Some(&teller)).await
            && answers(&server, channel).await.is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old_trust = match tls_channel(&server, &ca.pem, Some(&teller)).await {
        Err(_) => false,
        Ok(channel) => answers(&server, channel).await.is_ok(),
    };
    assert!(!old_trust, "the old certificate is still served");

    // Files that do not load leave the served certificate in place.
    write(files, "server.pem", "not a certificate");
    hang_up(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let channel = tls_channel(&server, &renewed.pem, Some(&teller)).await.unwrap();
    answers(&server, channel).await.unwrap();
    assert!(
        server.log().contains("TLS certificate not reloaded"),
        "{}",
        server.log()
    );
}

#[test]
fn a_certificate_without_its_key_is_refused_at_start() {
    let dir = test_dir();
    let output = std::process::Command::new(paycore_e2e::paycore_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}
