//! Opening a rendition for reading: materializing its asset first, then fetching the
//! rendition if the first open left it out, then the content file, or the temporary file of
//! a transfer still in progress with the transfer to wait on.

use std::fs::File;
use std::sync::Arc;

use super::{AssetContent, Materializer, OpenRendition, PinGuard, RenditionState, transfer};
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
            let state = match content.rendition(rendition) {
                Some(state) => state,
                None => self.fetch_left_out(&content, rendition, deadline).await?,
            };
            match state {
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

    /// Fetches a rendition of `content` that its first open left out (see
    /// [`super::RenditionSelection`]): one transfer per asset and rendition however many
    /// open it, each step bounded by the fetch timeout, committed to the cache beside the
    /// asset's other renditions (for the same version as they), in the background when it
    /// is larger than the async threshold. A name the manifest does not list is not found.
    async fn fetch_left_out(
        self: &Arc<Self>,
        content: &Arc<AssetContent>,
        rendition: &str,
        deadline: Deadline,
    ) -> FsResult<RenditionState> {
        let asset = content.manifest.path.clone();
        if !content.manifest.renditions.iter().any(|r| r.name == rendition) {
            return Err(FsError::NotFound);
        }
        // Keyed by the content too: an opener of a newer version never joins the fetch for
        // an older one.
        let key = (asset.clone(), rendition.to_string(), Arc::as_ptr(content) as usize);
        let what = format!("{asset} rendition {rendition}");
        self.rendition_flights
            .run(key, deadline, &what, || {
                let (this, content, name) = (Arc::clone(self), Arc::clone(content), rendition.to_string());
                async move { this.fetch_one(content, name).await }
            })
            .await
    }

    async fn fetch_one(
        self: Arc<Self>,
        content: Arc<AssetContent>,
        name: String,
    ) -> FsResult<RenditionState> {
        if let Some(state) = content.rendition(&name) {
            // Fetched by a flight that ended just before this one began.
            return Ok(state);
        }
        let manifest = Arc::clone(&content.manifest);
        let entry = manifest.renditions.iter().find(|r| r.name == name).ok_or(FsError::NotFound)?;
        let asset = manifest.path.as_str();
        // One rendition larger than the whole cache is served from its temporary file, as an
        // asset larger than the whole cache is.
        let fits = self.cache.cap().is_none_or(|cap| manifest.listed_size(entry).is_none_or(|s| s <= cap));
        let job = self.job(&manifest, entry, !content.uncached && fits, &content.superseded);
        let _pin = PinGuard::new(&self.cache, asset);
        if job.keep {
            self.make_room(asset, job.expected.unwrap_or(0)).await;
        }
        if self.in_background(&job) {
            self.start_background(asset, &content, job).await?;
            return content
                .rendition(&name)
                .ok_or_else(|| FsError::Internal(format!("{asset}: {name} not started")));
        }
        let (_, work) =
            transfer::start(Arc::clone(&self.remote), Arc::clone(&self.cache), Arc::clone(&self.stats), job)
                .await?;
        let fetched = work.await?;
        Ok(content.complete(&name, &fetched))
    }
}

/// Opens a file for reading on a blocking thread (opening waits on the disk).
async fn open_file(path: &std::path::Path) -> std::io::Result<File> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || File::open(path)).await.map_err(std::io::Error::other)?
}
