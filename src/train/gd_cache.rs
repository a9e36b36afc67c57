//! A disk cache of Grounding DINO's encoder outputs (everything before the decoder: the
//! enhanced image and text tokens, masks, level shapes and the selected query boxes) for
//! LoRA training with a frozen encoder and a fixed prompt. One safetensors file per image
//! (image sizes differ, so token counts do), memory-mapped when read; `index.json`, written
//! last, names the key (encoder weights and config, prompt, resize, image files) and the
//! image ids, so a stale or half-built cache is rebuilt.
use crate::data::progress::Progress;
use crate::io::atomic::write_atomic;
use crate::io::{Safetensors, StateDict, save_safetensors};
use crate::models::grounding_dino::Encoded;
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const FORMAT: &str = "edgedistill-gdino-encoder-cache-v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Index {
    format: String,
    key: String,
    ids: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct Geometry {
    shapes: Vec<(usize, usize)>,
    valid_ratios: Vec<Vec<(f64, f64)>>,
}

pub struct EncoderCache {
    dir: PathBuf,
    n: usize,
}

const TENSORS: [&str; 8] = [
    "vision",
    "text",
    "text_features",
    "vision_valid",
    "text_keep",
    "reference",
    "enc_outputs_class",
    "enc_outputs_coord_logits",
];

fn parts(e: &Encoded) -> [&Tensor; 8] {
    [
        &e.vision,
        &e.text,
        &e.text_features,
        &e.vision_valid,
        &e.text_keep,
        &e.reference,
        &e.enc_outputs_class,
        &e.enc_outputs_coord_logits,
    ]
}

impl EncoderCache {
    /// Open `dir` when its index holds `key` for exactly `ids`; otherwise run `compute(i)`
    /// for every image (batch of one) and write the files, the index last.
    pub fn open_or_build(
        dir: &Path,
        key: &str,
        ids: &[u64],
        progress: bool,
        mut compute: impl FnMut(usize) -> Result<Encoded>,
    ) -> Result<(EncoderCache, bool)> {
        let io = |p: &Path, e: std::io::Error| Error::Io {
            path: p.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let index = dir.join("index.json");
        let want = Index {
            format: FORMAT.into(),
            key: key.into(),
            ids: ids.to_vec(),
        };
        let have: Option<Index> = std::fs::read(&index)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let cache = EncoderCache {
            dir: dir.to_path_buf(),
            n: ids.len(),
        };
        if have.as_ref() == Some(&want) && (0..ids.len()).all(|i| cache.file(i).exists()) {
            return Ok((cache, false));
        }
        let _ = std::fs::remove_file(&index);
        let bar = Progress::new("encoder cache", ids.len() as u64);
        let bar = if progress { bar } else { bar.hidden() };
        for (i, id) in ids.iter().enumerate() {
            let e = compute(i).map_err(|e| e.context(format!("image {id}")))?;
            let named: Vec<(String, Tensor)> = TENSORS
                .iter()
                .zip(parts(&e))
                .map(|(n, t)| Ok((n.to_string(), t.detach().contiguous()?)))
                .collect::<Result<_>>()?;
            let geo = Geometry {
                shapes: e.shapes.clone(),
                valid_ratios: e.valid_ratios.clone(),
            };
            let meta = BTreeMap::from([(
                "geometry".to_string(),
                serde_json::to_string(&geo).map_err(|e| Error::msg(e.to_string()))?,
            )]);
            save_safetensors(cache.file(i), &named, Some(&meta))?;
            bar.inc(1);
        }
        bar.finish();
        let json = serde_json::to_vec_pretty(&want).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&index, |w: &mut dyn Write| {
            w.write_all(&json).map_err(|e| io(&index, e))
        })?;
        Ok((cache, true))
    }

    fn file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{i:06}.safetensors"))
    }

    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Image `i`'s encoder output (memory-mapped tensors).
    pub fn get(&self, i: usize) -> Result<Encoded> {
        let path = self.file(i);
        let file = std::sync::Arc::new(Safetensors::open(&path)?);
        let geo_text = file
            .metadata()
            .get("geometry")
            .cloned()
            .ok_or_else(|| Error::Format {
                path: path.display().to_string(),
                record: "metadata".into(),
                msg: "no geometry entry".into(),
            })?;
        let sd = StateDict::from_safetensors(file);
        let t = |n: &str| sd.get(n);
        let geo: Geometry = serde_json::from_str(&geo_text).map_err(|e| Error::Format {
            path: path.display().to_string(),
            record: "geometry".into(),
            msg: e.to_string(),
        })?;
        Ok(Encoded {
            vision: t("vision")?,
            text: t("text")?,
            text_features: t("text_features")?,
            vision_valid: t("vision_valid")?,
            text_keep: t("text_keep")?,
            shapes: geo.shapes,
            valid_ratios: geo.valid_ratios,
            reference: t("reference")?,
            enc_outputs_class: t("enc_outputs_class")?,
            enc_outputs_coord_logits: t("enc_outputs_coord_logits")?,
        })
    }
}
