//! Images: the content store, registries, archives, layer unpacking and building.
//!
//! ```text
//! digest      sha256:<hex>, validated before it names a file
//! reference   [registry/]repository[:tag][@digest], normalised as Docker does
//! platform    linux/amd64, linux/arm/v7 and choosing among them
//! ```

pub mod digest;
pub mod platform;
pub mod reference;
