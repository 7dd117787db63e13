//! The stores: one async runtime on fanout's own I/O threads, one client per bucket, and the
//! few blocking calls the rest of fanout makes (list, head, download, ranged read, conditional
//! upload, delete). Everything network-shaped stays in this file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};

use super::listing;
use futures::StreamExt;
use object_store::list::PaginatedListStore;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientConfigKey, GetOptions, GetRange, ObjectStore,
    ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::object::{Condition, Head, Object, PutError, Written};
use super::url::{RemoteUrl, Scheme};

/// How long one request may take before it is retried, and how long the retries of one
/// request may go on in all (documented in docs/remote.md).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const RETRY_FOR: Duration = Duration::from_secs(90);
pub(crate) const MAX_RETRIES: usize = 8;
/// How long the check before a run waits for a store to answer.
pub(crate) const CHECK_WITHIN: Duration = Duration::from_secs(20);
/// The largest output written in one conditional PUT (the S3 limit for one PUT).
pub(crate) const LARGEST_PUT: u64 = 5 << 30;

/// The runtime and the clients. One per process.
pub(crate) struct Stores {
    runtime: tokio::runtime::Runtime,
    clients: Mutex<HashMap<String, Client>>,
}

/// One bucket's client, and its paged listing (the stores fanout builds have one) for
/// listings split by prefix.
#[derive(Clone)]
struct Client {
    store: Arc<dyn ObjectStore>,
    pages: Option<Arc<dyn PaginatedListStore>>,
}

/// The process's stores (made on first use).
pub(crate) fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        // TLS through rustls with ring (the platform's certificates), chosen once: ring needs
        // no C build. (Deprecated only for lacking post-quantum key exchange.)
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fanout-io")
            .enable_all()
            .build()
            .expect("an I/O runtime");
        Stores {
            runtime,
            clients: Mutex::new(HashMap::new()),
        }
    })
}

impl Stores {
    /// Uses `store` for every URL under `base` (tests: the in-memory store).
    #[cfg(test)]
    pub(crate) fn insert(&self, base: &str, store: Arc<dyn ObjectStore>) {
        let client = Client { store, pages: None };
        self.clients
            .lock()
            .unwrap()
            .insert(base.to_string(), client);
    }

    fn client(&self, url: &RemoteUrl) -> Result<Arc<dyn ObjectStore>> {
        Ok(self.client_pages(url)?.store)
    }

