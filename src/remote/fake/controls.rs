//! What a test reads from and asks of the fake besides the tree: the methods of
//! [`Remote`](crate::remote::Remote) by name, and the call counters.

/// The methods of [`Remote`](crate::remote::Remote), for counters and failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// [`Remote::check`](crate::remote::Remote::check).
    Check,
    /// [`Remote::list_folder`](crate::remote::Remote::list_folder).
    ListFolder,
    /// [`Remote::folder_attrs`](crate::remote::Remote::folder_attrs).
    FolderAttrs,
    /// [`Remote::asset_metadata`](crate::remote::Remote::asset_metadata).
    AssetMetadata,
    /// [`Remote::renditions`](crate::remote::Remote::renditions).
    Renditions,
    /// [`Remote::tag`](crate::remote::Remote::tag).
    Tag,
    /// [`Remote::fetch`](crate::remote::Remote::fetch).
    Fetch,
    /// [`Remote::search`](crate::remote::Remote::search).
    Search,
}

/// Calls received per method (counted on entry, whether they then stall, fail or succeed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// [`Remote::check`](crate::remote::Remote::check) calls.
    pub check: u64,
    /// [`Remote::list_folder`](crate::remote::Remote::list_folder) calls.
    pub list_folder: u64,
    /// [`Remote::folder_attrs`](crate::remote::Remote::folder_attrs) calls.
    pub folder_attrs: u64,
    /// [`Remote::asset_metadata`](crate::remote::Remote::asset_metadata) calls.
    pub asset_metadata: u64,
    /// [`Remote::renditions`](crate::remote::Remote::renditions) calls.
    pub renditions: u64,
    /// [`Remote::tag`](crate::remote::Remote::tag) calls.
    pub tag: u64,
    /// [`Remote::fetch`](crate::remote::Remote::fetch) calls.
    pub fetch: u64,
    /// [`Remote::search`](crate::remote::Remote::search) calls.
    pub search: u64,
}

impl CallCounts {
    pub(super) fn slot(&mut self, method: Method) -> &mut u64 {
        match method {
            Method::Check => &mut self.check,
            Method::ListFolder => &mut self.list_folder,
            Method::FolderAttrs => &mut self.folder_attrs,
            Method::AssetMetadata => &mut self.asset_metadata,
            Method::Renditions => &mut self.renditions,
            Method::Tag => &mut self.tag,
            Method::Fetch => &mut self.fetch,
            Method::Search => &mut self.search,
        }
    }

    /// The count for one method.
    pub fn get(&self, method: Method) -> u64 {
        let mut counts = *self;
        *counts.slot(method)
    }

    /// Calls of every method together.
    pub fn total(&self) -> u64 {
        self.check
            + self.list_folder
            + self.folder_attrs
            + self.asset_metadata
            + self.renditions
            + self.tag
            + self.fetch
            + self.search
    }
}
