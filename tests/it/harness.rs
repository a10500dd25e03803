//! Starts the real `faxgate` binary for a test.
//!
//! The daemon runs on a configuration in a temporary directory; it reports
//! its admin socket and readiness on standard output; its log (standard
//! error) is collected and printed when the test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_faxgate");

/// A test's directory with a configuration in it.
pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
    /// Environment of every daemon [`Setup::start`] starts.
    pub env: Vec<(String, String)>,
    /// Sockets handed to every daemon [`Setup::start`] starts, as the
    /// service manager would (`LISTEN_FDS`): bound here to port 0, so the
    /// port is the kernel's, read back, and never released between a
    /// daemon and the next.
    pub sockets: Vec<std::os::fd::OwnedFd>,
}

impl Setup {
    pub fn new() -> Setup {
        Self::with("")
    }

    /// A configuration with data and socket in a fresh directory, plus `extra` TOML.
    pub fn with(extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("faxgate.toml");
        let dir = tmp.path().display().to_string();
        std::fs::write(
            &config,
            format!(
                "[storage]\ndata_dir = \"{dir}/data\"\n\n[admin]\nsocket = \"{dir}/admin.sock\"\n{extra}\n[log]\nlevel = \"debug,sled=info\"\ntarget = \"stderr\"\n"
            ),
        )
        .unwrap();
        Setup { tmp, config, env: Vec::new(), sockets: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub fn socket(&self) -> PathBuf {
        self.tmp.path().join("admin.sock")
    }

    pub fn start(&self) -> Daemon {
        Daemon::spawn(self.serve_command())
    }

    /// `faxgate serve` on this configuration, with the environment and the
    /// sockets of every start.
    pub fn serve_command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.arg("--config").arg(&self.config).arg("serve");
        if !self.sockets.is_empty() {
            use command_fds::{CommandFdExt, FdMapping};
            let fds = self
                .sockets
                .iter()
                .enumerate()
                .map(|(i, s)| FdMapping { parent_fd: s.try_clone().unwrap(), child_fd: 3 + i as i32 })
                .collect();
            cmd.fd_mappings(fds).unwrap();
            cmd.env("LISTEN_FDS", self.sockets.len().to_string());
        }
        cmd
    }

    /// A UDP socket on 127.0.0.1 for the daemon (a trunk's `bind`).
    pub fn udp_socket(&mut self) -> std::net::SocketAddr {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        self.sockets.push(s.into());
        addr
    }

    /// A TCP listener on 127.0.0.1 for the daemon (an SMTP listener's `address`).
    pub fn tcp_listener(&mut self) -> std::net::SocketAddr {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        self.sockets.push(s.into());
        addr
    }

    /// Runs the CLI with this configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN).arg("--config").arg(&self.config).args(args).output().unwrap()
    }

    /// Runs the CLI, asserts success, returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "faxgate {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the CLI with --json, asserts success, parses the answer.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Adds tenant `id` (`<id> Telecom`, fax@<id>.dk, DK, fax.<id>.dk) through the CLI.
    pub fn add_tenant(&self, id: &str) {
        let (name, from, domain) = (format!("{id} Telecom"), format!("fax@{id}.dk"), format!("fax.{id}.dk"));
        self.ok(&[
            "tenant",
            "add",
            id,
            "--name",
            &name,
            "--from-address",
            &from,
            "--country",
            "DK",
            "--domain",
            &domain,
        ]);
    }

    /// Adds an account named `name` to `tenant` through the CLI; its id.
    pub fn add_account(&self, tenant: &str, name: &str) -> String {
        self.json(&["account", "add", "--tenant", tenant, "--name", name])["id"].as_str().unwrap().to_owned()
    }

    /// Runs the CLI, asserts failure, returns standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "faxgate {args:?} should fail but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    pub log: Arc<Mutex<String>>,
    /// The `faxgate: ...` lines printed before `faxgate: ready`.
    pub announced: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `cmd`, which must run `faxgate serve` (possibly through an `exec`).
    pub fn spawn(cmd: Command) -> Daemon {
        match Self::try_spawn(cmd) {
            Ok(d) => d,
            Err((status, log)) => panic!("daemon not ready (exit: {status:?}); log:\n{log}"),
        }
    }

    /// Starts `cmd` and waits until the daemon is ready, or has exited: then
    /// its exit status and log.
    pub fn try_spawn(mut cmd: Command) -> Result<Daemon, (Option<ExitStatus>, String)> {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let announced = Arc::new(Mutex::new(Vec::new()));
        let a = announced.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line == "faxgate: ready" {
                    let _ = tx.send(());
                } else if let Some(rest) = line.strip_prefix("faxgate: ") {
                    a.lock().unwrap().push(rest.to_owned());
                }
            }
        });
        let mut d = Daemon { child: Some(child), log, announced };
        if let Err(e) = rx.recv_timeout(Duration::from_secs(60)) {
            let mut child = d.child.take().unwrap();
            let status = match e {
                // Standard output closed: the daemon exited.
                std::sync::mpsc::RecvTimeoutError::Disconnected => child.wait().ok(),
                std::sync::mpsc::RecvTimeoutError::Timeout => {
                    let _ = child.kill();
                    child.wait().ok();
                    None
                }
            };
            // The log reader finishes with the process.
            std::thread::sleep(Duration::from_millis(100));
            return Err((status, d.log()));
        }
        Ok(d)
    }

    /// Where the daemon said `what` is (`faxgate: <what> <where>`), e.g. `announced("smtp")`.
    pub fn announced(&self, what: &str) -> String {
        let lines = self.announced.lock().unwrap();
        let prefix = format!("{what} ");
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("daemon never announced {what:?}; it said {lines:?}"))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits (up to 30 s) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "log never showed {needle:?}:\n{}", self.log());
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.child.as_mut().unwrap().wait().unwrap();
        self.child = None;
        status
    }

    /// Waits for the daemon to exit on its own (after a signal sent with
    /// [`Self::signal`]), at most `secs`.
    pub fn wait(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let c = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit within {secs} s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- faxgate log ----\n{}---- end of log ----", self.log());
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A TCP port on 127.0.0.1 held for a peer that the test starts later (a
/// mail relay the daemon must first find down): bound with SO_REUSEADDR
/// and never listening, so that connections to it are refused, while the
/// peer (which binds with SO_REUSEADDR too, as asyncio servers do) can
/// listen on it. Nothing else can take the port meanwhile.
pub struct HeldPort {
    _socket: std::os::fd::OwnedFd,
    /// The port.
    pub port: u16,
}

impl HeldPort {
    pub fn tcp() -> HeldPort {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, setsockopt, socket, sockopt,
        };
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        let port = getsockname::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap().port();
        HeldPort { _socket: fd, port }
    }
}
