//! Watches the manifest roots and reads again what changed: 1 ms after a file was
//! closed, renamed into place or removed, 50 ms after a write still in progress, on
//! SIGHUP, and every 5 s for file systems that report nothing.

use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, Watcher};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::{Manifests, SETTLE, Target};
use crate::sink::{SinkError, SinkHandle};

/// How long file events are collected before a reload while a file is being
/// written (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long after a file was closed, renamed into place or removed: the events of
/// the same save arrive within microseconds, and a reload only reads the files
/// whose size, mtime or inode changed, so an extra one costs little.
const WRITTEN_DEBOUNCE: Duration = Duration::from_millis(1);
/// A rescan even without file events, for file systems that do not report them.
const RESCAN: Duration = Duration::from_secs(5);

/// Registers the count of manifest reads (`manifest_reads_total`).
pub fn register_reads(registry: &mut prometheus_client::registry::Registry) -> Counter {
    let reads = Counter::default();
    let help =
        "Times the manifest files were looked at (start, file events, SIGHUP, periodic rescan)";
    registry.register("manifest_reads", help, reads.clone());
    reads
}

/// Reads the manifests off the runtime's threads, then commits what changed.
pub async fn load(
    manifests: Manifests,
    reads: &Counter,
    target: &mut impl Target,
) -> Result<Manifests, SinkError> {
    reads.inc();
    let (mut manifests, pending) = tokio::task::spawn_blocking(move || {
        let pending = manifests.read();
        (manifests, pending)
    })
    .await
    .expect("the manifest reader does not panic");
    manifests.commit(pending, target).await?;
    Ok(manifests)
}

/// What a file event under the roots says about the manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileEvent {
    /// Opened or read (the reloads' own reads among them): nothing changed.
    Looked,
    /// Being written: more is likely to follow.
    Writing,
    /// Closed after writing, renamed into place, or removed: read it now.
    Written,
}

impl FileEvent {
    fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => FileEvent::Written,
            // A reload opens the directories and files it reads; reacting to that
            // kept the server re-reading its manifests every DEBOUNCE, forever.
            EventKind::Access(_) => FileEvent::Looked,
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => FileEvent::Written,
            // A created file is written next; data and metadata changes may go on.
            _ => FileEvent::Writing,
        }
    }

    fn debounce(self) -> Duration {
        if self == FileEvent::Written { WRITTEN_DEBOUNCE } else { DEBOUNCE }
    }
}

/// Reads the manifests again whenever a file under the roots changes, on every
/// `reload` (SIGHUP) and every [`RESCAN`], and hands what changed to the sink.
pub async fn run(
    mut manifests: Manifests,
    reads: Counter,
    mut sink: SinkHandle,
    reload: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let news = FileEvent::of(&event.kind);
                if news != FileEvent::Looked {
                    let _ = tx.send(news);
                }
            }
        }) {
            Ok(w) => Some(w),
            Err(error) => {
                tracing::warn!(%error, "file watching unavailable; rescanning periodically");
                None
            }
        };
    if let Some(w) = watcher.as_mut() {
        for root in manifests.roots() {
            // Watch a file's directory: editors replace files by renaming over them.
            let (target, mode) = if root.is_dir() {
                (root.clone(), notify::RecursiveMode::NonRecursive)
            } else {
                (
                    root.parent()
                        .map(
                            |p| if p.as_os_str().is_empty() { ".".into() } else { p.to_path_buf() },
                        )
                        .unwrap_or_else(|| ".".into()),
                    notify::RecursiveMode::NonRecursive,
                )
            };
            if let Err(error) = w.watch(&target, mode) {
                tracing::warn!(%error, path = %target.display(), "cannot watch manifests; rescanning periodically");
            }
        }
    }
    // The start has just read everything: the first rescan is one period away.
    let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + RESCAN, RESCAN);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            event = rx.recv() => {
                // The watcher lives here: its channel cannot close before this loop ends.
                let Some(first) = event else { return Ok(()) };
                if !gather_burst(&mut rx, first).await {
                    return Ok(());
                }
            }
            _ = rescan.tick() => {}
            () = reload.notified() => {}
            () = tokio::time::sleep(SETTLE), if manifests.settling() => {}
        }
        manifests = load(manifests, &reads, &mut sink).await?;
    }
}

/// Takes the events of one burst: until the debounce of the first has passed, or
/// a written file's shorter one. False when the watcher is gone.
async fn gather_burst(rx: &mut UnboundedReceiver<FileEvent>, first: FileEvent) -> bool {
    let mut until = tokio::time::Instant::now() + first.debounce();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            more = rx.recv() => match more {
                None => return false,
                Some(news) => until = until.min(tokio::time::Instant::now() + news.debounce()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn reads_are_no_news_and_finished_writes_are_read_at_once() {
        let looked = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ];
        for kind in looked {
            assert_eq!(FileEvent::of(&kind), FileEvent::Looked, "{kind:?}");
        }
        let written = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(RemoveKind::File),
        ];
        for kind in written {
            assert_eq!(FileEvent::of(&kind), FileEvent::Written, "{kind:?}");
        }
        let writing = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Any,
            EventKind::Other,
        ];
        for kind in writing {
            assert_eq!(FileEvent::of(&kind), FileEvent::Writing, "{kind:?}");
        }
        assert!(FileEvent::Written.debounce() < FileEvent::Writing.debounce());
    }
}
