//! Records when this build was made, for the clock rule of boxes without a real-time
//! clock (`clock::build_time`): SOURCE_DATE_EPOCH when set (reproducible builds), else
//! the time of the first build of this crate.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=MOOR_BUILD_UNIX={secs}");
}