    fn client_pages(&self, url: &RemoteUrl) -> Result<Client> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&url.base) {
            return Ok(c.clone());
        }
        let client = build(url)?;
        clients.insert(url.base.clone(), client.clone());
        Ok(client)
    }

    fn block_on<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(fut)
    }

    /// Lists every object under `prefix` (a key prefix ending in `/`, or empty) of `root`'s
    /// store, in pages, handing each to `sink` until it returns false. The listing runs on the
    /// I/O threads and hands keys over a bounded queue: `sink` runs on the caller's thread, so
    /// it may call the stores itself, and memory stays flat however long the listing. It is
    /// split by prefix and by key range ([`listing::split`]): keys of different prefixes and
    /// ranges may come interleaved.
    pub(crate) fn list(
        &self,
        root: &RemoteUrl,
        prefix: &str,
        sink: &mut dyn FnMut(Object) -> bool,
    ) -> Result<()> {
        let Client { store, pages } = self.client_pages(root)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(LISTED_AHEAD);
        let task = match pages {
            Some(pages) => self
                .runtime
                .spawn(listing::split(pages, prefix.to_string(), tx)),
            None => {
                let prefix = (!prefix.is_empty()).then(|| key_path(prefix.trim_end_matches('/')));
                self.runtime.spawn(listing::one(store, prefix, tx))
            }
        };
        // The task ends when the queue is dropped (the sink wanted no more) or the listing did.
        let _abort = AbortOnDrop(task);
        while let Some(meta) = rx.blocking_recv() {
            let meta = meta.map_err(|e| store_error(&e, root))?;
            if !sink(object(root, &meta)) {
                break;
            }
        }
        Ok(())
    }

    /// Whether the store behind `url` answers and lets fanout list it (credentials, bucket,
    /// endpoint), within [`CHECK_WITHIN`].
    pub(crate) fn check(&self, url: &RemoteUrl) -> Result<()> {
        let client = self.client(url)?;
        let prefix = (!url.key.is_empty()).then(|| key_path(url.key.trim_end_matches('/')));
        self.block_on(async {
            let first = async { client.list(prefix.as_ref()).next().await.transpose() };
            match tokio::time::timeout(CHECK_WITHIN, first).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(store_error(&e, url)),
                Err(_) => Err(anyhow!(
                    "{url}: the store did not answer within {} s",
                    CHECK_WITHIN.as_secs()
                )),
            }
        })
    }

    /// The object at `url` with its metadata, or `None` if there is none.
    pub(crate) fn head(&self, url: &RemoteUrl) -> Result<Option<Head>> {
        let client = self.client(url)?;
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        self.block_on(async {
            match client.get_opts(&key_path(&url.key), options).await {
                Ok(got) => Ok(Some(Head {
                    object: object(url, &got.meta),
                    metadata: user_metadata(url, &got.attributes),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(store_error(&e, url)),
            }
        })
    }

    /// Downloads exactly the version of `object` that was listed into `to`: the bytes written
    /// and how many times the whole download was tried again. A changed object is an error
    /// (the job would run on other bytes than were listed). Each request is retried by the
    /// client (a body that breaks off is read on from where it stopped); a download that still
    /// fails starts over, up to [`DOWNLOAD_TRIES`] times in all.
    pub(crate) fn download(
        &self,
        object: &Object,
        to: &mut File,
    ) -> Result<super::object::Fetched> {
        let (fetched, store_retries) = super::retries::counted(|| self.fetch(object, to));
        let (bytes, restarts) = fetched?;
        Ok(super::object::Fetched {
            bytes,
            restarts,
            store_retries,
        })
    }

    /// [`Stores::download`]'s tries: bytes and restarts.
    fn fetch(&self, object: &Object, to: &mut File) -> Result<(u64, u32)> {
        let mut retries = 0;
        loop {
            match self.download_once(object, to) {
                Ok(bytes) => return Ok((bytes, retries)),
                Err(Fetch::Changed(e)) => return Err(e),
                Err(Fetch::Failed(e)) if retries + 1 >= DOWNLOAD_TRIES => {
                    return Err(e.context(format!("after {DOWNLOAD_TRIES} tries")))
                }
                Err(Fetch::Failed(_)) => {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(500 << retries));
                    to.set_len(0)
                        .context("could not start the staged copy again")?;
                    std::io::Seek::rewind(to).context("could not start the staged copy again")?;
                }
            }
        }
    }

    fn download_once(&self, object: &Object, to: &mut File) -> Result<u64, Fetch> {
        let client = self.client(&object.url).map_err(Fetch::Failed)?;
        let options = GetOptions {
            if_match: object.etag.clone(),
            version: object.version.clone(),
            ..GetOptions::default()
        };
        self.block_on(async {
            let got = client
                .get_opts(&key_path(&object.url.key), options)
                .await
                .map_err(|e| match e {
                    object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. } => {
                        Fetch::Changed(anyhow!("{} changed after it was listed", object.url))
                    }
                    e => Fetch::Failed(store_error(&e, &object.url)),
                })?;
            let mut stream = got.into_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Fetch::Failed(store_error(&e, &object.url)))?;
                to.write_all(&chunk)
                    .context("could not write the staged copy")
                    .map_err(Fetch::Changed)?;
                bytes += chunk.len() as u64;
            }
            Ok(bytes)
        })
    }

    /// Bytes `range` (from the end when `from_end`) of the listed version of `object`.
    pub(crate) fn read_tail(&self, object: &Object, len: u64) -> Result<Vec<u8>> {
        let client = self.client(&object.url)?;
        let options = GetOptions {
            if_match: object.etag.clone(),
            range: Some(GetRange::Suffix(len)),
            ..GetOptions::default()
        };
        self.block_on(async {
            let got = client
                .get_opts(&key_path(&object.url.key), options)
                .await
                .map_err(|e| store_error(&e, &object.url))?;
            Ok(got
                .bytes()
                .await
                .map_err(|e| store_error(&e, &object.url))?
                .to_vec())
        })
    }

    /// Uploads the file `from` to `to` in one request if `condition` holds, with `metadata`.
    pub(crate) fn upload(
        &self,
        from: &FsPath,
        to: &RemoteUrl,
        condition: &Condition,
        metadata: &[(String, String)],
    ) -> Result<Written, PutError> {
        let client = self.client(to).map_err(PutError::Other)?;
        let bytes = mapped(from)
            .with_context(|| format!("could not read {}", from.display()))
            .map_err(PutError::Other)?;
        let size = bytes.len() as u64;
        if size > LARGEST_PUT {
            return Err(PutError::Other(anyhow!(
                "{} is {}, more than the {} one conditional upload may be",
                from.display(),
                crate::units::human(size),
                crate::units::human(LARGEST_PUT)
            )));
        }
        let mut attributes = Attributes::new();
        for (k, v) in metadata {
            attributes.insert(
                Attribute::Metadata(metadata_name(to, k).into()),
                AttributeValue::from(v.clone()),
            );
        }
        let options = PutOptions {
            mode: match condition {
                Condition::Absent => PutMode::Create,
                Condition::Unchanged { etag, version } => PutMode::Update(UpdateVersion {
                    e_tag: etag.clone(),
                    version: version.clone(),
                }),
            },
            attributes,
            ..PutOptions::default()
        };
        let put =
            self.block_on(client.put_opts(&key_path(&to.key), PutPayload::from(bytes), options));
        match put {
            Ok(r) => Ok(Written {
                etag: r.e_tag,
                version: r.version,
                bytes: size,
            }),
            Err(
                e @ (object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::NotFound { .. }),
            ) => Err(PutError::Conflict(conflict_reason(&e, to, condition))),
            Err(e) => Err(PutError::Other(store_error(&e, to))),
        }
    }

    /// Whether the store behind `url` enforces the conditional writes fanout relies on: a
    /// probe object is created if absent, created again (must be refused), replaced with a
    /// wrong ETag (must be refused), and deleted. `Ok(Some(what))` names what it ignored.
    pub(crate) fn probe(&self, url: &RemoteUrl) -> Result<Option<String>> {
        let key = format!(
            "{}{PROBE}{}-{}-{:016x}",
            url.dir_prefix(),
            unix_secs(),
            std::process::id(),
            rand_u64()
        );
        let probe = url.with_key(&key);
        let file = tempfile::NamedTempFile::new().context("could not make a probe file")?;
        std::fs::write(file.path(), b"fanout probe\n").context("could not write a probe file")?;
        let put = |c: &Condition| self.upload(file.path(), &probe, c, &[]);
        let first = match put(&Condition::Absent) {
            Ok(w) => w,
            Err(PutError::Conflict(why)) => return Err(anyhow!("probe: {why}")),
            Err(PutError::Other(e)) => return Err(e.context("could not write a probe object")),
        };
        let again = put(&Condition::Absent);
        let stale = put(&Condition::Unchanged {
            etag: Some("\"fanout-probe-stale\"".into()),
            version: None,
        });
        let deleted = self.delete(&probe);
        let mut ignored = Vec::new();
        if again.is_ok() {
            ignored.push("If-None-Match (create only if absent)");
        }
        if stale.is_ok() {
            ignored.push("If-Match (replace only if unchanged)");
        }
        if let (Err(PutError::Other(e)), _) | (_, Err(PutError::Other(e))) = (&again, &stale) {
            let _ = deleted;
            return Err(anyhow!("probe: {e:#}"));
        }
        deleted.with_context(|| format!("could not delete the probe object {probe}"))?;
        let _ = first;
        self.sweep_probes(url);
        Ok((!ignored.is_empty()).then(|| ignored.join(" and ")))
    }

    /// Deletes the probe objects that runs killed mid-probe left beside `url`'s keys (hidden
    /// keys, but inputs with `-H`): only keys named exactly as a probe is, directly there,
    /// that both their name and the store say are more than an hour old (a probe takes
    /// seconds; two clocks must agree). One listing of the probe names; what fails is left
    /// for the next run.
    fn sweep_probes(&self, url: &RemoteUrl) {
        let Ok(Client {
            store,
            pages: Some(pages),
        }) = self.client_pages(url)
        else {
            return;
        };
        let prefix = format!("{}{PROBE}", url.dir_prefix());
        let now = unix_secs();
        self.block_on(async {
            let options = object_store::list::PaginatedListOptions {
                delimiter: Some("/".into()),
                ..Default::default()
            };
            let Ok(page) = pages.list_paginated(Some(&prefix), options).await else {
                return;
            };
            for meta in page.result.objects {
                let Some(name) = meta.location.as_ref().strip_prefix(&prefix) else {
                    continue;
                };
                if stale_probe(name, meta.last_modified.timestamp(), now) {
                    let _ = store.delete(&meta.location).await;
                }
            }
        });
    }

    /// Removes the object at `url` (a probe's).
    pub(crate) fn delete(&self, url: &RemoteUrl) -> Result<()> {
        let client = self.client(url)?;
        self.block_on(async {
            client
                .delete(&key_path(&url.key))
                .await
                .map_err(|e| store_error(&e, url))
        })
    }
}

