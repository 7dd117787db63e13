//! Remote datasets: roots and inputs named by URL (`s3://`, `gs://`, `az://`), listed into
//! inputs, staged on local disk for the jobs that read `{}`, and written back with conditional
//! uploads that carry the provenance `-u` and `--resume` check. The store clients and their
//! async runtime stay in store.rs (store_off.rs in a build without the `remote` feature);
//! everything else here is plain blocking code.

#[cfg(feature = "remote")]
mod credentials;
mod footer;
#[cfg(feature = "remote")]
mod keyspace;
mod list;
#[cfg(feature = "remote")]
mod listing;
mod object;
pub(crate) mod provenance;
#[cfg(feature = "remote")]
mod retries;
#[cfg(not(feature = "remote"))]
mod retries {
    /// Without stores nothing is retried.
    pub(crate) fn counted<T>(f: impl FnOnce() -> T) -> (T, u32) {
        (f(), 0)
    }
}
mod stage;
#[cfg(feature = "remote")]
mod store;
#[cfg(not(feature = "remote"))]
#[path = "store_off.rs"]
mod store;
mod url;

pub(crate) use footer::{footer, weight};
pub(crate) use list::{list_root, named, KeyFilter};
pub(crate) use object::{unreachable, Condition, Object, PutError, Written};
pub(crate) use retries::counted;
pub(crate) use stage::{JobStage, Stage, Transfer};
pub(crate) use store::stores;
pub(crate) use url::{looks_remote, RemoteUrl};
