//! What is read from disk: regular files only and at most [`MAX_FILE_BYTES`] each,
//! the directories listed for manifests, and the stamps and digests that tell which
//! files changed without keeping their bytes.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{MAX_FILE_BYTES, ManifestError};
use crate::view::SourceError;

/// Length and two independent 64-bit hashes of some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentDigest(usize, u64, u64);

impl ContentDigest {
    pub(super) fn of(content: &[u8]) -> Self {
        let hash = |key: u64| {
            let mut h =
                std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            h.write_u64(key);
            h.write(content);
            h.finish()
        };
        Self(content.len(), hash(0x9e37_79b9_7f4a_7c15), hash(0xc2b2_ae3d_27d4_eb4f))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Stamp {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() }
    }
}

/// A regular file's bytes, up to [`MAX_FILE_BYTES`]. Anything else (a FIFO, a device)
/// is refused before it is opened, so it cannot block or flood the reader.
pub(super) fn read_limited(path: &Path) -> Result<(Stamp, Vec<u8>), ManifestError> {
    let shown = || path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|source| ManifestError::Read { path: shown(), source })?;
    if !meta.is_file() {
        return Err(ManifestError::Unreadable {
            path: shown(),
            message: "not a regular file".into(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        let message = format!("{} bytes; manifests may hold at most {MAX_FILE_BYTES}", meta.len());
        return Err(ManifestError::Unreadable { path: shown(), message });
    }
    let file = std::fs::File::open(path)
        .map_err(|source| ManifestError::Read { path: shown(), source })?;
    let mut content = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|source| ManifestError::Read { path: shown(), source })?;
    if content.len() as u64 > MAX_FILE_BYTES {
        let message = format!("more than {MAX_FILE_BYTES} bytes");
        return Err(ManifestError::Unreadable { path: shown(), message });
    }
    Ok((Stamp::of(&meta), content))
}

/// The `.yaml`/`.yml` files of `dir`, not of its subdirectories: a directory is read
/// as `kubectl apply -f DIR` reads it, so one directory gives the same objects to both
/// (and `examples/cluster/`, which needs a cluster, stays out of `--manifests examples`).
pub(super) fn list_dir(
    dir: &Path,
    found: &mut BTreeSet<PathBuf>,
    errors: &mut Vec<SourceError>,
    unlisted: &mut Vec<PathBuf>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(SourceError { file: dir.display().to_string(), message: e.to_string() });
            unlisted.push(dir.to_path_buf());
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors
                    .push(SourceError { file: dir.display().to_string(), message: e.to_string() });
                unlisted.push(dir.to_path_buf());
                return;
            }
        };
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue; // editor swap files and the like
        }
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if yaml && !path.is_dir() {
            found.insert(path);
        }
    }
}
