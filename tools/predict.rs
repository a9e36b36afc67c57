//! ed-predict: run a model file or an engine over images, write COCO results JSON and, optionally,
//! overlay PNGs. An image that cannot be read or decoded is reported with its name and
//! skipped; the others are still predicted and written, and the exit status is 1 at the
//! end when any image failed (listing them). See `--help`.
use edgedistill::data::Coco;
use edgedistill::data::image::load_rgb;
use edgedistill::data::progress::Progress;
use edgedistill::engine::runtime::load_detector_on;
use edgedistill::eval::ResultRecord;
use edgedistill::eval::plot::overlay_png::draw_prediction;
use edgedistill::eval::results_write::{prediction_records, write_results};
use edgedistill::models::yolov8::postprocess::Binarize;
use edgedistill::models::yolov8::postprocess::NmsConfig;
use edgedistill::{Error, Result};
use image::RgbImage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: ed-predict --model DIR_OR_FILE --source IMG_OR_DIR [--out DIR]
                  [--conf 0.25] [--iou 0.7] [--max-det 300] [--batch 4] [--save-overlay]
                  [--coco GT.json] [--device cpu|cuda|cuda:N]

Predicts every image of --source (a file, or a directory's png/jpg/jpeg/bmp files sorted by
name) with the model file, run directory or engine file (ed-export) and writes OUT/predictions.json as COCO results
(default OUT: predict/ in the current directory). image_id comes from --coco (matched by
file_name, or by its last path component) when given, else it is the image's 0-based index
in sorted order. --save-overlay also writes OUT/overlays/<name>.png with boxes, labels and
masks. --device cuda runs an engine file on the GPU (fp16 convs, INT8 convs with dp4a).
Images that fail to load are listed and skipped; the exit status is then 1.";

struct Args {
    model: PathBuf,
    source: PathBuf,
    out: PathBuf,
    nms: NmsConfig,
    batch: usize,
    overlay: bool,
    coco: Option<PathBuf>,
    device: edgedistill::Device,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut model, mut source, mut out, mut coco) = (None, None, PathBuf::from("predict"), None);
    let (mut nms, mut batch, mut overlay) = (NmsConfig::default(), 4usize, false);
    let mut device = edgedistill::Device::Cpu;
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{flag} {v:?} is not a valid number"))
    }
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(val()?)),
            "--source" => source = Some(PathBuf::from(val()?)),
            "--out" => out = PathBuf::from(val()?),
            "--coco" => coco = Some(PathBuf::from(val()?)),
            "--conf" => nms.conf = num(&a, &val()?)?,
            "--iou" => nms.iou = num(&a, &val()?)?,
            "--max-det" => nms.max_det = num(&a, &val()?)?,
            "--batch" => batch = num::<usize>(&a, &val()?)?.max(1),
            "--save-overlay" => overlay = true,
            "--device" => device = val()?.parse()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        model: model.ok_or("--model is required")?,
        source: source.ok_or("--source is required")?,
        out,
        nms,
        batch,
        overlay,
        coco,
        device,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ed-predict: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("ed-predict: {failed} image(s) failed (listed above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("ed-predict: {e}");
            ExitCode::from(1)
        }
    }
}

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The image files of `source`, sorted by name.
fn list_images(source: &Path) -> Result<Vec<PathBuf>> {
    if source.is_file() {
        return Ok(vec![source.to_path_buf()]);
    }
    let io = |e| Error::Io {
        path: source.to_path_buf(),
        source: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(source).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if p.is_file() && ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str())) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// file name → image id from a COCO file: by full `file_name` and by its last component.
fn coco_ids(path: &Path) -> Result<HashMap<String, u64>> {
    let coco = Coco::read_strict(path)?;
    let mut ids = HashMap::new();
    for im in &coco.images {
        let base = file_name(Path::new(&im.file_name));
        ids.entry(base).or_insert(im.id);
        ids.insert(im.file_name.clone(), im.id);
    }
    Ok(ids)
}

fn run(args: &Args) -> Result<usize> {
    let mut predictor = load_detector_on(&args.model, args.device)?;
    predictor.configure(args.nms.clone(), Binarize::Half);
    let files = list_images(&args.source)?;
    if files.is_empty() {
        return Err(Error::msg(format!(
            "{}: no images ({})",
            args.source.display(),
            EXTENSIONS.join("/")
        )));
    }
    let ids = args.coco.as_deref().map(coco_ids).transpose()?;
    let overlays = args.out.join("overlays");
    let dir = if args.overlay { &overlays } else { &args.out };
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;

    let progress = Progress::new("images", files.len() as u64);
    let mut records: Vec<ResultRecord> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut ndet = 0usize;
    for (chunk_i, chunk) in files.chunks(args.batch).enumerate() {
        // Load the chunk; failures are reported and left out of the batch.
        let mut batch: Vec<(usize, &PathBuf, RgbImage, u64)> = Vec::new();
        for (j, path) in chunk.iter().enumerate() {
            let index = chunk_i * args.batch + j;
            let name = file_name(path);
            let id = match &ids {
                None => Ok(index as u64),
                Some(m) => m
                    .get(&name)
                    .copied()
                    .ok_or_else(|| format!("{}: not in the --coco file", path.display())),
            };
            match id.and_then(|id| {
                // load_rgb's errors name the file already.
                load_rgb(path).map(|im| (im, id)).map_err(|e| e.to_string())
            }) {
                Ok((im, id)) => batch.push((index, path, im, id)),
                Err(e) => {
                    eprintln!("ed-predict: {e}");
                    failures.push(e);
                    progress.inc(1);
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let imgs: Vec<RgbImage> = batch.iter().map(|b| b.2.clone()).collect();
        let preds = predictor.detect(&imgs)?;
        for ((_, path, mut img, id), pred) in batch.into_iter().zip(preds) {
            ndet += pred.scores.len();
            records.extend(prediction_records(
                &pred,
                id,
                predictor.class_category_ids(),
            )?);
            if args.overlay {
                draw_prediction(&mut img, &pred, predictor.class_names());
                let stem = path
                    .file_stem()
                    .map_or("image".into(), |s| s.to_string_lossy().into_owned());
                let out = overlays.join(format!("{stem}.png"));
                img.save(&out)
                    .map_err(|e| Error::msg(format!("{}: {e}", out.display())))?;
            }
            progress.inc(1);
        }
    }
    progress.finish();
    let json = args.out.join("predictions.json");
    write_results(&json, &records)?;
    let secs = progress.elapsed().as_secs_f64();
    println!(
        "predicted {} of {} images, {ndet} detections in {secs:.2}s ({:.1} images/s) -> {}",
        files.len() - failures.len(),
        files.len(),
        (files.len() - failures.len()) as f64 / secs.max(1e-9),
        json.display()
    );
    for f in &failures {
        eprintln!("ed-predict: failed: {f}");
    }
    Ok(failures.len())
}
