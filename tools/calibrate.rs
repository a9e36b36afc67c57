//! ed-calibrate: INT8 activation ranges for the trained student. See `--help`.
use edgedistill::engine::calibrate::{CalibOptions, calibrate};
use edgedistill::engine::export::default_out_dir;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ed-calibrate --model DIR_OR_FILE --data train.json --images DIR
                    [--method entropy|percentile|minmax] [--num 512] [--seed 0] [--batch 4]
                    [--out CACHE]

Runs the fp32 student over --num images sampled (seeded) from the COCO file (file names
relative to --images), letterboxed at the model's size, and records every conv input that
the INT8 engine quantizes. Writes the calibration cache (default: optimized/calib_cache.json
in the run directory) holding each tensor's range by all three methods: minmax (largest
|x|), percentile (99.99th of |x|) and entropy (TensorRT's KL-divergence method); --method
names the one ed-export uses unless told otherwise (default entropy). Progress on stderr.";

fn parse() -> Result<(PathBuf, PathBuf, PathBuf, Option<PathBuf>, CalibOptions), String> {
    let mut it = std::env::args().skip(1);
    let (mut model, mut data, mut images, mut out) = (None, None, None, None);
    let mut o = CalibOptions::default();
    fn num<T: std::str::FromStr>(f: &str, v: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{f} {v:?} is not a valid number"))
    }
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(val()?)),
            "--data" => data = Some(PathBuf::from(val()?)),
            "--images" => images = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--method" => o.method = val()?.parse()?,
            "--num" => o.num = num(&a, &val()?)?,
            "--seed" => o.seed = num(&a, &val()?)?,
            "--batch" => o.batch = num(&a, &val()?)?,
            "-h" | "--help" => return Err(String::new()),
            x => return Err(format!("unknown argument {x:?}")),
        }
    }
    if o.num == 0 {
        return Err("--num must be positive".into());
    }
    Ok((
        model.ok_or("--model is required")?,
        data.ok_or("--data is required")?,
        images.ok_or("--images is required")?,
        out,
        o,
    ))
}

fn main() -> ExitCode {
    let (model, data, images, out, o) = match parse() {
        Ok(v) => v,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-calibrate: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    edgedistill::backend::cpu::alloc::tune_allocator();
    let out = out.unwrap_or_else(|| default_out_dir(&model).join("calib_cache.json"));
    let t = std::time::Instant::now();
    let r = calibrate(&model, &data, &images, &o).and_then(|cache| {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| edgedistill::Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        cache.write(&out)?;
        Ok(cache)
    });
    match r {
        Ok(c) => {
            println!(
                "calibrated {} tensors on {} images in {:.1}s (default method {}) -> {}",
                c.tensors.len(),
                c.num_images,
                t.elapsed().as_secs_f64(),
                c.method,
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ed-calibrate: {e}");
            ExitCode::from(1)
        }
    }
}
