//! Object-store servers for the remote tests, and what each one does with conditional writes.
//!
//! `SeaweedFs::start()` and `Moto::start()` (S3) and `Azurite::start()` (Azure Blob) each start
//! one server on free loopback ports in a temporary directory of its own, wait until a signed
//! request is answered, and hand back a [`Server`]: its endpoint, keys, the environment to give
//! fanout (`env`, `apply`), and an independent client (tests/it/objtool.py: boto3 and
//! azure-storage-blob) to set up buckets and check objects. Dropping the `Server` kills it and
//! removes everything it made, including the sockets SeaweedFS puts in /tmp.
//!
//! The servers come from `.ci/servers.sh`, which installs them into `$FANOUT_SERVERS` (default
//! `target/servers`); a program found there is used before one on PATH. Without them a test
//! prints one `skipped:` line and returns outside CI, and fails under `CI=true`, where .ci/run
//! installs them.
//!
//! The tests below pin down what the stores do differently with conditional writes:
//! SeaweedFS enforces `If-None-Match: *` and `If-Match` on simple and multipart writes (412,
//! also for `If-Match` on a missing object); moto enforces them on simple writes (412, 404 for
//! a missing object) and `If-None-Match` on a multipart upload, but ignores `If-Match` when a
//! multipart upload completes; Azurite enforces both on Put Blob and Put Block List (a
//! create-only write over a blob is 409, not 412).

#![allow(dead_code)] // the remote tests of fanout itself use what these tests do not

use std::ffi::OsString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{in_ci, run_command, Output};

/// The independent client the tests check stores with.
pub const OBJTOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/objtool.py");

/// Where `.ci/servers.sh` installs the servers and their clients: `$FANOUT_SERVERS`, else
/// `target/servers` in this checkout.
pub fn servers_dir() -> PathBuf {
    std::env::var_os("FANOUT_SERVERS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/servers"),
        PathBuf::from,
    )
}

/// A program of the servers' environment: its bin/ first, then PATH.
pub fn program(name: &str) -> Option<PathBuf> {
    let own = servers_dir().join("bin").join(name);
    if own.is_file() {
        return Some(own);
    }
    which::which(name).ok()
}

/// The Python that runs objtool.py: the servers' environment's own (it has boto3 and
/// azure-storage-blob), or `$FANOUT_TEST_PYTHON`.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FANOUT_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let own = servers_dir().join("bin/python");
    own.is_file().then_some(own)
}

/// The programs a server needs, or None after one `skipped:` line (a failure under CI).
fn needs(server: &str, names: &[&str]) -> Option<(PathBuf, PathBuf)> {
    let found = program(names[0]).zip(python());
    if found.is_none() {
        let what = format!(
            "{server} tests need {} and the Python of {} (bash .ci/servers.sh installs them)",
            names.join(", "),
            servers_dir().display()
        );
        assert!(!in_ci(), "{what}; they are required under CI=true");
        eprintln!("skipped: {what}");
    }
    found
}

/// `n` distinct free loopback ports: all are bound at once, so none repeats, then released
/// for the server (a port taken meanwhile makes the start fail and try again).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Which API a server speaks, and so which client objtool.py uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    S3,
    Azure,
}

/// How to start one server on given ports in a given directory.
struct Launch {
    name: &'static str,
    api: Api,
    command: Command,
    endpoint: String,
    access_key: String,
    secret_key: String,
    env: Vec<(String, String)>,
    /// Files the server makes outside its directory (removed when it is dropped).
    leftovers: Vec<PathBuf>,
    /// Ready only once an object can be written: the listing answers before that.
    wait_for_write: bool,
}

/// A running server; killed, with everything it made, when dropped.
pub struct Server {
    name: &'static str,
    api: Api,
    child: Child,
    dir: TempDir,
    python: PathBuf,
    endpoint: String,
    access_key: String,
    secret_key: String,
    env: Vec<(String, String)>,
    leftovers: Vec<PathBuf>,
    /// The ports it was started on, and how to start it again there (`restart`).
    ports: Vec<u16>,
    launch: Launcher,
}

/// How a server is started on given ports in a given directory (kept for `restart`).
type Launcher = std::rc::Rc<dyn Fn(&Path, &[u16]) -> Launch>;

/// A request the store refused: its error code and HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub status: u16,
}

fn s3_env(endpoint: &str, key: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect()
}

/// SeaweedFS: master, volume server, filer and S3 gateway in one `weed server` process.
pub struct SeaweedFs;

