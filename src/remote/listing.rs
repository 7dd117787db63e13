//! Listing a root on the I/O threads, split so that pages do not wait on one another: by
//! prefix (a delimiter listing, then each common prefix listed on its own) and, where a prefix
//! is flat, by key range (a listing that still has pages to go hands the keys past a cut to a
//! new listing that starts after it, [`super::keyspace::cut`]). Every listing sends its objects
//! into one bounded queue; together they send every key once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::keyspace;

/// Listings that go on at once beside the first (of common prefixes, and of key ranges).
pub(super) const LISTERS: usize = 8;
/// How many levels holding one common prefix and nothing else a split listing goes down.
const DESCEND: usize = 8;

/// What the listings of one root share: the slots of the listings that go on at once, and
/// whether cutting key ranges still pays (not once the store was seen to ignore a listing's
/// start, which makes every cut list again what came before it).
struct Listers {
    slots: Arc<Semaphore>,
    cut: AtomicBool,
}

/// What a listing hands over: an object, or the error that ended it.
pub(super) type ListTx = tokio::sync::mpsc::Sender<object_store::Result<object_store::ObjectMeta>>;

/// Sends every object under `prefix` (a directory, or the whole bucket) into `tx`, in one
/// stream of pages, until the listing ends, fails (the error is sent last), or no one takes.
/// For stores without paged listings (the in-memory store of the tests).
pub(super) async fn one(store: Arc<dyn ObjectStore>, prefix: Option<Path>, tx: ListTx) {
    let mut stream = store.list(prefix.as_ref());
    while let Some(meta) = stream.next().await {
        let failed = meta.is_err();
        if tx.send(meta).await.is_err() || failed {
            break;
        }
    }
}

/// Lists `dir` (a key prefix ending in `/`, or empty: the bucket) split by prefix. The pages
/// of one listing come one after another, so a large listing is split: a delimiter listing
/// of `dir` (one request per 1,000 entries) sends the objects directly in it and starts a
/// listing of each common prefix, [`LISTERS`] at once, each split by key range as it goes
/// ([`range`]). A level holding one common prefix and nothing else is gone down into. A level
/// whose first page holds objects only, and more pages to come, is flat: the rest of it is
/// listed without a delimiter, split by key range. Costs one request more per common prefix,
/// at most, and one per cut.
pub(super) async fn split(pages: Arc<dyn PaginatedListStore>, mut dir: String, tx: ListTx) {
    let listers = Arc::new(Listers {
        slots: Arc::new(Semaphore::new(LISTERS)),
        cut: AtomicBool::new(true),
    });
    let mut token: Option<String> = None;
    let mut descend = DESCEND;
    loop {
        let first = token.is_none();
        let options = PaginatedListOptions {
            delimiter: Some("/".into()),
            page_token: token.take(),
            ..PaginatedListOptions::default()
        };
        let prefix = (!dir.is_empty()).then_some(dir.as_str());
        let page = match pages.list_paginated(prefix, options).await {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let (objects, subs) = (page.result.objects, page.result.common_prefixes);
        let lone = first && page.page_token.is_none() && objects.is_empty() && subs.len() == 1;
        if lone && descend > 0 {
            descend -= 1;
            dir = format!("{}/", subs[0]);
            continue;
        }
        // Flat so far: everything after this page's last key, at any depth, is the rest.
        let flat = first && page.page_token.is_some() && subs.is_empty();
        let last = objects.last().map(|m| m.location.to_string());
        for meta in objects {
            if tx.send(Ok(meta)).await.is_err() {
                return;
            }
        }
        if let (true, Some(last)) = (flat, last) {
            return range(pages, dir, Some(last), None, tx, listers, None).await;
        }
        for sub in subs {
            let Ok(slot) = listers.slots.clone().acquire_owned().await else {
                return;
            };
            if tx.is_closed() {
                return;
            }
            let sub = format!("{sub}/");
            let job = range(
                pages.clone(),
                sub,
                None,
                None,
                tx.clone(),
                listers.clone(),
                None,
            );
            tokio::spawn(async move {
                job.await;
                drop(slot);
            });
        }
        match page.page_token {
            Some(next) => token = Some(next),
            None => return,
        }
    }
}

/// Lists the keys under `prefix` after `after` up to and including `end` (`None`: all that
/// follow), without a delimiter, page by page. After each page that leaves more to come, if
/// a listing slot is free and the rest can be cut, a new listing (holding that slot) takes the
/// keys past the cut and this one stops at it. Keys outside the range are dropped, so a store
/// that ignored the start still hands each key to one listing only.
fn range(
    pages: Arc<dyn PaginatedListStore>,
    prefix: String,
    after: Option<String>,
    mut end: Option<String>,
    tx: ListTx,
    listers: Arc<Listers>,
    slot: Option<OwnedSemaphorePermit>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _slot = slot;
        let mut token: Option<String> = None;
        let mut seen: Option<(String, String)> = None;
        let mut pages_seen = 0u32;
        loop {
            let options = PaginatedListOptions {
                offset: after.clone(),
                page_token: token.take(),
                ..PaginatedListOptions::default()
            };
            let listed = (!prefix.is_empty()).then_some(prefix.as_str());
            let page = match pages.list_paginated(listed, options).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            pages_seen += 1;
            for meta in page.result.objects {
                let key = meta.location.as_ref();
                if let Some(a) = after.as_deref().filter(|a| key <= *a) {
                    // Before the start (not at it: GCS and Azure start there): the store
                    // ignored it, and every cut would list all before it again.
                    if key < a {
                        listers.cut.store(false, Ordering::Relaxed);
                    }
                    continue;
                }
                // Keys come in order: the rest belong to the listing past the cut.
                if end.as_deref().is_some_and(|e| key > e) {
                    return;
                }
                match &mut seen {
                    Some((_, last)) => key.clone_into(last),
                    None => seen = Some((key.to_string(), key.to_string())),
                }
                if tx.send(Ok(meta)).await.is_err() {
                    return;
                }
            }
            let Some(next) = page.page_token else { return };
            token = Some(next);
            let Some((first, last)) = &seen else { continue };
            if !listers.cut.load(Ordering::Relaxed) {
                continue;
            }
            let Ok(permit) = listers.slots.clone().try_acquire_owned() else {
                continue;
            };
            if let Some(at) = keyspace::cut(&prefix, first, last, pages_seen, end.as_deref()) {
                let rest = range(
                    pages.clone(),
                    prefix.clone(),
                    Some(at.clone()),
                    end.take(),
                    tx.clone(),
                    listers.clone(),
                    Some(permit),
                );
                tokio::spawn(rest);
                end = Some(at);
            }
        }
    })
}
