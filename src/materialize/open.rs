//! Opening a rendition for reading: materializing its asset first, then the content file,
//! or the temporary file of a transfer still in progress with the transfer to wait on.

use std::fs::File;
use std::sync::Arc;

use super::{Materializer, OpenRendition, RenditionState, transfer};
use crate::deadline::Deadline;
use crate::error::{FsError, FsResult};
use crate::remote::Remote;

impl<R: Remote> Materializer<R> {
    /// Opens a rendition for reading, materializing its asset first.
    pub async fn open(
        self: &Arc<Self>,
        asset: &str,
        rendition: &str,
        deadline: Deadline,
    ) -> FsResult<OpenRendition> {
        match self.open_once(asset, rendition, deadline).await {
            // Removed under us (eviction, `damfs cache verify`): fetch it again, once.
            Err(FsError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                log::warn!("cache: a file of {asset} vanished; fetching it again");
                self.open_once(asset, rendition, deadline).await
            }
            other => other,
        }
    }
    async fn open_once(
        self: &Arc<Self>,
        asset: &str,
        rendition: &str,
        deadline: Deadline,
    ) -> FsResult<OpenRendition> {
        let content = self.materialize(asset, deadline).await?;
        // A transfer may finish (and rename its file) between reading the state and
        // opening the file: read the state again then.
        for _ in 0..3 {
            match content.rendition(rendition).ok_or(FsError::NotFound)? {
                RenditionState::Complete { path, size } => match open_file(&path).await {
                    Ok(file) => return Ok(OpenRendition { file, size: Some(size), transfer: None }),
                    Err(e) => {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            self.cache.forget_rendition(asset, rendition);
                            self.forget(asset, &content);
                        }
                        return Err(FsError::Io(e));
                    }
                },
                RenditionState::InFlight(t) => match open_file(&t.temp).await {
                    Ok(file) => {
                        let size = t.progress().total;
                        return Ok(OpenRendition { file, size, transfer: Some(t) });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let progress = t.wait_for(u64::MAX, deadline, rendition).await?;
                        if let transfer::Phase::Done(path) = progress.phase {
                            let file = open_file(&path).await?;
                            return Ok(OpenRendition { file, size: Some(progress.written), transfer: None });
                        }
                    }
                    Err(e) => return Err(FsError::Io(e)),
                },
            }
        }
        Err(FsError::Abandoned(format!("opening {asset} rendition {rendition} while its transfer ends")))
    }
}

/// Opens a file for reading on a blocking thread (opening waits on the disk).
async fn open_file(path: &std::path::Path) -> std::io::Result<File> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || File::open(path)).await.map_err(std::io::Error::other)?
}