impl SeaweedFs {
    pub const ACCESS_KEY: &'static str = "fanout-test";
    pub const SECRET_KEY: &'static str = "fanout-test-secret";

    pub fn start() -> Option<Server> {
        Self::start_at("127.0.0.1", "127.0.0.1")
    }

    /// A server that listens on `bind` and that clients reach at `host` (this machine's
    /// address on the test cluster's bridge, for Slurm nodes in network namespaces of their
    /// own); its parts still talk to one another on loopback.
    pub fn start_at(bind: &'static str, host: &'static str) -> Option<Server> {
        let (weed, python) = needs("SeaweedFS", &["weed"])?;
        Some(start(&python, 8, move |dir, p| {
            // Without an identity the gateway would accept unsigned requests.
            let config = dir.join("s3.json");
            let identity = serde_json::json!({"identities": [{
                "name": "test",
                "credentials": [{"accessKey": Self::ACCESS_KEY, "secretKey": Self::SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]});
            fs::write(&config, identity.to_string()).unwrap();
            // Kept by a restart.
            fs::create_dir_all(dir.join("data")).unwrap();
            let mut command = Command::new(&weed);
            let arg = |k: &str, v: &dyn std::fmt::Display| OsString::from(format!("-{k}={v}"));
            command
                .arg("server")
                .args([
                    // The default address is not loopback.
                    arg("ip", &"127.0.0.1"),
                    arg("ip.bind", &bind),
                    arg("dir", &dir.join("data").display()),
                    arg("master.port", &p[0]),
                    arg("master.port.grpc", &p[1]),
                    arg("volume.port", &p[2]),
                    arg("volume.port.grpc", &p[3]),
                    arg("filer.port", &p[4]),
                    arg("filer.port.grpc", &p[5]),
                    arg("s3.port", &p[6]),
                    arg("s3.port.grpc", &p[7]),
                    arg("s3.config", &config.display()),
                    arg("filer.localSocket", &dir.join("filer.sock").display()),
                    arg("s3.localSocket", &dir.join("s3.sock").display()),
                    arg("s3.port.iceberg", &0),
                    arg("s3.port.lance", &0),
                    arg("master.telemetry", &false),
                    arg("volume.preStopSeconds", &0),
                    arg("master.volumeSizeLimitMB", &64),
                    arg("volume.max", &0),
                ])
                .args(["-filer", "-s3"])
                // Its logs go to the temporary directory, not /tmp.
                .env("TMPDIR", dir);
            let endpoint = format!("http://{host}:{}", p[6]);
            // Each gRPC service also listens on a Unix socket whose path no flag moves.
            let leftovers = [
                ("master", p[1]),
                ("volume", p[3]),
                ("filer", p[5]),
                ("s3", p[7]),
            ]
            .iter()
            .map(|(kind, port)| PathBuf::from(format!("/tmp/seaweedfs-{kind}-grpc-{port}.sock")))
            .collect();
            Launch {
                name: "SeaweedFS",
                api: Api::S3,
                command,
                env: s3_env(&endpoint, Self::ACCESS_KEY, Self::SECRET_KEY),
                endpoint,
                access_key: Self::ACCESS_KEY.into(),
                secret_key: Self::SECRET_KEY.into(),
                leftovers,
                // Its S3 gateway lists before the volume server takes writes.
                wait_for_write: true,
            }
        }))
    }
}

/// moto's server mode: an in-memory S3 that accepts any key.
pub struct Moto;

impl Moto {
    pub fn start() -> Option<Server> {
        let (moto, python) = needs("moto", &["moto_server"])?;
        Some(start(&python, 1, move |dir, p| {
            let mut command = Command::new(&moto);
            command
                .args(["-H", "127.0.0.1", "-p", &p[0].to_string()])
                .env("TMPDIR", dir);
            let endpoint = format!("http://127.0.0.1:{}", p[0]);
            Launch {
                name: "moto",
                api: Api::S3,
                command,
                env: s3_env(&endpoint, "moto-key", "moto-secret"),
                endpoint,
                access_key: "moto-key".into(),
                secret_key: "moto-secret".into(),
                leftovers: Vec::new(),
                wait_for_write: false,
            }
        }))
    }
}

/// Azurite's Blob service (npm azurite), with the emulator's well-known account.
pub struct Azurite;

impl Azurite {
    pub const ACCOUNT: &'static str = "devstoreaccount1";
    pub const KEY: &'static str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    pub fn start() -> Option<Server> {
        let (azurite, python) = needs("Azurite", &["azurite-blob"])?;
        Some(start(&python, 1, move |dir, p| {
            let mut command = Command::new(&azurite);
            command
                .args(["--blobHost", "127.0.0.1", "--blobPort", &p[0].to_string()])
                .arg("--location")
                .arg(dir.join("data"))
                .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"]);
            let endpoint = format!("http://127.0.0.1:{}", p[0]);
            // What object_store's MicrosoftAzureBuilder::from_env reads for the emulator.
            let env = [
                ("AZURE_STORAGE_USE_EMULATOR", "true"),
                ("AZURITE_BLOB_STORAGE_URL", &endpoint),
                ("AZURE_STORAGE_ACCOUNT_NAME", Self::ACCOUNT),
                ("AZURE_STORAGE_ACCOUNT_KEY", Self::KEY),
                ("AZURE_ALLOW_HTTP", "true"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
            Launch {
                name: "Azurite",
                api: Api::Azure,
                command,
                endpoint,
                access_key: Self::ACCOUNT.into(),
                secret_key: Self::KEY.into(),
                env,
                leftovers: Vec::new(),
                wait_for_write: false,
            }
        }))
    }
}

/// Starts a server: up to three tries (a port may be taken between choosing and binding), each
/// waiting up to 60 s for a signed request to be answered (and on SeaweedFS for a probe object
/// in a probe bucket to be written and removed again). A server that is installed but does
/// not come up fails the test with its log.
fn start(
    python: &Path,
    ports: usize,
    launch: impl Fn(&Path, &[u16]) -> Launch + 'static,
) -> Server {
    let launch: Launcher = std::rc::Rc::new(launch);
    let mut last = String::new();
    for _ in 0..3 {
        let dir = tempfile::Builder::new()
            .prefix("fanout-store.")
            .tempdir()
            .unwrap();
        let ports = free_ports(ports);
        let Launch {
            name,
            api,
            command,
            endpoint,
            access_key,
            secret_key,
            env,
            leftovers,
            wait_for_write,
        } = launch(dir.path(), &ports);
        let child = spawn(name, command, dir.path());
        let server = Server {
            name,
            api,
            child,
            dir,
            python: python.to_path_buf(),
            endpoint,
            access_key,
            secret_key,
            env,
            leftovers,
            ports,
            launch: launch.clone(),
        };
        match server.ready(wait_for_write) {
            Ok(()) => return server,
            Err(why) => last = why,
        }
    }
    panic!("the object store server did not come up in three tries:\n{last}");
}
/// Starts `command` in `dir`, its output appended to `server.log` there, in a process group
/// of its own (so that killing the group kills whatever it started too).
fn spawn(name: &str, mut command: Command, dir: &Path) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

impl Server {
    /// Waits up to 60 s for the server to answer a signed request (with `write`, to take a
    /// probe object in a probe bucket and remove it again); Err with its log if it does not.
    fn ready(&self, write: bool) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let mut wait = vec!["wait", "--pid", &pid, "--timeout", "60"];
        if write {
            wait.push("--write");
        }
        let wait = self.tool(&wait);
        if wait.code == Some(0) {
            return Ok(());
        }
        Err(format!(
            "{}\n--- server log ---\n{}",
            wait.dump(),
            self.log_tail()
        ))
    }

    /// Kills the server's process group with SIGKILL, as a crash or a pulled plug would:
    /// its connections are refused from then on. Its directory stays (see `restart`).
    pub fn kill(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again (after `kill`, or killing it if it runs) on the same directory
    /// and the same ports, so that what it stored is there again under the same endpoint.
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        let launch = (self.launch)(self.dir.path(), &self.ports);
        self.child = spawn(self.name, launch.command, self.dir.path());
        if let Err(why) = self.ready(launch.wait_for_write) {
            panic!("{} did not come up again:\n{why}", self.name);
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The URL clients talk to (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The access key (Azure: the account name).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key (Azure: the account key).
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// An object's URL as fanout takes it: `s3://BUCKET/KEY`, or `az://CONTAINER/KEY`.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        let scheme = match self.api {
            Api::S3 => "s3",
            Api::Azure => "az",
        };
        format!("{scheme}://{bucket}/{key}")
    }

    /// The server's own temporary directory (removed when it is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The variables that point fanout (and any AWS or Azure client) at this server.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Gives `cmd` this server's variables, after removing every inherited `AWS_*`, `AZURE_*`
    /// and `AZURITE_*` variable, and points the AWS config and credentials files at absent
    /// files, so that nothing of the user's own setup (a profile, a session token) steers the
    /// test. Set a variable after this to test it.
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("AZURITE_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("AWS_CONFIG_FILE", self.dir().join("absent-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir().join("absent-aws-credentials"),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
    }

    /// Runs objtool.py against this server with `args`, whatever it answers.
    pub fn tool(&self, args: &[&str]) -> Output {
        self.tool_stdin(args, None)
    }

    fn tool_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(&self.python);
        cmd.arg(OBJTOOL);
        if self.api == Api::Azure {
            cmd.arg("--azure");
        }
        cmd.args(args);
        self.apply(&mut cmd);
        run_command(cmd, stdin)
    }

    /// objtool.py's answer: Ok(stdout) on exit 0, the refusal on exit 1; anything else fails.
    #[track_caller]
    fn answer(&self, out: &Output) -> Result<Vec<u8>, Refusal> {
        match out.code {
            Some(0) => Ok(out.stdout.clone()),
            Some(1) => {
                let v: Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("objtool refusal: {e}{}", out.dump()));
                Err(Refusal {
                    code: v["error"].as_str().unwrap_or_default().to_string(),
                    status: v["status"].as_u64().unwrap_or_default() as u16,
                })
            }
            _ => panic!("objtool failed on {}:{}", self.name, out.dump()),
        }
    }

    #[track_caller]
    fn must(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let out = self.tool_stdin(args, stdin);
        self.answer(&out)
            .unwrap_or_else(|r| panic!("{} refused {args:?}: {r:?}{}", self.name, out.dump()))
    }

    /// Creates a bucket (a container on Azure).
    #[track_caller]
    pub fn mkbucket(&self, bucket: &str) {
        self.must(&["mkbucket", bucket], None);
    }

    /// The bucket (container) names.
    #[track_caller]
    pub fn buckets(&self) -> Vec<String> {
        let out = self.must(&["buckets"], None);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Writes an object with user metadata; returns its ETag.
    #[track_caller]
    pub fn put(&self, bucket: &str, key: &str, body: &[u8], meta: &[(&str, &str)]) -> String {
        let pairs: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["put", bucket, key, "-"];
        for pair in &pairs {
            args.extend(["--meta", pair]);
        }
        etag_of(&self.must(&args, Some(body)))
    }

    /// Writes an object with objtool's `put` options (`--if-none-match`, `--if-match ETAG`,
    /// `--multipart BYTES`); returns its ETag, or what the store refused.
    #[track_caller]
    pub fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        options: &[&str],
    ) -> Result<String, Refusal> {
        let mut args = vec!["put", bucket, key, "-"];
        args.extend_from_slice(options);
        self.answer(&self.tool_stdin(&args, Some(body)))
            .map(|out| etag_of(&out))
    }

    /// An object's bytes, or None when it does not exist.
    #[track_caller]
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.answer(&self.tool(&["get", bucket, key])).ok()
    }

    /// An object's `{"etag", "size", "metadata"}`, or None when it does not exist.
    #[track_caller]
    pub fn head(&self, bucket: &str, key: &str) -> Option<Value> {
        self.answer(&self.tool(&["head", bucket, key]))
            .ok()
            .map(|out| serde_json::from_slice(&out).unwrap())
    }

    /// The objects under `prefix`, each `{"key", "size", "etag"}`, in key order.
    #[track_caller]
    pub fn ls(&self, bucket: &str, prefix: &str) -> Vec<Value> {
        let out = self.must(&["ls", bucket, prefix], None);
        out.split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect()
    }

    /// Deletes objects.
    #[track_caller]
    pub fn rm(&self, bucket: &str, keys: &[&str]) {
        let mut args = vec!["rm", bucket];
        args.extend_from_slice(keys);
        self.must(&args, None);
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read(self.dir().join("server.log")).unwrap_or_default();
        let text = String::from_utf8_lossy(&log).replace('\0', "");
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn etag_of(stdout: &[u8]) -> String {
    let v: Value = serde_json::from_slice(stdout).unwrap();
    v["etag"].as_str().unwrap().to_string()
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL: SIGTERM takes SeaweedFS 15 to 30 s, and nothing of the data needs keeping.
        self.kill();
        for path in &self.leftovers {
            // Only the socket the server made on its own port.
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the servers do with conditional writes

fn refused(status: u16) -> impl Fn(&Refusal) -> bool {
    move |r| r.status == status
}

#[track_caller]
fn assert_refused(result: Result<String, Refusal>, status: u16, what: &str) {
    match result {
        Err(r) => assert!(
            refused(status)(&r),
            "{what}: refused with {r:?}, not {status}"
        ),
        Ok(etag) => panic!("{what}: accepted (ETag {etag}), not refused with {status}"),
    }
}

#[test]
fn seaweedfs_enforces_conditions_on_simple_and_multipart_writes() {
    let Some(s) = SeaweedFs::start() else { return };
    s.mkbucket("lake");
    let v1 = s.put("lake", "a.csv", b"one\n", &[("fanout-source", "x")]);
    let head = s.head("lake", "a.csv").unwrap();
    assert_eq!(head["etag"], v1.as_str());
    assert_eq!(head["size"], 4);
    assert_eq!(head["metadata"]["fanout-source"], "x");

    let create = ["--if-none-match"];
    assert_refused(
        s.put_with("lake", "a.csv", b"x", &create),
        412,
        "create-only over an object",
    );
    let v2 = s
        .put_with("lake", "a.csv", b"two\n", &["--if-match", &v1])
        .unwrap();
    assert_refused(
        s.put_with("lake", "a.csv", b"x", &["--if-match", &v1]),
        412,
        "stale If-Match",
    );
    // A missing object under If-Match: 412 here (moto and AWS answer 404).
    assert_refused(
        s.put_with("lake", "none", b"x", &["--if-match", &v1]),
        412,
        "If-Match, no object",
    );

    let multipart = |cond: &[&str]| {
        let mut options = vec!["--multipart", "5242880"];
        options.extend_from_slice(cond);
        s.put_with("lake", "a.csv", b"three\n", &options)
    };
    assert_refused(
        multipart(&create),
        412,
        "multipart create-only over an object",
    );
    assert_refused(
        multipart(&["--if-match", &v1]),
        412,
        "multipart with a stale If-Match",
    );
    assert_eq!(s.get("lake", "a.csv").unwrap(), b"two\n");
    multipart(&["--if-match", &v2]).unwrap();
    assert_eq!(s.get("lake", "a.csv").unwrap(), b"three\n");
    assert_eq!(s.ls("lake", "").len(), 1);
    // The readiness probe's bucket is gone again.
    assert_eq!(s.buckets(), ["lake"]);
}

#[test]
fn moto_enforces_conditions_on_simple_writes_but_not_when_a_multipart_upload_completes() {
    let Some(m) = Moto::start() else { return };
    m.mkbucket("lake");
    let v1 = m.put("lake", "a.csv", b"one\n", &[]);
    assert_refused(
        m.put_with("lake", "a.csv", b"x", &["--if-none-match"]),
        412,
        "create-only",
    );
    let v2 = m
        .put_with("lake", "a.csv", b"two\n", &["--if-match", &v1])
        .unwrap();
    assert_refused(
        m.put_with("lake", "a.csv", b"x", &["--if-match", &v1]),
        412,
        "stale If-Match",
    );
    assert_refused(
        m.put_with("lake", "none", b"x", &["--if-match", &v1]),
        404,
        "If-Match, no object",
    );

    let multipart = ["--multipart", "5242880"];
    let create: Vec<&str> = multipart
        .iter()
        .copied()
        .chain(["--if-none-match"])
        .collect();
    assert_refused(
        m.put_with("lake", "a.csv", b"x", &create),
        412,
        "multipart create-only",
    );
    // The gap: a stale If-Match on CompleteMultipartUpload is ignored, the object replaced.
    let stale: Vec<&str> = multipart
        .iter()
        .copied()
        .chain(["--if-match", &v1])
        .collect();
    let v3 = m.put_with("lake", "a.csv", b"three\n", &stale);
    assert!(
        v3.is_ok(),
        "moto now refuses a stale If-Match on a multipart upload: {v3:?}"
    );
    assert_ne!(v3.unwrap(), v2);
    assert_eq!(m.get("lake", "a.csv").unwrap(), b"three\n");
}

#[test]
fn azurite_enforces_conditions_on_put_blob() {
    let Some(a) = Azurite::start() else { return };
    a.mkbucket("lake");
    let v1 = a.put("lake", "a.csv", b"one\n", &[("source", "x")]);
    assert_eq!(a.head("lake", "a.csv").unwrap()["metadata"]["source"], "x");
    // Create-only over a blob: 409 BlobAlreadyExists (S3 answers 412).
    assert_refused(
        a.put_with("lake", "a.csv", b"x", &["--if-none-match"]),
        409,
        "create-only",
    );
    a.put_with("lake", "a.csv", b"two\n", &["--if-match", &v1])
        .unwrap();
    assert_refused(
        a.put_with("lake", "a.csv", b"x", &["--if-match", &v1]),
        412,
        "stale If-Match",
    );
    assert_eq!(a.get("lake", "a.csv").unwrap(), b"two\n");
    // Staged blocks committed by Put Block List: the same conditions hold.
    let blocks = |cond: &[&str]| {
        let mut options = vec!["--multipart", "4"];
        options.extend_from_slice(cond);
        a.put_with("lake", "a.csv", b"three\n", &options)
    };
    assert_refused(
        blocks(&["--if-match", &v1]),
        412,
        "block list with a stale If-Match",
    );
    assert_refused(blocks(&["--if-none-match"]), 409, "block list create-only");
    assert_eq!(a.get("lake", "a.csv").unwrap(), b"two\n");
    assert_eq!(a.url("lake", "a.csv"), "az://lake/a.csv");
}

#[test]
fn a_dropped_server_leaves_no_process_and_no_file() {
    let Some(s) = SeaweedFs::start() else { return };
    let (pid, dir, sockets) = (s.pid(), s.dir().to_path_buf(), s.leftovers.clone());
    assert!(
        sockets.iter().any(|p| p.exists()),
        "SeaweedFS no longer makes {sockets:?}: drop the cleanup"
    );
    drop(s);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "weed {pid} still runs"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
    for path in sockets {
        assert!(!path.exists(), "{} is left", path.display());
    }
}

/// pyarrow, polars and DuckDB (httpfs from PyPI, nothing downloaded) read `s3://` from a
/// server given only its `env()`, as the remote e2e's transforms do; so does rclone, the
/// benchmarks' peer (an on-the-fly remote taking the keys from the same variables).
#[test]
fn the_real_tools_read_s3_urls_with_the_servers_env_alone() {
    let Some(s) = SeaweedFs::start() else { return };
    s.mkbucket("raw");
    s.put("raw", "year=2024/a.csv", b"x,y\n3,c\n1,a\n2,b\n", &[]);
    let script = r#"
import os, sys, tempfile
import duckdb, duckdb_extensions, polars, pyarrow.csv, pyarrow.fs
e = os.environ
url = "s3://raw/year=2024/a.csv"
with tempfile.TemporaryDirectory() as ext:
    con = duckdb.connect(config={"extension_directory": ext, "autoinstall_known_extensions": "false"})
    duckdb_extensions.import_extension("httpfs", con=con)
    con.sql("LOAD httpfs")
    endpoint = e["AWS_ENDPOINT_URL"].split("://", 1)[1]
    con.execute("CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false)",
                [e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"], e["AWS_REGION"], endpoint])
    print("duckdb", con.sql(f"select string_agg(y, '' order by x) from read_csv('{url}')").fetchone()[0])
print("polars", "".join(polars.read_csv(url).sort("x")["y"]))
fs = pyarrow.fs.S3FileSystem(endpoint_override=e["AWS_ENDPOINT_URL"], region=e["AWS_REGION"])
with fs.open_input_stream(url[5:]) as f:
    print("pyarrow", "".join(pyarrow.csv.read_csv(f).sort_by("x")["y"].to_pylist()))
"#;
    let mut cmd = Command::new(python().unwrap());
    cmd.args(["-c", script]);
    s.apply(&mut cmd);
    let out = run_command(cmd, None);
    out.assert_ok();
    assert_eq!(
        out.stdout_lines(),
        ["duckdb abc", "polars abc", "pyarrow abc"],
        "{}",
        out.dump()
    );

    let rclone = program("rclone").expect("rclone is installed with the servers (.ci/servers.sh)");
    let mut cmd = Command::new(rclone);
    cmd.args(["lsf", "-R", "--files-only", ":s3:raw"]);
    s.apply(&mut cmd)
        .env("RCLONE_S3_PROVIDER", "Other")
        .env("RCLONE_S3_ENV_AUTH", "true")
        .env("RCLONE_S3_ENDPOINT", s.endpoint())
        .env("RCLONE_CONFIG", s.dir().join("absent-rclone.conf"));
    let out = run_command(cmd, None);
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["year=2024/a.csv"], "{}", out.dump());
}
