//! Preloading a directory of archives.

use std::time::{Duration, SystemTime};

use super::{new_store, r, tagged_image, write};
use crate::image::archive::{ArchiveError, import_preload_dir, save};
use crate::image::platform::Platform;
use crate::image::store::test_support::gzip;

#[test]
fn preload_imports_new_archives_once_and_reports_bad_ones() {
    let (_s, source) = new_store();
    tagged_image(&source, "one:1");
    let dir = tempfile::tempdir().unwrap();
    let preload = dir.path().join("preload");
    std::fs::create_dir(&preload).unwrap();
    save(&source, &[r("one:1")], &preload.join("a.tar")).unwrap();
    let plain = std::fs::read(preload.join("a.tar")).unwrap();
    write(&preload.join("b.tar.gz"), &gzip(&plain));
    write(&preload.join("junk.txt"), b"not an archive");
    write(&preload.join(".hidden"), b"ignored");

    let (_t, store) = new_store();
    let host = Platform::host();
    let report = import_preload_dir(&store, &preload, &host).unwrap();
    let imported: Vec<_> = report
        .imported
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(imported, ["a.tar", "b.tar.gz"]);
    assert_eq!(report.imported[0].1[0].reference, Some(r("one:1")));
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].0.ends_with("junk.txt"));
    assert!(matches!(
        report.failed[0].1,
        ArchiveError::Read { .. } | ArchiveError::UnknownFormat { .. }
    ));
    assert!(report.skipped.is_empty());

    // Next boot: nothing new; the bad file is tried again.
    let report = import_preload_dir(&store, &preload, &host).unwrap();
    assert!(report.imported.is_empty());
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(report.failed.len(), 1);

    // Touched but unchanged: skipped after hashing. Changed: imported again.
    let later = SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(preload.join("a.tar"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let report = import_preload_dir(&store, &preload, &host).unwrap();
    assert!(report.imported.is_empty());
    assert_eq!(report.skipped.len(), 2);
    tagged_image(&source, "two:2");
    save(&source, &[r("two:2")], &preload.join("a.tar")).unwrap();
    let report = import_preload_dir(&store, &preload, &host).unwrap();
    assert_eq!(report.imported.len(), 1);
    assert_eq!(report.imported[0].1[0].reference, Some(r("two:2")));
}
