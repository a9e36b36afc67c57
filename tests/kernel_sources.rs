//! build.rs embeds exactly the kernels/*.cu files, byte for byte.
use edgedistill::backend::kernels::{KERNEL_SOURCES, source};

#[test]
fn embedded_kernels_match_the_kernels_folder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    on_disk.sort();
    let embedded: Vec<(String, String)> = KERNEL_SOURCES
        .iter()
        .map(|(s, src)| (s.to_string(), src.to_string()))
        .collect();
    assert_eq!(embedded, on_disk);
    for (stem, src) in &on_disk {
        assert_eq!(source(stem), Some(src.as_str()));
    }
    assert_eq!(source("no-such-kernel"), None);
}
