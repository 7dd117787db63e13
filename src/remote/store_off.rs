//! The stores in a fanout built without the `remote` feature: every call says so, in one line.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Result};

use super::object::{Condition, Head, Object, PutError, Written};
use super::url::RemoteUrl;

const OFF: &str =
    "this fanout was built without remote support (the `remote` feature): it cannot read";

pub(crate) struct Stores;

pub(crate) fn stores() -> &'static Stores {
    &Stores
}

#[allow(
    clippy::unused_self,
    reason = "the same calls as the stores of a build with them"
)]
impl Stores {
    pub(crate) fn list(
        &self,
        root: &RemoteUrl,
        _prefix: &str,
        _sink: &mut dyn FnMut(Object) -> bool,
    ) -> Result<()> {
        bail!("{OFF} {root}")
    }

    pub(crate) fn check(&self, url: &RemoteUrl) -> Result<()> {
        bail!("{OFF} {url}")
    }

    pub(crate) fn head(&self, url: &RemoteUrl) -> Result<Option<Head>> {
        bail!("{OFF} {url}")
    }

    pub(crate) fn download(
        &self,
        object: &Object,
        _to: &mut File,
    ) -> Result<super::object::Fetched> {
        bail!("{OFF} {}", object.url)
    }

    pub(crate) fn read_tail(&self, object: &Object, _len: u64) -> Result<Vec<u8>> {
        bail!("{OFF} {}", object.url)
    }

    pub(crate) fn upload(
        &self,
        _from: &Path,
        to: &RemoteUrl,
        _condition: &Condition,
        _metadata: &[(String, String)],
    ) -> Result<Written, PutError> {
        Err(PutError::Other(anyhow::anyhow!("{OFF} {to}")))
    }

    pub(crate) fn probe(&self, url: &RemoteUrl) -> Result<Option<String>> {
        bail!("{OFF} {url}")
    }

    #[allow(
        dead_code,
        reason = "the same calls as the stores of a build with them"
    )]
    pub(crate) fn delete(&self, url: &RemoteUrl) -> Result<()> {
        bail!("{OFF} {url}")
    }
}