/// Why a conditional upload was refused, for the record.
fn conflict_reason(e: &object_store::Error, to: &RemoteUrl, condition: &Condition) -> String {
    match (condition, e) {
        (Condition::Absent, _) => format!("{to} was created by someone else while the job ran"),
        (_, object_store::Error::NotFound { .. }) => {
            format!("{to} was removed by someone else while the job ran")
        }
        _ => format!("{to} was changed by someone else while the job ran"),
    }
}

/// The store's key for `key` as given (not percent-encoded).
fn key_path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|_| Path::from(key))
}

fn object(root: &RemoteUrl, meta: &object_store::ObjectMeta) -> Object {
    Object {
        url: root.with_key(meta.location.as_ref()),
        size: meta.size,
        etag: meta.e_tag.clone(),
        version: meta.version.clone(),
        mtime_ns: meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
    }
}

/// A metadata name as `url`'s store takes it: Azure allows only C# identifiers, so there
/// `fanout-source` is written `fanout_source` (and read back under its usual name).
fn metadata_name(url: &RemoteUrl, name: &str) -> String {
    match url.scheme {
        Scheme::Azure => name.replace('-', "_"),
        _ => name.to_string(),
    }
}

fn user_metadata(url: &RemoteUrl, attributes: &Attributes) -> Vec<(String, String)> {
    let azure = url.scheme == Scheme::Azure;
    attributes
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(name) if azure && name.starts_with("fanout_") => {
                Some((name.replace('_', "-"), v.to_string()))
            }
            Attribute::Metadata(name) => Some((name.to_string(), v.to_string())),
            _ => None,
        })
        .collect()
}

