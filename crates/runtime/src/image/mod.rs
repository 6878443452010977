//! Images: the content store, registries, archives, layer unpacking and building.
//!
//! ```text
//! digest      sha256:<hex>, validated before it names a file
//! reference   [registry/]repository[:tag][@digest], normalised as Docker does
//! platform    linux/amd64, linux/arm/v7 and choosing among them
//! manifest    manifests, indexes and configs parsed as hostile input; platform choice
//! store       blobs, references, unpacked layers, leases and GC under <data dir>/images
//! archive     OCI layout and docker save import, OCI layout tar export, preloading
//! ```

pub mod archive;
pub mod build;
pub mod bundle;
pub mod digest;
pub mod manifest;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod transfer;
pub mod unpack;
pub mod yaml;
