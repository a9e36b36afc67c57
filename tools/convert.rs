//! `ed-convert`: move a dataset between YOLO label text and COCO JSON. The rules (file
//! matching, ids, what each annotation kind becomes) are in `edgedistill::data::convert`.
//! Progress goes to stderr, the problems too (file:line or file: record), the closing
//! summary to stdout. Exit 0 when done (problems listed), 1 on an error or on any problem
//! with --strict (then nothing is written), 2 on bad usage.
use edgedistill::data::Coco;
use edgedistill::data::convert::{ConvertProblem, plan_coco_to_yolo, write_yolo, yolo_to_coco};
use edgedistill::data::progress::{Progress, fmt_duration};
use edgedistill::data::yolo_txt::read_names;
use edgedistill::io::atomic::write_atomic;
use edgedistill::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage:
  ed-convert --from yolo --images DIR --labels DIR --classes names.txt --out coco.json [options]
  ed-convert --from coco --to yolo --data coco.json --out-labels DIR [--classes names.txt] [options]

  --classes FILE   yolo→coco: class names, one per line (or a data.yaml with `names:`);
                   coco→yolo: where to write them (default: names.txt beside DIR)
  --threads N      worker threads (default: all cores)
  --strict         fail on the first problem and write nothing
  --problems FILE  write every problem to FILE (stderr lists the first 50)
  --quiet          no progress line";

/// Problems shown on stderr; --problems FILE gets all of them.
const SHOW: usize = 50;

#[derive(Default)]
struct Args {
    from: String,
    to: Option<String>,
    images: Option<PathBuf>,
    labels: Option<PathBuf>,
    classes: Option<PathBuf>,
    out: Option<PathBuf>,
    data: Option<PathBuf>,
    out_labels: Option<PathBuf>,
    threads: usize,
    strict: bool,
    problems: Option<PathBuf>,
    quiet: bool,
}

fn parse() -> std::result::Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--strict" => a.strict = true,
            "--quiet" => a.quiet = true,
            _ => {
                let v = it.next().ok_or(format!("{flag} needs a value"))?;
                let p = || Some(PathBuf::from(&v));
                match flag.as_str() {
                    "--from" => a.from = v,
                    "--to" => a.to = Some(v),
                    "--images" => a.images = p(),
                    "--labels" => a.labels = p(),
                    "--classes" => a.classes = p(),
                    "--out" => a.out = p(),
                    "--data" => a.data = p(),
                    "--out-labels" => a.out_labels = p(),
                    "--problems" => a.problems = p(),
                    "--threads" => {
                        a.threads = v
                            .parse()
                            .map_err(|_| format!("--threads: not a number: {v}"))?
                    }
                    _ => return Err(format!("unknown flag {flag}")),
                }
            }
        }
    }
    Ok(a)
}

fn need<'a>(
    v: &'a Option<PathBuf>,
    flag: &str,
    mode: &str,
) -> std::result::Result<&'a Path, String> {
    v.as_deref().ok_or_else(|| format!("{mode} needs {flag}"))
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("ed-convert: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if a.threads > 0
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(a.threads)
            .build_global()
    {
        eprintln!("ed-convert: cannot start {} threads: {e}", a.threads);
        return ExitCode::from(1);
    }
    let run = match (a.from.as_str(), a.to.as_deref()) {
        ("yolo", None | Some("coco")) => run_yolo_to_coco(&a),
        ("coco", Some("yolo")) => run_coco_to_yolo(&a),
        _ => Err(Usage(
            "--from yolo [--to coco] or --from coco --to yolo".into(),
        )),
    };
    match run {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Usage(msg)) => {
            eprintln!("ed-convert: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Bad usage (exit 2); other failures are printed where they happen and return Ok(false).
struct Usage(String);

fn progress(a: &Args, label: &str) -> Progress {
    let p = Progress::new(label, 0);
    if a.quiet { p.hidden() } else { p }
}

/// Lists problems, writes --problems FILE; false when --strict should stop the run.
fn report_problems(a: &Args, problems: &[ConvertProblem]) -> bool {
    for p in problems.iter().take(SHOW) {
        eprintln!("{p}");
    }
    if problems.len() > SHOW {
        eprintln!(
            "... and {} more problems{}",
            problems.len() - SHOW,
            if a.problems.is_some() {
                ""
            } else {
                " (--problems FILE lists all)"
            }
        );
    }
    if let Some(path) = &a.problems {
        let text: String = problems.iter().map(|p| format!("{p}\n")).collect();
        if let Err(e) = write_text(path, &text) {
            eprintln!("ed-convert: {e}");
            return false;
        }
    }
    if a.strict && !problems.is_empty() {
        eprintln!(
            "ed-convert: {} problems with --strict; nothing written",
            problems.len()
        );
        return false;
    }
    true
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(text.as_bytes()).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

fn fail(e: Error) -> std::result::Result<bool, Usage> {
    eprintln!("ed-convert: {e}");
    Ok(false)
}

fn run_yolo_to_coco(a: &Args) -> std::result::Result<bool, Usage> {
    let mode = "--from yolo";
    let images = need(&a.images, "--images DIR", mode).map_err(Usage)?;
    let labels = need(&a.labels, "--labels DIR", mode).map_err(Usage)?;
    let classes = need(&a.classes, "--classes names.txt", mode).map_err(Usage)?;
    let out = need(&a.out, "--out coco.json", mode).map_err(Usage)?;
    let start = Instant::now();
    let names = match read_names(classes) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let p = progress(a, "images");
    let (coco, report) = match yolo_to_coco(images, labels, &names, &p) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if !report_problems(a, &report.problems) {
        return Ok(false);
    }
    if let Err(e) = coco.write(out) {
        return fail(e);
    }
    for line in report.summary() {
        println!("{line}");
    }
    println!(
        "wrote {} in {}",
        out.display(),
        fmt_duration(start.elapsed().as_secs_f64())
    );
    Ok(true)
}

fn run_coco_to_yolo(a: &Args) -> std::result::Result<bool, Usage> {
    let mode = "--from coco --to yolo";
    let data = need(&a.data, "--data coco.json", mode).map_err(Usage)?;
    let out_labels = need(&a.out_labels, "--out-labels DIR", mode).map_err(Usage)?;
    let names_path = a.classes.clone().unwrap_or_else(|| {
        out_labels
            .parent()
            .unwrap_or(Path::new(""))
            .join("names.txt")
    });
    let start = Instant::now();
    let (coco, read_problems) = match Coco::read(data) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (names, files, mut report) = match plan_coco_to_yolo(&coco, data) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Records the reader could not take are not converted either: list them first.
    let mut problems: Vec<ConvertProblem> = read_problems
        .into_iter()
        .map(|problem| ConvertProblem {
            path: data.to_path_buf(),
            problem,
        })
        .collect();
    problems.append(&mut report.problems);
    report.problems = problems;
    if !report_problems(a, &report.problems) {
        return Ok(false);
    }
    let p = progress(a, "label files");
    p.set_total(files.len() as u64);
    if let Err(e) = write_yolo(out_labels, &names_path, &names, &files, &p) {
        return fail(e);
    }
    for line in report.summary() {
        println!("{line}");
    }
    println!(
        "wrote {} and {} ({} classes) in {}",
        out_labels.display(),
        names_path.display(),
        names.len(),
        fmt_duration(start.elapsed().as_secs_f64())
    );
    Ok(true)
}