/// The file at `path` as bytes. On a file system of this machine's own (its disks, its
/// memory) it is mapped, not read: its pages are the page cache's (reclaimable, never
/// fanout's own memory), however large the output. On any other (NFS, SMB, FUSE, a cluster
/// file system as a `--stage-dir`) it is read: there a read error, or a change made from
/// another host, would fault a mapping and end the run.
#[allow(unsafe_code)]
fn mapped(path: &FsPath) -> std::io::Result<bytes::Bytes> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if md.len() == 0 {
        return Ok(bytes::Bytes::new());
    }
    if !local_file_system(&file) {
        let mut bytes = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0));
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        return Ok(bytes.into());
    }
    // SAFETY: the file is a job's output in the run's private stage directory (mode 0700) on
    // a local file system, checked as a regular file and no longer written: the job has
    // ended and its process group was stopped. Only a process of the user's that escaped it
    // and truncated the file would fault the mapping.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(bytes::Bytes::from_owner(map))
}

/// Whether `file` is on a file system of this machine's disks or memory: ext2–4, XFS,
/// Btrfs, F2FS, ZFS, tmpfs, overlayfs (Linux); APFS, HFS+ (macOS).
#[allow(
    clippy::useless_conversion,
    reason = "statfs's type field differs by platform (i64 with glibc, u64 with musl)"
)]
fn local_file_system(file: &File) -> bool {
    let Ok(fs) = nix::sys::statfs::fstatfs(file) else {
        return false;
    };
    #[cfg(target_os = "linux")]
    {
        /// ext2–4, XFS, Btrfs, F2FS, tmpfs, overlayfs, ZFS (linux/magic.h; not all are among
        /// nix's names on every libc).
        const LOCAL: [i64; 7] = [
            0xEF53,
            0x5846_5342,
            0x9123_683E,
            0xF2F5_2010,
            0x0102_1994,
            0x794C_7630,
            0x2FC1_2FC1,
        ];
        i64::try_from(fs.filesystem_type().0).is_ok_and(|kind| LOCAL.contains(&kind))
    }
    #[cfg(target_os = "macos")]
    {
        matches!(fs.filesystem_type_name(), "apfs" | "hfs")
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        false
    }
}

/// One line for a store's error: what the store answered (its error code and message, and
/// the HTTP status) or why it could not be reached, without the crate's nesting.
pub(crate) fn store_error(e: &object_store::Error, url: &RemoteUrl) -> anyhow::Error {
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !why.contains(&text) {
            why = format!("{why}: {text}");
        }
        source = s.source();
    }
    let line = format!("{url}: {}", readable(&why));
    if could_not_connect(e) {
        return anyhow::Error::new(super::object::Unreachable(line));
    }
    anyhow!(line)
}

