//! A PostgreSQL server of a test's own (feature `testing`): `initdb` into a
//! temporary directory, started on a free port of 127.0.0.1, stopped and
//! removed when dropped. For what the shared test database cannot show
//! without changing it for everyone: a server without TLS, then with TLS
//! under certificates made at test time (rcgen), and client certificates.
// A test helper's failure is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A running server of the test's own.
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

/// Certificates made for one cluster, as PEM files in its directory.
#[derive(Debug, Clone)]
pub struct ClusterCertificates {
    /// The CA that signed the server's certificate (issued for
    /// `localhost` only, so `127.0.0.1` does not match its name).
    pub ca: PathBuf,
    /// A CA that signed nothing the server shows.
    pub other_ca: PathBuf,
    /// A client certificate for the role `certuser`, signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// The role that may only sign in with a client certificate.
pub const CERT_USER: &str = "certuser";

impl LocalCluster {
    /// `initdb` and start, without TLS, trusting every local connection.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("paycore-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("a directory for the test cluster");
        let port = free_port();
        let cluster = Self { dir, bin, port };
        cluster.hand_to_server_user(&cluster.dir);
        cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data().to_str().unwrap(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            cluster.dir.display()
        );
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                cluster.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                cluster.dir.join("server.log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        cluster
    }

    /// A URL for database `postgres` as `user` at `host` (`localhost` or
    /// `127.0.0.1`), with `params` as its query (without `?`).
    pub fn url(&self, user: &str, host: &str, params: &str) -> String {
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        };
        format!("postgres://{user}@{host}:{}/postgres{query}", self.port)
    }

    /// Makes a CA and the server's certificate, turns `ssl` on (a reload,
    /// not a restart) and lets [`CERT_USER`] in over TLS with a client
    /// certificate only.
    pub fn enable_tls(&self) -> ClusterCertificates {
        let ca = Ca::new("paycore test cluster CA");
        let other = Ca::new("some other CA");
        let (server_cert, server_key) = ca.sign(
            "localhost",
            vec![SanType::DnsName("localhost".try_into().unwrap())],
        );
        let (client_cert, client_key) = ca.sign(CERT_USER, Vec::new());
        let data = self.data();
        let write = |name: &str, content: &str| {
            let path = data.join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        let server_cert = write("server.crt", &server_cert);
        let server_key = write("server.key", &server_key);
        let ca_path = write("root.crt", &ca.pem);
        self.hand_to_server_user(&data);
        set_private(&server_key);
        let certificates = ClusterCertificates {
            ca: self.dir.join("ca.pem"),
            other_ca: self.dir.join("other-ca.pem"),
            client_cert: self.dir.join("client.crt"),
            client_key: self.dir.join("client.key"),
        };
        std::fs::write(&certificates.ca, &ca.pem).unwrap();
        std::fs::write(&certificates.other_ca, &other.pem).unwrap();
        std::fs::write(&certificates.client_cert, client_cert).unwrap();
        std::fs::write(&certificates.client_key, client_key).unwrap();
        set_private(&certificates.client_key);

        // `cert` for CERT_USER before the catch-all `trust` lines initdb wrote.
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!(
                "hostssl all {CERT_USER} 127.0.0.1/32 cert\nhost all {CERT_USER} 127.0.0.1/32 reject\n{rest}"
            ),
        )
        .unwrap();
        // One statement per call: ALTER SYSTEM refuses a transaction block.
        for sql in [
            format!("CREATE ROLE {CERT_USER} LOGIN SUPERUSER"),
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", server_cert.display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", server_key.display()),
            format!("ALTER SYSTEM SET ssl_ca_file = '{}'", ca_path.display()),
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            self.psql(&sql);
        }
        // The reload is asynchronous: wait until new connections see it.
        for _ in 0..100 {
            if self.psql("SHOW ssl").trim() == "on" {
                return certificates;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "the test cluster did not turn ssl on; see {}",
            self.dir.join("server.log").display()
        );
    }

    /// Runs `sql` with psql over the cluster's Unix socket; its output.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-h", self.dir.to_str().unwrap(), "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// PostgreSQL refuses to run as root: when the tests do, the cluster's
    /// files belong to the `postgres` user and its programs run as it.
    fn hand_to_server_user(&self, path: &Path) {
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres", path.to_str().unwrap()])
                .status()
                .expect("running chown");
            assert!(status.success(), "chown -R postgres {}", path.display());
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().expect("running a PostgreSQL program");
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let data = self.data();
        let stop = [
            "-D",
            data.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ];
        let program = self.bin.join("pg_ctl");
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(stop)
                .output()
        } else {
            Command::new(&program).args(stop).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server's programs: `PAYCORE_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PAYCORE_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL's server programs (initdb, pg_ctl): set PAYCORE_PG_BINDIR")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Private keys must not be readable by others (PostgreSQL and libpq check).
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A CA that signs the cluster's and the client's certificates.
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

    /// (certificate PEM, key PEM) for `common_name` with `names`.
    fn sign(&self, common_name: &str, names: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = names;
        params.distinguished_name.push(DnType::CommonName, common_name);
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}
