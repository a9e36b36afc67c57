//! ed-validate: check a COCO dataset, fill missing bbox/area from masks, report, and write
//! a reproducible (optionally stratified) train/val/test split. See `--help`.
use edgedistill::data::Coco;
use edgedistill::data::split::{SplitSpec, split, subset};
use edgedistill::data::validate::{Report, ValidateOptions, validate};
use edgedistill::io::atomic::write_atomic;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str =
    "usage: ed-validate --data annotations.json [--split train:0.7,val:0.15,test:0.15]
                   [--stratify] [--random-seed 42] [--output-dir DIR] [--images DIR] [--strict]

Reads a COCO file, lists every problem with the record it is in, skips bad records (or, with
--strict, stops at the first), fills missing bbox/area from masks, and writes one COCO file per
split plus report.json into DIR (default: <annotations>_splits beside the input).
The same input and seed always give byte-identical files.";

struct Args {
    data: PathBuf,
    split: SplitSpec,
    stratify: bool,
    seed: u64,
    output_dir: Option<PathBuf>,
    images: Option<PathBuf>,
    strict: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut data, mut split, mut stratify, mut seed) = (None, SplitSpec::default(), false, 42);
    let (mut output_dir, mut images, mut strict) = (None, None, false);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(val()?)),
            "--split" => split = SplitSpec::parse(&val()?).map_err(|e| e.to_string())?,
            "--stratify" => stratify = true,
            "--random-seed" => {
                let v = val()?;
                seed = v
                    .parse()
                    .map_err(|_| format!("--random-seed {v:?} is not a whole number"))?;
            }
            "--output-dir" => output_dir = Some(PathBuf::from(val()?)),
            "--images" => images = Some(PathBuf::from(val()?)),
            "--strict" => strict = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let data = data.ok_or("--data is required")?;
    Ok(Args {
        data,
        split,
        stratify,
        seed,
        output_dir,
        images,
        strict,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-validate: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ed-validate: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> edgedistill::Result<()> {
    let t = Instant::now();
    let (coco, parse_problems) = Coco::read(&args.data)?;
    eprintln!(
        "read {}: {} images, {} annotations, {} categories in {:.2} s",
        args.data.display(),
        coco.images.len(),
        coco.annotations.len(),
        coco.categories.len(),
        t.elapsed().as_secs_f64()
    );
    let opts = ValidateOptions {
        images_dir: args.images.clone(),
    };
    let v = validate(coco, parse_problems, &opts);
    let name = args.data.display().to_string();
    if args.strict && !v.report.problems.is_empty() {
        let n = v.report.problems.len();
        let first = v.report.problems[0].clone();
        eprintln!("--strict: {n} problem(s); nothing written");
        return Err(first.into_error(&name));
    }
    let s = split(&v.coco, &args.split, args.stratify, args.seed);
    print_report(&v.report, &name);
    let out_dir = args
        .output_dir
        .clone()
        .unwrap_or_else(|| default_out(&args.data));
    std::fs::create_dir_all(&out_dir).map_err(|source| edgedistill::Error::Io {
        path: out_dir.clone(),
        source,
    })?;
    println!(
        "split (seed {}{}):",
        args.seed,
        if args.stratify { ", stratified" } else { "" }
    );
    for (name, ids) in s.names.iter().zip(&s.image_ids) {
        let part = subset(&v.coco, ids);
        let path = out_dir.join(format!("{name}.json"));
        part.write(&path)?;
        println!(
            "  {name}: {} images, {} annotations -> {}",
            part.images.len(),
            part.annotations.len(),
            path.display()
        );
    }
    for w in &s.warnings {
        println!("  warning: {w}");
    }
    let report_path = out_dir.join("report.json");
    let json = serde_json::json!({
        "data": name,
        "seed": args.seed,
        "stratify": args.stratify,
        "split": s.names.iter().zip(&s.image_ids).map(|(n, ids)| (n.clone(), ids.len())).collect::<std::collections::BTreeMap<_, _>>(),
        "split_warnings": s.warnings,
        "report": v.report,
    });
    let bytes =
        serde_json::to_vec_pretty(&json).map_err(|e| edgedistill::Error::msg(e.to_string()))?;
    write_atomic(&report_path, |w| {
        w.write_all(&bytes)
            .map_err(|source| edgedistill::Error::Io {
                path: report_path.clone(),
                source,
            })
    })?;
    println!("report -> {}", report_path.display());
    Ok(())
}

fn default_out(data: &Path) -> PathBuf {
    let stem = data
        .file_stem()
        .map_or("dataset".into(), |s| s.to_string_lossy().into_owned());
    data.with_file_name(format!("{stem}_splits"))
}

fn print_report(r: &Report, name: &str) {
    println!("{name}");
    println!(
        "  {} images ({} without annotations), {} annotations ({} crowd, {} with masks), {} classes",
        r.images,
        r.images_without_annotations,
        r.annotations,
        r.crowd_annotations,
        r.annotations_with_masks,
        r.num_classes
    );
    println!(
        "  mode: {} (has_boxes {}, has_masks {})",
        r.mode, r.has_boxes, r.has_masks
    );
    println!(
        "  filled: {} bbox, {} area; clipped {} bbox",
        r.filled_bbox, r.filled_area, r.clipped_bbox
    );
    println!("  classes:");
    for c in &r.classes {
        println!(
            "    {:>6}  {:<24} {:>7} instances {:>6} images",
            c.id, c.name, c.instances, c.images
        );
    }
    if r.problems.is_empty() {
        println!("  problems: none");
    } else {
        println!(
            "  problems: {} (skipped {} images, {} annotations, {} categories)",
            r.problems.len(),
            r.skipped_images,
            r.skipped_annotations,
            r.skipped_categories
        );
        for (code, n) in &r.problem_counts {
            println!("    {code}: {n}");
        }
        for p in &r.problems {
            println!("    {p}");
        }
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}