/// Whether `e` is the client's failure to reach the store at all (to connect, to send, or
/// an answer that did not come in time), from the error's own kind, never from its text
/// (a key or a store's message may say anything).
fn could_not_connect(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(http) = s.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Timeout
            );
        }
        source = s.source();
    }
    false
}

/// How a store that could not be reached is told.
const UNREACHABLE: &str = "could not reach the store";

/// The part of a store error a person needs: `Code: Message (HTTP status)` from an XML or
/// JSON error body, or the connection failure and how long it was retried.
fn readable(why: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = why.find(&open)? + open.len();
        let end = why[start..].find("</")? + start;
        Some(why[start..end].trim().to_string())
    };
    let status = why
        .find("non-2xx status code: ")
        .map(|i| &why[i + 21..])
        .and_then(|rest| rest.split(':').next())
        .map(str::trim);
    if let Some(code) = tag("Code") {
        let message = tag("Message").unwrap_or_default();
        return match status {
            Some(st) => format!("{code}: {message} (HTTP {st})"),
            None => format!("{code}: {message}"),
        };
    }
    if let Some(i) = why.find("error sending request") {
        let retried = why
            .find(" in ")
            .and_then(|at| why[at + 4..].split(", max_retries").next())
            .map(|t| format!(" (for {})", t.replace(", after", ",")))
            .unwrap_or_default();
        let cause = why[i..].rsplit(": ").next().unwrap_or("");
        return format!("{UNREACHABLE}: {cause}{retried}");
    }
    why.replace('\n', " ")
}

/// A client for `url`'s store, configured from the environment (and, for S3, the AWS profile).
fn build(url: &RemoteUrl) -> Result<Client> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    let retry = object_store::RetryConfig {
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_FOR,
        ..object_store::RetryConfig::default()
    };
    let timeout = format!("{}s", REQUEST_TIMEOUT.as_secs());
    let connect = format!("{}s", CONNECT_TIMEOUT.as_secs());
    let base = url.base.trim_end_matches('/');
    let client = match url.scheme {
        Scheme::S3 => {
            let mut b = AmazonS3Builder::from_env();
            b = super::credentials::apply_aws_profile(b, base)?;
            let b = b
                .with_url(base.replacen("s3a://", "s3://", 1))
                .with_retry(retry)
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    &timeout,
                )
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    &connect,
                );
            // S3 Express One Zone's directory buckets list in no order and take no start:
            // they are listed as one stream, never split by prefix or key range.
            let express = b
                .get_config_value(&AmazonS3ConfigKey::S3Express)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                || b.get_config_value(&AmazonS3ConfigKey::Bucket)
                    .is_some_and(|name| name.ends_with("--x-s3"));
            let store = b.build().map_err(|e| store_error(&e, url))?;
            if express {
                Client {
                    store: Arc::new(store),
                    pages: None,
                }
            } else {
                paged(store)
            }
        }
        Scheme::Gcs => paged(
            GoogleCloudStorageBuilder::from_env()
                .with_url(base.replacen("https://storage.googleapis.com/", "gs://", 1))
                .with_retry(retry)
                .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    &connect,
                )
                .build()
                .map_err(|e| store_error(&e, url))?,
        ),
        Scheme::Azure => paged(
            MicrosoftAzureBuilder::from_env()
                .with_url(base.replacen("azure://", "az://", 1))
                .with_retry(retry)
                .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(
                    AzureConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    &connect,
                )
                .build()
                .map_err(|e| store_error(&e, url))?,
        ),
    };
    Ok(client)
}

/// A client with its paged listing.
fn paged<T: ObjectStore + PaginatedListStore>(store: T) -> Client {
    let store = Arc::new(store);
    Client {
        store: store.clone(),
        pages: Some(store),
    }
}

/// Why a download did not finish: the object changed (or the disk failed: final), or the
/// store failed (tried again).
enum Fetch {
    Changed(anyhow::Error),
    Failed(anyhow::Error),
}

/// Tries of one download in all.
pub(crate) const DOWNLOAD_TRIES: u32 = 3;

/// Keys a listing may hold before the walk takes them (a few pages).
const LISTED_AHEAD: usize = 4000;
/// Stops a task on the I/O threads when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a probe object's key begins, after the prefix it probes: then its time (seconds since
/// the epoch), the process id and a random number.
const PROBE: &str = ".fanout-probe-";
/// A probe object older than this was left by a run that was killed.
const PROBE_STALE_SECS: u64 = 3600;

