//! A private PostgreSQL server for the tests of the store's second engine (SPEC
//! §11) and for `sim bench`'s figures on it: a new cluster in a temporary folder,
//! on a free loopback port, with its socket in that folder, started with Debian's binaries (`initdb`, `pg_ctl`); as
//! the `postgres` user when the tests run as root (initdb refuses root). Dropping
//! it stops the server at once and removes the folder.
//!
//! The binaries are found in `POLLSYNC_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin`, else on the `PATH`. There is no skip: CI
//! installs PostgreSQL (`.ci/run`), and a machine without it fails these tests
//! naming what is missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How long `pg_ctl` waits for the server to start or stop.
pub const PG_CTL_TIMEOUT_S: u32 = 60;

/// A running PostgreSQL server of a test's own.
pub struct PgServer {
    folder: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as_postgres: bool,
    /// The `postgres` user's password when the cluster asks for passwords
    /// ([`PgServer::start_with_passwords`]); `None`: every local login is trusted.
    admin_password: Option<String>,
    /// Serves TCP over TLS only ([`PgServer::start_with_tls`]).
    tls: bool,
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POLLSYNC_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found {
        Some(path) => Path::new(&path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        None => panic!(
            "PostgreSQL's initdb is not on this machine (apt-get install postgresql, or set POLLSYNC_PG_BIN)"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgServer {
    /// Makes a cluster and starts its server; panics naming what failed.
    pub fn start() -> PgServer {
        PgServer::make(None, None)
    }

    /// [`PgServer::start`], with a cluster that asks every login for its password
    /// (SCRAM), as a new user's server would; `postgres`'s is `admin_password`.
    pub fn start_with_passwords(admin_password: &str) -> PgServer {
        PgServer::make(Some(admin_password.to_owned()), None)
    }

    /// [`PgServer::start`], with a server that takes TCP connections over TLS
    /// (1.3) only, with this certificate and key (PEM); a plain TCP connection is
    /// refused by `pg_hba.conf`. Its own Unix socket stays open to the tests.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> PgServer {
        PgServer::make(None, Some((cert_pem, key_pem)))
    }

    fn make(admin_password: Option<String>, tls: Option<(&str, &str)>) -> PgServer {
        let folder = tempfile::Builder::new()
            .prefix("pollsync-pg")
            .tempdir()
            .expect("tempdir");
        let server = PgServer {
            bin: bin_dir(),
            port: free_port(),
            run_as_postgres: is_root(),
            folder,
            admin_password,
            tls: tls.is_some(),
        };
        let pwfile = server.folder.path().join("admin-password");
        if let Some(password) = &server.admin_password {
            std::fs::write(&pwfile, password).expect("password file");
        }
        if server.run_as_postgres {
            server.check(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(server.folder.path())
                    .output(),
                "chown the cluster folder to postgres",
            );
        }
        let data = server.data().display().to_string();
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        let mut args = vec!["-D", &data, "-U", "postgres", "-E", "UTF8", "--no-locale"];
        match &server.admin_password {
            Some(_) => args.extend(["--auth=scram-sha-256", &pwfile_arg]),
            None => args.push("--auth=trust"),
        }
        server.pg("initdb", &args);
        let _ = std::fs::remove_file(&pwfile);
        if let Some((cert, key)) = tls {
            let data = server.data();
            std::fs::write(data.join("server.crt"), cert).expect("server certificate");
            std::fs::write(data.join("server.key"), key).expect("server key");
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 127.0.0.1/32 reject\n",
            )
            .expect("pg_hba.conf");
            if server.run_as_postgres {
                server.check(
                    Command::new("chown")
                        .args(["postgres:postgres"])
                        .arg(data.join("server.crt"))
                        .arg(data.join("server.key"))
                        .arg(data.join("pg_hba.conf"))
                        .output(),
                    "chown the TLS files to postgres",
                );
            }
            server.check(
                Command::new("chmod")
                    .arg("0600")
                    .arg(data.join("server.key"))
                    .output(),
                "chmod the server key",
            );
        }
        server.start_server();
        server
    }

    fn data(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn check(&self, out: std::io::Result<Output>, what: &str) {
        let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.folder.path().join("server.log")).unwrap_or_default()
        );
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args);
        self.check(
            cmd.output(),
            &format!("{} {}", path.display(), args.join(" ")),
        );
    }

    fn start_server(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.folder.path().display()
        );
        if self.tls {
            options.push_str(" -c ssl=on -c ssl_min_protocol_version=TLSv1.3");
        }
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-o",
                &options,
                "-l",
                &self.folder.path().join("server.log").display().to_string(),
                "-t",
                &PG_CTL_TIMEOUT_S.to_string(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (`immediate`: as a crash would), then starts it
    /// again on the same port and data.
    pub fn restart(&self) {
        self.stop();
        self.start_server();
    }

    fn stop(&self) {
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-t",
                &PG_CTL_TIMEOUT_S.to_string(),
                "-w",
                "stop",
            ],
        );
    }

    /// The server's URL for database `database` as the user `postgres` (with its
    /// password, if the cluster asks for one).
    pub fn url(&self, database: &str) -> String {
        match &self.admin_password {
            Some(password) => format!(
                "postgres://postgres:{password}@127.0.0.1:{}/{database}",
                self.port
            ),
            None => format!("postgres://postgres@127.0.0.1:{}/{database}", self.port),
        }
    }

    /// Makes a login role `role` with `password` and an empty database `name` it
    /// owns, as a new user would for pollsync; returns the URL for that role,
    /// without the password.
    pub fn create_owned_database(&self, name: &str, role: &str, password: &str) -> String {
        self.admin(&[
            format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"),
            format!("CREATE DATABASE \"{name}\" OWNER \"{role}\""),
        ]);
        format!("postgres://{role}@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `statements` as `postgres`, each on its own.
    fn admin(&self, statements: &[String]) {
        // Through the server's Unix socket (a TLS-only server refuses plain TCP).
        let mut admin_url = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.folder.path().display(),
            self.port
        );
        if let Some(password) = &self.admin_password {
            admin_url.push_str(&format!(" password={password}"));
        }
        // On a thread of its own: the blocking client runs a runtime of its own,
        // which it cannot inside an async test.
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut admin =
                    postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect");
                for statement in statements {
                    admin.batch_execute(statement).expect(statement);
                }
            })
            .join()
            .expect("statements run");
        });
    }

    /// Makes a new, empty database.
    pub fn create_database(&self, name: &str) -> String {
        self.admin(&[format!("CREATE DATABASE \"{name}\"")]);
        self.url(name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
