//! The pending-request spool, `<state dir>/requests/ID.json`: the one place in the state dir an
//! agent may write, so everything read from it is untrusted. A file is never followed through a
//! symlink, never read whole when oversized, and appears under its final name complete.

use std::path::{Path, PathBuf};

use super::request::Request;
use super::{check_id, files, OverrideError};
use crate::paths::Locations;
use crate::vocab::IoError;

/// The file of request `id` in the spool.
///
/// The spool directory itself must be a real directory: if an agent could replace it with a
/// symlink, a human's command would read, rewrite and remove files wherever it points.
/// (`O_NOFOLLOW` only guards the last component of a path.)
pub(super) fn request_file(locations: &Locations, id: &str) -> Result<PathBuf, OverrideError> {
    check_id(id)?;
    let dir = &locations.requests_dir;
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink() || !m.is_dir()) {
        return Err(OverrideError::NotADirectory { path: dir.clone() });
    }
    Ok(dir.join(format!("{id}.json")))
}

/// Read one request file; `Ok(None)` when it does not exist. The id inside must match the name.
pub(super) fn read_request(
    locations: &Locations,
    id: &str,
) -> Result<Option<Request>, OverrideError> {
    let path = request_file(locations, id)?;
    let Some((bytes, meta)) = files::read_regular_with_meta(&path)? else {
        return Ok(None);
    };
    let mut request: Request =
        serde_json::from_slice(&bytes).map_err(|e| OverrideError::Malformed {
            path: path.clone(),
            message: format!("not an override request: {e}"),
        })?;
    if request.id != id {
        return Err(OverrideError::Malformed {
            path,
            message: format!("holds request {:?}, not {id:?}", request.id),
        });
    }
    {
        use std::os::unix::fs::MetadataExt;
        request.arrived_at = u64::try_from(meta.ctime()).unwrap_or(0);
    }
    Ok(Some(request))
}

/// Every pending request, oldest first; files that are not valid requests are returned as
/// errors so `list` can show them (the spool is agent-writable).
pub fn load_pending(
    locations: &Locations,
) -> Result<Vec<Result<Request, OverrideError>>, OverrideError> {
    let dir = &locations.requests_dir;
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(OverrideError::NotADirectory { path: dir.clone() });
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(IoError::at(dir, "list the requests spool")(source).into()),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        out.push(match read_request(locations, id) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => continue,
            Err(e) => Err(e),
        });
    }
    out.sort_by_key(|r| r.as_ref().map(|r| (r.created_at, r.id.clone())).ok());
    Ok(out)
}

/// A new request id: `r-` and 8 hex digits, unlikely to repeat and short enough to type.
pub(super) fn new_id(path: &Path, attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&nanos.to_le_bytes());
    feed(&std::process::id().to_le_bytes());
    feed(&attempt.to_le_bytes());
    feed(path.as_os_str().as_encoded_bytes());
    format!("r-{:08x}", (hash ^ (hash >> 32)) as u32)
}

/// Write `request` to its file in the spool, atomically.
pub(super) fn write_request(locations: &Locations, request: &Request) -> Result<(), OverrideError> {
    let file = request_file(locations, &request.id)?;
    let bytes = serde_json::to_vec_pretty(request).map_err(|e| OverrideError::Malformed {
        path: file.clone(),
        message: format!("cannot encode the request: {e}"),
    })?;
    files::write_atomic(&file, &bytes)
        .map_err(|source| IoError::at(&file, "write the override request")(source).into())
}

/// Remove request `id` from the spool (after a decision).
pub(super) fn remove_request(locations: &Locations, id: &str) -> Result<(), OverrideError> {
    let file = request_file(locations, id)?;
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(IoError::at(&file, "remove the decided request")(source).into()),
    }
}