/// Whether the key named `name` after [`PROBE`], last modified at `listed` (the store's
/// clock), is a probe object over an hour old by its name's clock and by the store's.
fn stale_probe(name: &str, listed: i64, now: u64) -> bool {
    let old = |t: u64| now.saturating_sub(t) > PROBE_STALE_SECS;
    probe_time(name).is_some_and(old) && u64::try_from(listed).is_ok_and(old)
}

/// The time in a probe object's name after [`PROBE`] (`TIME-PID-RANDOM`: digits, digits, 16
/// hex digits), or `None` for any other name.
fn probe_time(name: &str) -> Option<u64> {
    let mut parts = name.split('-');
    let (time, pid, random) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    (parts.next().is_none() && digits(time) && digits(pid) && hex)
        .then(|| time.parse().ok())
        .flatten()
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random number for probe names.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::list::PaginatedListOptions;

    /// The conditional writes the job loop relies on, through the store the crate keeps in
    /// memory (which enforces them as S3, GCS and Azure do), under a `gs://` name.
    #[test]
    fn conditional_uploads_refuse_what_changed_and_carry_metadata() {
        let stores = stores();
        stores.insert(
            "gs://memory-test/",
            Arc::new(object_store::memory::InMemory::new()),
        );
        let url = RemoteUrl::parse("gs://memory-test/data/a.csv").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        std::fs::write(&file, b"one\n").unwrap();
        let meta = vec![("fanout-source".to_string(), "x".to_string())];
        let first = stores
            .upload(&file, &url, &Condition::Absent, &meta)
            .unwrap();
        assert_eq!(first.bytes, 4);
        assert!(matches!(
            stores.upload(&file, &url, &Condition::Absent, &meta),
            Err(PutError::Conflict(_))
        ));
        let head = stores.head(&url).unwrap().unwrap();
        assert_eq!(head.object.etag, first.etag);
        assert_eq!(head.metadata, meta);
        std::fs::write(&file, b"two\n").unwrap();
        let current = Condition::Unchanged {
            etag: first.etag.clone(),
            version: None,
        };
        let second = stores.upload(&file, &url, &current, &[]).unwrap();
        assert_ne!(second.etag, first.etag);
        // The version seen before is gone: replacing it again is a conflict.
        match stores.upload(&file, &url, &current, &[]) {
            Err(PutError::Conflict(why)) => {
                assert!(why.contains("changed by someone else"), "{why}");
            }
            other => panic!("not a conflict: {other:?}"),
        }
        let mut listed = Vec::new();
        stores
            .list(&url.with_key(""), "data/", &mut |o| {
                listed.push(o.url.to_string());
                true
            })
            .unwrap();
        assert_eq!(listed, ["gs://memory-test/data/a.csv"]);
        let mut copy = tempfile::tempfile().unwrap();
        let object = stores.head(&url).unwrap().unwrap().object;
        let fetched = stores.download(&object, &mut copy).unwrap();
        assert_eq!((fetched.bytes, fetched.restarts), (4, 0));
        stores.delete(&url).unwrap();
        assert!(stores.head(&url).unwrap().is_none());
        assert!(stores
            .download(&object, &mut copy)
            .unwrap_err()
            .to_string()
            .contains("changed after it was listed"));
    }

    /// A store that answers the first request with 503 (S3's "slow down"): the client
    /// retries it, and the download says how many requests were retried.
    #[test]
    fn a_request_the_client_retried_is_counted_for_the_transfer() {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut answered = 0;
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    // A request's head (GETs have no body).
                    let mut line = String::new();
                    let mut head = 0;
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        head += 1;
                        if line == "\r\n" {
                            break;
                        }
                        line.clear();
                    }
                    if head == 0 {
                        break;
                    }
                    answered += 1;
                    let answer: &[u8] = if answered == 1 {
                        b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nETag: \"e1\"\r\n\
                          Last-Modified: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\nbody"
                    };
                    if conn.write_all(answer).is_err() {
                        break;
                    }
                }
            }
        });
        // Its TLS provider is chosen when the stores are first made.
        let stores = stores();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_bucket_name("retry-test")
            .with_allow_http(true)
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .with_region("us-east-1")
            .build()
            .unwrap();
        stores.insert("s3://retry-test/", Arc::new(store));
        let object = Object {
            url: RemoteUrl::parse("s3://retry-test/a.txt").unwrap(),
            size: 4,
            etag: Some("\"e1\"".into()),
            version: None,
            mtime_ns: 0,
        };
        let mut copy = tempfile::tempfile().unwrap();
        let fetched = stores.download(&object, &mut copy).unwrap();
        assert_eq!(
            fetched,
            crate::remote::object::Fetched {
                bytes: 4,
                restarts: 0,
                store_retries: 1
            }
        );
        // Counted for this thread only, and only while the transfer ran.
        assert_eq!(crate::remote::counted(|| ()).1, 0);
    }

    /// Whether a store could not be reached is read from the error's kind: a refused
    /// connection is; an answer whose message (or key) says the words is not.
    #[test]
    fn unreachable_is_the_error_s_kind_not_its_words() {
        use std::io::{BufRead, BufReader};
        let stores = stores();
        let words = "could not reach the store";
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let body =
                    format!("<Error><Code>AccessDenied</Code><Message>{words}</Message></Error>");
                let _ = write!(
                    conn,
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = |port: u16| {
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_bucket_name("b")
                .with_allow_http(true)
                .with_access_key_id("k")
                .with_secret_access_key("s")
                .with_region("us-east-1")
                .with_retry(object_store::RetryConfig {
                    max_retries: 0,
                    ..object_store::RetryConfig::default()
                })
                .build()
                .unwrap()
        };
        let url = RemoteUrl::parse(&format!("s3://b/{words}.csv")).unwrap();
        let error = |port: u16| {
            let e = stores
                .block_on(client(port).get(&key_path(&url.key)))
                .unwrap_err();
            (could_not_connect(&e), store_error(&e, &url))
        };
        let (refused, line) = error(closed);
        assert!(refused, "{line:#}");
        assert!(crate::remote::unreachable(&line), "{line:#}");
        let (answered, line) = error(open);
        assert!(!answered, "{line:#}");
        assert!(!crate::remote::unreachable(&line), "{line:#}");
        assert!(format!("{line:#}").contains("AccessDenied"), "{line:#}");
    }

    /// Only a key named as a probe is, old by its name and by the store, is a stale probe.
    #[test]
    fn a_stale_probe_is_old_by_both_clocks_and_named_exactly() {
        let now = 1_800_000_000;
        let hour_ago = now as i64 - 3_700;
        let name = |t: u64| format!("{t}-4242-00000000000000aa");
        assert!(stale_probe(&name(now - 3_700), hour_ago, now));
        assert!(
            !stale_probe(&name(now - 3_700), now as i64, now),
            "the store says fresh"
        );
        assert!(
            !stale_probe(&name(now - 60), hour_ago, now),
            "the name says fresh"
        );
        for other in [
            "notes.txt",
            "x/y",
            "1700000000-4242-00000000000000aa.csv",
            "1700000000-4242-aa",
            "1700000000-pid-00000000000000aa",
            "1700000000-4242-00000000000000aa-1",
            "-4242-00000000000000aa",
        ] {
            assert!(!stale_probe(other, hour_ago, now), "{other}");
        }
    }

    /// A store that pages listings two entries at a time (S3 pages 1,000), and counts them;
    /// it ignores a listing's start while its flag says so.
    struct Paged(
        Arc<object_store::memory::InMemory>,
        Arc<Mutex<Vec<Option<String>>>>,
        Arc<std::sync::atomic::AtomicBool>,
    );

    impl PaginatedListStore for Paged {
        fn list_paginated<'a, 'b, 'c>(
            &'a self,
            prefix: Option<&'b str>,
            options: PaginatedListOptions,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = object_store::Result<object_store::list::PaginatedListResult>,
                    > + Send
                    + 'c,
            >,
        >
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                self.1.lock().unwrap().push(options.offset.clone());
                let dir = prefix.map(|p| Path::from(p.trim_end_matches('/')));
                let at: usize = options.page_token.map_or(0, |t| t.parse().unwrap());
                if options.delimiter.is_none() {
                    // Without a delimiter: every key under the prefix after the offset.
                    let mut all: Vec<_> = self
                        .0
                        .list(dir.as_ref())
                        .map(|m| m.unwrap())
                        .collect()
                        .await;
                    let ignore = self.2.load(std::sync::atomic::Ordering::Relaxed);
                    all.retain(|m| {
                        ignore
                            || options
                                .offset
                                .as_deref()
                                .is_none_or(|o| m.location.as_ref() > o)
                    });
                    all.sort_by(|a, b| a.location.cmp(&b.location));
                    let end = (at + 2).min(all.len());
                    return Ok(object_store::list::PaginatedListResult {
                        result: object_store::ListResult {
                            objects: all[at..end].to_vec(),
                            common_prefixes: Vec::new(),
                            extensions: Default::default(),
                        },
                        page_token: (end < all.len()).then(|| end.to_string()),
                    });
                }
                // With a delimiter: objects and common prefixes in one order, as S3 pages them.
                let all = self.0.list_with_delimiter(dir.as_ref()).await?;
                let mut entries: Vec<(String, Option<object_store::ObjectMeta>)> = all
                    .objects
                    .into_iter()
                    .map(|m| (m.location.to_string(), Some(m)))
                    .chain(
                        all.common_prefixes
                            .into_iter()
                            .map(|p| (format!("{p}/"), None)),
                    )
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let end = (at + 2).min(entries.len());
                let page = &entries[at..end];
                Ok(object_store::list::PaginatedListResult {
                    result: object_store::ListResult {
                        objects: page.iter().filter_map(|e| e.1.clone()).collect(),
                        common_prefixes: page
                            .iter()
                            .filter(|e| e.1.is_none())
                            .map(|e| Path::from(e.0.trim_end_matches('/')))
                            .collect(),
                        extensions: Default::default(),
                    },
                    page_token: (end < entries.len()).then(|| end.to_string()),
                })
            })
        }
    }

    /// A listing split by prefix and by key range hands over every object once, past more
    /// prefixes than list at once, through levels holding one prefix and through flat
    /// prefixes of many pages, and stops when the sink has enough.
    #[test]
    fn split_listings_hand_over_every_object_once() {
        let stores = stores();
        let memory = Arc::new(object_store::memory::InMemory::new());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let ignores = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let paged = Paged(memory.clone(), requests.clone(), ignores.clone());
        let pages = Some(Arc::new(paged) as Arc<dyn PaginatedListStore>);
        let client = Client {
            store: memory.clone(),
            pages,
        };
        stores
            .clients
            .lock()
            .unwrap()
            .insert("s3://split-test/".into(), client);
        let mut keys: Vec<String> = vec!["d/top.csv".into(), "d/top2.csv".into()];
        for p in 0..=(listing::LISTERS * 2) {
            keys.extend((0..3).map(|i| format!("d/p{p:02}/k{i}.csv")));
        }
        keys.extend(["d/p00/deeper/x.csv".into(), "other/x.csv".into()]);
        keys.extend(["lone/only/one/a.csv".into(), "lone/only/one/b.csv".into()]);
        keys.extend(["lone/only/two/c.csv".into()]);
        // Flat: 300 keys in 150 pages at the top of `flat/`, and 40 under a common prefix
        // among them; numbered parts in `d/p03/`.
        keys.extend((0..300).map(|n| format!("flat/part-{n:05}.parquet")));
        keys.extend((0..40).map(|n| format!("flat/part-00100.parquet.d/{n}")));
        keys.extend((0..200).map(|n| format!("d/p03/part-{n:04}.csv")));
        let root = RemoteUrl::parse("s3://split-test/").unwrap();
        stores.block_on(async {
            for key in &keys {
                memory
                    .put(&Path::from(key.as_str()), "x".into())
                    .await
                    .unwrap();
            }
        });
        let list = |prefix: &str, most: usize| {
            let mut listed = Vec::new();
            stores
                .list(&root, prefix, &mut |o| {
                    listed.push(o.url.key.clone());
                    listed.len() < most
                })
                .unwrap();
            listed
        };
        // A store that ignores the start: each key once all the same, and the first listing
        // that sees it stops the cutting (each cut would list all before it again).
        ignores.store(true, std::sync::atomic::Ordering::Relaxed);
        requests.lock().unwrap().clear();
        let mut listed = list("flat/", usize::MAX);
        listed.sort();
        let mut want: Vec<_> = keys
            .iter()
            .filter(|k| k.starts_with("flat/"))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(listed, want, "a store that ignores the start");
        let requests_made = requests.lock().unwrap().len();
        // One sequence is 171 pages here; a cut lists them again once, and no more cuts.
        assert!(requests_made < 3 * 171, "{requests_made} requests");
        ignores.store(false, std::sync::atomic::Ordering::Relaxed);
        for prefix in ["d/", "lone/", "flat/", ""] {
            requests.lock().unwrap().clear();
            let mut listed = list(prefix, usize::MAX);
            let cuts = requests.lock().unwrap().iter().flatten().count();
            if prefix != "lone/" {
                assert!(cuts > 0, "under {prefix:?}: listed in one sequence");
            }
            listed.sort();
            let mut want: Vec<_> = keys
                .iter()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            want.sort();
            assert_eq!(listed, want, "under {prefix:?}");
        }
        assert_eq!(list("d/", 5).len(), 5);
    }
}
