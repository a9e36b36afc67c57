//! Embeds every CUDA C source in kernels/*.cu into the binary (DESIGN.md: kernels are
//! compiled at run time by NVRTC, so no nvcc is needed to build the crate). Writes
//! $OUT_DIR/kernels.rs: `pub const KERNEL_SOURCES: &[(&str, &str)]` = (file stem, source).
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read at run time, not with env!(): a target dir copied between checkouts (git
    // worktrees) reuses the compiled build script, which would keep reading the old tree.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("kernels");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cu"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from(
        "/// (file stem, CUDA C source) of every kernels/*.cu, sorted by name.\npub const KERNEL_SOURCES: &[(&str, &str)] = &[\n",
    );
    for p in &names {
        println!("cargo:rerun-if-changed={}", p.display());
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("kernel file names are UTF-8");
        writeln!(
            out,
            "    ({stem:?}, include_str!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("kernels.rs");
    std::fs::write(dest, out).expect("write kernels.rs");
}
